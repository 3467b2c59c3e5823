"""fnnet: a functional deep-learning research framework on JAX.

Models are Modules, pairs of pure functions over parameter pytrees; see
``fnnet.nn``. Subpackages load on first use: ``fnnet.functional``, ``fnnet.init``,
``fnnet.nn``, ``fnnet.losses``, ``fnnet.metrics``, ``fnnet.optim``,
``fnnet.gradcheck``, ``fnnet.data``, ``fnnet.train``, ``fnnet.models``,
``fnnet.decomposition``, ``fnnet.vision``, ``fnnet.text``, ``fnnet.parallel``, ...

On Linux, importing fnnet keeps large freed host buffers mapped for the next compiled
step (:func:`fnnet.keep_host_memory`; opt out with ``FNNET_KEEP_HOST_MEMORY=0``).
"""
import importlib

from fnnet._host_memory import keep_host_memory

__version__ = "0.1.0"
HOST_MEMORY_KEPT = keep_host_memory()

_SUBMODULES = {"functional", "init", "nn", "losses", "metrics", "optim", "gradcheck",
               "data", "train", "models", "vision", "text", "parallel", "interop", "cli",
               "decomposition"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"fnnet.{name}")
    raise AttributeError(f"module 'fnnet' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
