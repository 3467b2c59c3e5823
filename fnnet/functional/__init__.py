"""Pure array kernels with explicit weights.

Activations, dense, convolution, pooling, normalisation, dropout, attention, the
recurrent cells with their scan, and the short-time Fourier transform. Each is a plain function of arrays, safe under
``jit``, ``grad`` and ``vmap``, usable without Modules.

Imports: jax only.
"""
from fnnet.functional.activations import *  # noqa: F401,F403
from fnnet.functional.dense import *  # noqa: F401,F403
from fnnet.functional.conv import *  # noqa: F401,F403
from fnnet.functional.pooling import *  # noqa: F401,F403
from fnnet.functional._lowering import cpu_compiler_options  # noqa: F401
from fnnet.functional.recurrent import *  # noqa: F401,F403
from fnnet.functional.normalization import *  # noqa: F401,F403
from fnnet.functional.dropout import *  # noqa: F401,F403
from fnnet.functional.attention import *  # noqa: F401,F403
from fnnet.functional.embedding import *  # noqa: F401,F403
from fnnet.functional.positional import *  # noqa: F401,F403
from fnnet.functional.spectral import *  # noqa: F401,F403
