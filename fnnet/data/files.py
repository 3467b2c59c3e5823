"""Readers for standard data-set files: MNIST's IDX format and CIFAR-10's python batches.

Both return NumPy arrays in fnnet's conventions: images NHWC float32 with the file's
raw values (0..255; divide by 255 to rescale), labels int32.

Imports: numpy and the standard library.
"""
from __future__ import annotations

import gzip
import os
import pickle

import numpy as np

__all__ = ["load_mnist_idx", "load_mnist", "load_cifar10_batch", "load_cifar10"]

# IDX type codes (http://yann.lecun.com/exdb/mnist/): all big-endian.
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":              # gzip magic, whatever the file name
        raw = gzip.decompress(raw)
    return raw


def load_mnist_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (MNIST, Fashion-MNIST, EMNIST), plain or gzipped.

    Format: two zero bytes, a type code, the number of dimensions ``d``, ``d``
    big-endian uint32 sizes, then the data in C order.

    Returns:
      Images (3-d files ``(n, h, w)``) as NHWC float32 ``(n, h, w, 1)``; 1-d integer
      files (labels) as int32 ``(n,)``; any other file as float32 of its shape.

    Raises:
      ValueError: if the header is not IDX or the data size does not match it.
    """
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"load_mnist_idx: {os.fspath(path)!r} is not an IDX file "
                         f"(header {raw[:4]!r})")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"load_mnist_idx: {os.fspath(path)!r} is truncated in its header")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"load_mnist_idx: {os.fspath(path)!r} header says shape {shape} "
                         f"({expected} bytes of {dtype}) but {len(raw) - header} bytes follow")
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    if ndim == 1 and np.issubdtype(dtype, np.integer):
        return data.astype(np.int32)
    if ndim == 3:
        return data.astype(np.float32)[..., None]
    return data.astype(np.float32)


def load_mnist(directory: str | os.PathLike, prefix: str = ""):
    """Read the four MNIST IDX files from ``directory`` (plain or ``.gz``).

    Looks for ``{prefix}train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally with a
    ``.gz`` suffix (Fashion-MNIST uses the same names).

    Returns:
      ``((x_train, y_train), (x_test, y_test))``: x float32 NHWC ``(n, 28, 28, 1)``
      with values 0..255, y int32.
    """
    def find(stem):
        for name in (prefix + stem, prefix + stem + ".gz"):
            path = os.path.join(directory, name)
            if os.path.exists(path):
                return path
        raise FileNotFoundError(f"load_mnist: no {prefix + stem}[.gz] in {os.fspath(directory)!r}")

    out = []
    for split in ("train", "t10k"):
        x = load_mnist_idx(find(f"{split}-images-idx3-ubyte"))
        y = load_mnist_idx(find(f"{split}-labels-idx1-ubyte"))
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"load_mnist: {split} has {x.shape[0]} images but {y.shape[0]} labels")
        out.append((x, y))
    return tuple(out)


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only, so a file cannot run code."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"load_cifar10_batch: refusing to load {module}.{name} "
                                     "(only NumPy arrays and plain containers are allowed)")


def load_cifar10_batch(path: str | os.PathLike):
    """Read one CIFAR-10 python batch (``data_batch_1`` ... ``test_batch``).

    The file is a pickled dict with ``b'data'``, a uint8 ``(n, 3072)`` array whose rows
    hold the red, green and blue 32x32 planes in turn (row-major), and ``b'labels'``, a
    list of n ints in 0..9. Unpickling is restricted to arrays and plain containers.

    Returns:
      ``(x, y)``: x float32 NHWC ``(n, 32, 32, 3)`` with values 0..255, y int32 ``(n,)``.
    """
    with open(path, "rb") as f:
        d = _ArraysOnlyUnpickler(f, encoding="bytes").load()
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        keys = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"load_cifar10_batch: {os.fspath(path)!r} is not a CIFAR-10 batch "
                         f"(expected a dict with b'data' and b'labels', got {keys})")
    data = np.asarray(d[b"data"])
    labels = np.asarray(d[b"labels"], np.int32)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise ValueError(f"load_cifar10_batch: expected data (n, 3072) and n labels, got data "
                         f"{data.shape} and {labels.shape[0]} labels")
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32)
    return x, labels


def load_cifar10(directory: str | os.PathLike):
    """Read the extracted ``cifar-10-batches-py`` directory.

    Returns:
      ``((x_train, y_train), (x_test, y_test))`` from ``data_batch_1..5`` and ``test_batch``.
    """
    parts = [load_cifar10_batch(os.path.join(directory, f"data_batch_{i}")) for i in range(1, 6)]
    x_test, y_test = load_cifar10_batch(os.path.join(directory, "test_batch"))
    return ((np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])),
            (x_test, y_test))
