"""Training: compiled train/eval steps, the fit loop (one model or a population),
early stopping, checkpoints, and pieces of reference protocols (PyTorch's default init,
the summary of several seeds).

Imports: everything above it in the package (not fnnet.models).
"""
from fnnet.train.checkpoint import *  # noqa: F401,F403
from fnnet.train.loop import *  # noqa: F401,F403
from fnnet.train.population import *  # noqa: F401,F403
from fnnet.train.step import *  # noqa: F401,F403
from fnnet.train.in_order import *  # noqa: F401,F403
from fnnet.train.config import *  # noqa: F401,F403
from fnnet.train.placement import *  # noqa: F401,F403
