"""Sharded checkpoints with Orbax: every process writes the shards it holds, and a
checkpoint restores onto any mesh and policy (8 devices to 4, data parallel to fully
sharded), each process reading only the pieces its devices need.

Why Orbax (``orbax-checkpoint``, the optional extra ``fnnet[parallel]``) and not a
format of our own: a multi-process write must agree on one directory, commit it only
when every process has finished, and store each array in chunks so that a restore
onto another sharding reads the slices it needs; Orbax (on TensorStore) does all
three, is what JAX's own large-scale users write, and its files are read by other
JAX tools. The single-process ``.npz`` format of :mod:`fnnet.train.checkpoint`
stays the default for one device; use this one when the state is sharded.

The tree is any pytree of arrays (params, state, optimizer state, step); typed PRNG
keys are stored as their raw key data and rewrapped from the template. Saving is
collective: every process calls :func:`save_sharded_checkpoint` with the same path
(a directory on a file system that all processes see). It returns when the
checkpoint is committed. Loading needs a template ``like`` (arrays or
``jax.ShapeDtypeStruct``) and the target shardings; a checkpoint whose leaves
differ from the template (path, shape, dtype) raises
:class:`fnnet.train.CheckpointError` naming the leaf, before any array is read.

Imports: jax, numpy, fnnet.train.checkpoint (CheckpointError), fnnet.parallel.policies;
orbax.checkpoint inside the functions.
"""
from __future__ import annotations

import os

import jax
import numpy as np

from fnnet.parallel.policies import path_str
from fnnet.train.checkpoint import CheckpointError

__all__ = ["save_sharded_checkpoint", "load_sharded_checkpoint"]


def _orbax(who):
    try:
        import orbax.checkpoint as ocp
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError(f"{who}: sharded checkpoints need orbax-checkpoint: "
                          "pip install 'fnnet[parallel]' (or orbax-checkpoint)") from error
    return ocp


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _unkey(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def save_sharded_checkpoint(path: str | os.PathLike, tree) -> None:
    """Write ``tree`` (sharded ``jax.Array`` leaves, or host arrays) to the directory
    ``path``; every process writes its own shards (one copy of each). Overwrites an
    existing checkpoint at ``path``. Collective: every process calls it."""
    ocp = _orbax("save_sharded_checkpoint")
    path = os.path.abspath(os.fspath(path))
    checkpointer = ocp.StandardCheckpointer()
    try:
        checkpointer.save(path, _unkey(tree), force=True)
        checkpointer.wait_until_finished()
    finally:
        checkpointer.close()


def _leaf_metadata(metadata) -> dict:
    tree = getattr(metadata, "item_metadata", metadata)
    tree = getattr(tree, "tree", tree)
    flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {".".join(path_str(p).split("/")): (tuple(m.shape), np.dtype(m.dtype)) for p, m in flat
            if m is not None}


def load_sharded_checkpoint(path: str | os.PathLike, like, shardings=None):
    """Read a checkpoint of :func:`save_sharded_checkpoint` into ``like``'s structure,
    each leaf placed with ``shardings``.

    Args:
      path: the checkpoint directory.
      like: template pytree (arrays or ``jax.ShapeDtypeStruct``): structure, shapes,
        dtypes, and where keys are.
      shardings: a pytree of ``jax.sharding.Sharding`` matching ``like`` (e.g.
        :func:`fnnet.parallel.train_state_shardings` of another policy or mesh), or
        None for the template leaves' own ``.sharding``.

    Raises:
      CheckpointError: no checkpoint at ``path``, or its leaves differ from ``like``
        in path, shape or dtype (named), before any array is read.
    """
    ocp = _orbax("load_sharded_checkpoint")
    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(path):
        raise CheckpointError(f"load_sharded_checkpoint: expected a checkpoint directory at {path}, "
                              "found none")
    if shardings is None:
        shardings = jax.tree.map(lambda x: getattr(x, "sharding", None), like)
        if any(s is None for s in jax.tree.leaves(shardings, is_leaf=lambda s: s is None)):
            raise ValueError("load_sharded_checkpoint: expected shardings, or a template whose "
                             "leaves carry a .sharding; got a leaf without one")
    like_leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    sharding_leaves = treedef.flatten_up_to(shardings)
    checkpointer = ocp.StandardCheckpointer()
    try:
        try:
            stored = _leaf_metadata(checkpointer.metadata(path))
        except Exception as error:  # a directory that holds no committed checkpoint
            raise CheckpointError(f"load_sharded_checkpoint: {path} is not a readable sharded "
                                  f"checkpoint ({type(error).__name__}: {error})") from error
        abstract = []
        for (p, leaf), sharding in zip(like_leaves, sharding_leaves):
            name = ".".join(path_str(p).split("/"))
            raw = jax.random.key_data(leaf) if _is_key(leaf) else leaf
            want = (tuple(np.shape(raw)), np.dtype(raw.dtype))
            if name not in stored:
                extra = sorted(set(stored) - {".".join(path_str(q).split("/")) for q, _ in like_leaves})
                raise CheckpointError(f"load_sharded_checkpoint: checkpoint {path} has no leaf "
                                      f"{name!r} that the template expects (leaves only in the "
                                      f"checkpoint: {extra[:5]})")
            if stored[name] != want:
                got_shape, got_dtype = stored[name]
                raise CheckpointError(f"load_sharded_checkpoint: checkpoint {path} holds {name} as "
                                      f"{got_dtype.name}{list(got_shape)}, but the template expects "
                                      f"{want[1].name}{list(want[0])}")
            abstract.append(jax.ShapeDtypeStruct(want[0], want[1], sharding=sharding))
        if len(stored) != len(like_leaves):
            names = {".".join(path_str(q).split("/")) for q, _ in like_leaves}
            raise CheckpointError(f"load_sharded_checkpoint: checkpoint {path} holds leaves the "
                                  f"template lacks: {sorted(set(stored) - names)[:5]}")
        restored = checkpointer.restore(path, jax.tree.unflatten(treedef, abstract))
    finally:
        checkpointer.close()
    out = [jax.random.wrap_key_data(r, impl=jax.random.key_impl(leaf)) if _is_key(leaf) else r
           for r, (_, leaf) in zip(treedef.flatten_up_to(restored), like_leaves)]
    return jax.tree.unflatten(treedef, out)
