"""Checkpoints: any pytree of arrays (params, state, optimizer state, key, step) in
one ``.npz`` file, written atomically and read back without pickle.

The file holds the leaves in ``jax.tree.flatten`` order as ``leaf_<i>`` (typed PRNG
keys as their raw key data, ``key_<i>``) and ``__paths__``, each leaf's
``jax.tree_util.keystr`` path. Loading needs a template of the same structure
(``like``), e.g. freshly initialised params and optimizer state, so NamedTuple
optimizer states round-trip exactly; a leaf the template lacks, a missing one or one of
another shape or dtype is named by its path. Files written before ``__paths__`` existed
load by position.

Writes are atomic: a temporary file in the target's directory, ``fsync``,
``os.replace``, ``fsync`` of the directory. A reader sees the old file or the new one,
never a mix; a failed write removes its temporary file. Only a process killed inside
a write can leave one behind, ``.<name>.<random>.tmp``, which ``fit(..., resume=True)``
removes.

A file that is empty, truncated, not an ``.npz``, holds pickled objects or lacks an
entry raises :class:`CheckpointError` (a ``ValueError``) naming the file and the fault.

Imports: jax, numpy.
"""
from __future__ import annotations

import glob
import os
import tempfile

import jax
import numpy as np

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint"]

_PATHS = "__paths__"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (damaged, not a checkpoint) or that does
    not match what it is loaded into; the message names the file and the fault."""


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _spec(x) -> tuple[tuple, np.dtype]:
    """Shape and dtype of an array-like, without copying a device array to the host."""
    if not hasattr(x, "dtype"):
        x = np.asarray(x)
    return tuple(np.shape(x)), np.dtype(x.dtype)


def _describe(x) -> str:
    shape, dtype = _spec(x)
    return f"{dtype.name}{list(shape)}"


def _flatten_to_arrays(tree) -> dict[str, np.ndarray]:
    """The ``.npz`` entries of ``tree``: ``leaf_<i>``/``key_<i>`` and ``__paths__``."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    arrays = {}
    for i, (_, leaf) in enumerate(flat):
        if _is_key(leaf):
            arrays[f"key_{i}"] = np.asarray(jax.random.key_data(leaf))
        else:
            arrays[f"leaf_{i}"] = np.asarray(leaf)
    arrays[_PATHS] = np.asarray([jax.tree_util.keystr(p) for p, _ in flat], dtype=np.str_).reshape(len(flat))
    return arrays


def _temporary_prefix(path: str) -> str:
    return "." + os.path.basename(path) + "."


def _stale_temporary_files(path: str | os.PathLike) -> list[str]:
    """Temporary files that a write of ``path`` killed mid-way (SIGKILL, power loss)
    left in its directory."""
    path = os.path.abspath(os.fspath(path))
    pattern = os.path.join(glob.escape(os.path.dirname(path)), glob.escape(_temporary_prefix(path)) + "*.tmp")
    return sorted(glob.glob(pattern))


