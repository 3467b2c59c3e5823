"""Checkpoints: any pytree of arrays (params, state, optimizer state, key, step) in
one ``.npz`` file, written atomically.

The file holds the leaves in ``jax.tree.flatten`` order; loading needs a template of
the same structure (``like``), e.g. freshly initialised params and optimizer state,
so NamedTuple optimizer states round-trip exactly. Typed PRNG keys are stored as
their raw key data and rewrapped on load.

Imports: jax, numpy.
"""
from __future__ import annotations

import os
import tempfile

import jax
import numpy as np

__all__ = ["save_checkpoint", "load_checkpoint"]


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def save_checkpoint(path: str | os.PathLike, tree) -> None:
    """Write ``tree`` to ``path`` atomically: a temporary file in the same directory,
    then ``os.replace``, so a crash never leaves a half-written checkpoint."""
    path = os.fspath(path)
    leaves = jax.tree.leaves(tree)
    arrays = {}
    for i, leaf in enumerate(leaves):
        if _is_key(leaf):
            arrays[f"key_{i}"] = np.asarray(jax.random.key_data(leaf))
        else:
            arrays[f"leaf_{i}"] = np.asarray(leaf)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path: str | os.PathLike, like):
    """Read a checkpoint written by :func:`save_checkpoint` into the structure of ``like``.

    Raises:
      ValueError: if the file's leaves do not match ``like`` in number, shape or dtype.
    """
    template, treedef = jax.tree.flatten(like)
    with np.load(os.fspath(path)) as data:
        if len(data.files) != len(template):
            raise ValueError(f"load_checkpoint: {path} holds {len(data.files)} arrays, "
                             f"the template has {len(template)} leaves")
        leaves = []
        for i, ref in enumerate(template):
            if _is_key(ref):
                leaves.append(jax.random.wrap_key_data(data[f"key_{i}"], impl=jax.random.key_impl(ref)))
                continue
            arr = data[f"leaf_{i}"]
            if arr.shape != np.shape(ref) or arr.dtype != np.asarray(ref).dtype:
                raise ValueError(f"load_checkpoint: leaf {i} is {arr.dtype}{list(arr.shape)} in {path}, "
                                 f"the template expects {np.asarray(ref).dtype}{list(np.shape(ref))}")
            leaves.append(jax.numpy.asarray(arr))
    return jax.tree.unflatten(treedef, leaves)
