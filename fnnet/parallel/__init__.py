"""Past one device and one process: meshes with ``("data", "model")`` axes, sharding
policies (data parallel, fully sharded, tensor parallel), the sharded train step,
sharded checkpoints and multi-process set-up, all on JAX's own ``jax.sharding`` and
``jax.distributed``.

Imports: jax, numpy, fnnet.train (orbax-checkpoint, optional, inside the checkpoint
functions only).
"""
from fnnet.parallel.mesh import *  # noqa: F401,F403
from fnnet.parallel.policies import *  # noqa: F401,F403
from fnnet.parallel.step import *  # noqa: F401,F403
from fnnet.parallel.checkpoint import *  # noqa: F401,F403
from fnnet.parallel.distributed import *  # noqa: F401,F403