def _write_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to the ``.npz`` file ``path`` atomically (see the module docstring)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_temporary_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    if os.name == "posix":  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _read_arrays(path: str | os.PathLike, who: str = "load_checkpoint") -> dict[str, np.ndarray]:
    """Every entry of the ``.npz`` file ``path``, read eagerly and without pickle.

    Raises:
      CheckpointError: the file is empty, truncated, corrupt or not an ``.npz``.
      OSError: the file cannot be opened (FileNotFoundError if there is none).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(6)
    if not head:
        raise CheckpointError(f"{who}: checkpoint {path} is empty (0 bytes)")
    if head.startswith(b"\x93NUMPY"):
        raise CheckpointError(f"{who}: checkpoint {path} is a single .npy array, not an .npz "
                              "archive of a checkpoint")
    if not head.startswith(b"PK"):
        raise CheckpointError(f"{who}: checkpoint {path} is not an .npz archive: it starts with "
                              f"{head!r}, not a zip header")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except OSError:  # not damage: permissions, a vanished file
        raise
    except Exception as error:  # BadZipFile, zlib.error, EOFError, ValueError, ...: damage
        if isinstance(error, ValueError) and "pickle" in str(error):
            raise CheckpointError(f"{who}: checkpoint {path} is not a checkpoint: it holds pickled "
                                  "Python objects, which checkpoints never contain") from error
        raise CheckpointError(f"{who}: checkpoint {path} is damaged or truncated "
                              f"({type(error).__name__}: {error})") from error


def _entries(arrays: dict, file: str, who: str) -> list[tuple[str | None, bool, np.ndarray]]:
    """The file's leaves in order as ``(path, is_key, array)``; ``path`` is None in a
    file written without ``__paths__``. Raises :class:`CheckpointError` if one is missing."""
    leaves = {}
    for name, arr in arrays.items():
        kind, _, index = name.partition("_")
        if kind in ("leaf", "key") and index.isdigit():
            leaves[int(index)] = (kind == "key", arr)
    if _PATHS in arrays:
        paths = [str(p) for p in arrays[_PATHS].reshape(-1)]
    else:
        paths = [None] * (max(leaves, default=-1) + 1)
    absent = [f"{i} {p or ''}".strip() for i, p in enumerate(paths) if i not in leaves]
    if absent:
        raise CheckpointError(f"{who}: checkpoint {file} is incomplete: it lacks leaf "
                              f"{', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}")
    if len(leaves) != len(paths):
        raise CheckpointError(f"{who}: checkpoint {file} holds {len(leaves)} leaves but lists "
                              f"{len(paths)} paths")
    return [(p, *leaves[i]) for i, p in enumerate(paths)]


def _subtree_entries(entries: list, prefix: str) -> list:
    """The entries under the path ``prefix`` (e.g. ``"['params']"``), paths made relative."""
    return [(p[len(prefix):], k, a) for p, k, a in entries if p is not None and p.startswith(prefix)]


def _unflatten_like(entries: list, like, *, file: str, who: str = "load_checkpoint",
                    given: str = "the template expects", other: str = "the template", name: str = ""):
    """Rebuild ``like``'s structure from a checkpoint's entries, checking every leaf.

    ``name`` prefixes leaf paths in messages; ``given`` ("the template expects") and
    ``other`` ("the template") say where ``like`` came from.
    Raises :class:`CheckpointError` naming the first difference.
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(like)
    want_paths = [jax.tree_util.keystr(p) for p, _ in flat]
    paths = [p for p, _, _ in entries]
    if None not in paths and paths != want_paths:
        only_file = [name + p for p in paths if p not in want_paths]
        only_like = [name + p for p in want_paths if p not in paths]
        detail = (f"leaves only in the checkpoint: {only_file[:5]}; only in {other}: {only_like[:5]}"
                  if only_file or only_like else "the same leaves in another order")
        raise CheckpointError(f"{who}: checkpoint {file} was written with a different {name or 'tree'} "
                              f"structure: {detail}")
    if len(entries) != len(flat):
        raise CheckpointError(f"{who}: checkpoint {file} holds {len(entries)} arrays, "
                              f"the template has {len(flat)} leaves")
    out = []
    for (_, is_key, arr), where, ref in zip(entries, want_paths, (leaf for _, leaf in flat)):
        where = name + where
        ref_is_key = _is_key(ref)
        if is_key != ref_is_key:
            raise CheckpointError(f"{who}: checkpoint {file} holds {where} as "
                                  f"{'a PRNG key' if is_key else 'an array'}, but {given} "
                                  f"{'a PRNG key' if ref_is_key else 'an array'}")
        ref_arr = jax.random.key_data(ref) if ref_is_key else ref
        if (arr.shape, arr.dtype) != _spec(ref_arr):
            raise CheckpointError(f"{who}: checkpoint {file} holds {where} as {_describe(arr)}, "
                                  f"but {given} {_describe(ref_arr)}")
        if ref_is_key:
            out.append(jax.random.wrap_key_data(arr, impl=jax.random.key_impl(ref)))
        else:
            out.append(jax.numpy.asarray(arr))
    return jax.tree.unflatten(treedef, out)


def save_checkpoint(path: str | os.PathLike, tree) -> None:
    """Write ``tree`` to ``path`` atomically: a temporary file in the same directory,
    ``fsync``, ``os.replace``, ``fsync`` of the directory, so a crash never leaves a
    half-written checkpoint and a failed write leaves no temporary file."""
    _write_arrays(path, _flatten_to_arrays(tree))


def load_checkpoint(path: str | os.PathLike, like):
    """Read a checkpoint written by :func:`save_checkpoint` into the structure of ``like``.

    Raises:
      CheckpointError: (a ``ValueError``) if the file is damaged or not a checkpoint, or
        its leaves do not match ``like`` in paths, number, shape or dtype.
    """
    path = os.fspath(path)
    entries = _entries(_read_arrays(path), path, "load_checkpoint")
    return _unflatten_like(entries, like, file=path)
