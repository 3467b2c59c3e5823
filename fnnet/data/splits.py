"""Splits, standardisation, one-hot encoding and mini-batches, all driven by explicit keys.

Splits and shuffles are deterministic functions of a ``jax.random.key``: the same key
gives the same partition on every machine. Arrays may be NumPy or JAX, and ``x`` or
``y`` a pytree of arrays sharing axis 0 (a tuple of images and tokens); splits and
batches index every array with NumPy integer arrays and return the same kind.

Imports: numpy, jax.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["train_test_split", "train_dev_test_split", "split_indices", "fit_standardizer",
           "apply_standardizer", "one_hot", "batches", "num_examples", "take_examples"]


def num_examples(who: str, x, y) -> int:
    """The number of examples of ``(x, y)``, each an array or a pytree of arrays (a tuple
    of images and tokens, a dict): every array holds the examples along axis 0.

    Raises:
      ValueError: an array without axis 0, an empty tree, or lengths that differ
        (the message lists every array's shape).
    """
    shapes = []
    for what, tree in (("x", x), ("y", y)):
        leaves = jax.tree_util.tree_leaves_with_path(tree)
        if not leaves:
            raise ValueError(f"{who}: expected an array or a pytree of arrays as {what}, got {tree!r}")
        shapes += [(what + jax.tree_util.keystr(path), np.shape(leaf)) for path, leaf in leaves]
    if any(len(shape) < 1 for _, shape in shapes) or len({shape[0] for _, shape in shapes}) > 1:
        listed = " and ".join(f"{name} {shape}" for name, shape in shapes)
        raise ValueError(f"{who}: x and y must have the same number of examples along axis 0, got {listed}")
    return shapes[0][1][0]


def take_examples(tree, idx):
    """The examples ``idx`` (an index array or a slice) of every array of ``tree``."""
    return jax.tree.map(lambda a: a[idx], tree)


def _permutation(key, n: int) -> np.ndarray:
    return np.asarray(jax.random.permutation(key, n))


def split_indices(key, n: int, fractions: Sequence[float], *, labels=None) -> list[np.ndarray]:
    """Partition ``range(n)`` into ``len(fractions) + 1`` index arrays.

    Part ``i`` (for ``i < len(fractions)``) takes ``round(fractions[i] * n)`` examples and
    the last part the rest. With ``labels`` (integer, shape ``(n,)``) the split is
    stratified: the i-th class (in sorted order) is permuted with its own key
    ``fold_in(fold_in(key, 0), i)`` and divided by the same fractions (rounded per class,
    so totals may differ from the unstratified counts by up to one per class). Part
    ``i`` is returned in the random order ``fold_in(fold_in(key, 1), i)``, not sorted,
    so class-sorted data sets come out mixed.
    """
    fr = np.asarray(fractions, np.float64)
    if fr.ndim != 1 or np.any(fr <= 0) or fr.sum() >= 1:
        raise ValueError(f"split_indices: fractions must be positive and sum to less than 1, "
                         f"got {list(fractions)}")
    groups = [np.arange(n)]
    group_key, order_key = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    group_keys = [jax.random.fold_in(group_key, 0)]
    if labels is not None:
        labels = np.asarray(labels)
        if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (n,):
            raise ValueError(f"split_indices: stratify needs integer labels of shape ({n},), got "
                             f"{labels.dtype} {labels.shape}")
        classes = np.unique(labels)
        groups = [np.flatnonzero(labels == c) for c in classes]
        group_keys = [jax.random.fold_in(group_key, i) for i in range(len(classes))]
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fr) + 1)]
    for idx, k in zip(groups, group_keys):
        idx = idx[_permutation(k, len(idx))]
        bounds = np.round(np.cumsum(fr) * len(idx)).astype(int)
        for i, piece in enumerate(np.split(idx, bounds)):
            parts[i].append(piece)
    out = []
    for i, p in enumerate(parts):
        p = np.concatenate(p)
        out.append(p[_permutation(jax.random.fold_in(order_key, i), len(p))])
    return out


def train_test_split(key, x, y, test_fraction: float, *, stratify: bool = True):
    """Split ``(x, y)`` into train and test sets at random from ``key``.

    Args:
      key: a ``jax.random.key``; the same key gives the same split.
      x, y: arrays with the examples along axis 0.
      test_fraction: in (0, 1); the test set has ``round(test_fraction * n)`` examples
        (per class when stratified).
      stratify: keep each class's proportion in both parts (needs integer ``y``).

    Returns:
      ``((x_train, y_train), (x_test, y_test))``.
    """
    n = num_examples("train_test_split", x, y)
    if not 0 < test_fraction < 1:
        raise ValueError(f"train_test_split: test_fraction must lie in (0, 1), got {test_fraction}")
    test, train = split_indices(key, n, [test_fraction], labels=y if stratify else None)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"train_test_split: a part is empty ({len(train)} train, {len(test)} test)")
    return (take_examples(x, train), take_examples(y, train)), (take_examples(x, test), take_examples(y, test))


def train_dev_test_split(key, x, y, dev_fraction: float, test_fraction: float, *,
                         stratify: bool = True):
    """Split ``(x, y)`` into train, dev (validation) and test sets at random from ``key``.

    The dev and test sets take ``round(fraction * n)`` examples (per class when
    stratified); the training set the rest.

    Returns:
      ``((x_train, y_train), (x_dev, y_dev), (x_test, y_test))``.
    """
    n = num_examples("train_dev_test_split", x, y)
    if not (0 < dev_fraction and 0 < test_fraction and dev_fraction + test_fraction < 1):
        raise ValueError(f"train_dev_test_split: fractions must be positive with a sum below 1, "
                         f"got dev {dev_fraction} and test {test_fraction}")
    dev, test, train = split_indices(key, n, [dev_fraction, test_fraction],
                                     labels=y if stratify else None)
    if min(len(train), len(dev), len(test)) == 0:
        raise ValueError(f"train_dev_test_split: a part is empty ({len(train)} train, "
                         f"{len(dev)} dev, {len(test)} test)")
    return tuple((take_examples(x, i), take_examples(y, i)) for i in (train, dev, test))


def fit_standardizer(x_train, axis: int | tuple[int, ...] = 0):
    """Per-feature mean and standard deviation of the training data.

    ``mean = x.mean(axis)``, ``std = x.std(axis)`` (population, ``ddof=0``, as sklearn's
    ``StandardScaler``), with a zero std replaced by 1 so constant features map to 0.
    Fit on the training split only and apply the same statistics to dev and test.

    Args:
      x_train: ``(n, ...)`` array.
      axis: the axes to reduce; 0 for ``(n, d)`` tables, ``(0, 1, 2)`` for per-channel
        statistics of NHWC images. They must be the leading axes.

    Returns:
      ``(mean, std)`` float32 NumPy arrays of shape ``x_train.shape[len(axes):]``.
    """
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if axes != tuple(range(len(axes))) or len(axes) > np.ndim(x_train):
        raise ValueError(f"fit_standardizer: axis must be the leading axes (0, ..., k-1) of x "
                         f"{np.shape(x_train)}, got {axis}")
    x = np.asarray(x_train, np.float64)
    mean = x.mean(axis=axes)
    std = x.std(axis=axes)
    std = np.where(std > 0, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def apply_standardizer(x, mean, std):
    """``(x - mean) / std`` with ``mean`` and ``std`` aligned to the trailing axes of ``x``.

    The broadcast is explicit (``mean`` is reshaped to ``x``'s rank), so this works under
    ``jax_numpy_rank_promotion="raise"``; a trailing-shape mismatch raises ``ValueError``.
    Returns an array of ``x``'s kind (NumPy or JAX) and float dtype.
    """
    k = np.ndim(mean)
    if np.shape(mean) != np.shape(std) or tuple(np.shape(x)[np.ndim(x) - k:]) != np.shape(mean):
        raise ValueError(f"apply_standardizer: mean {np.shape(mean)} and std {np.shape(std)} must "
                         f"match the trailing axes of x {np.shape(x)}")
    shape = (1,) * (np.ndim(x) - k) + tuple(np.shape(mean))
    xp = jnp if isinstance(x, jax.Array) else np
    dtype = x.dtype if xp.issubdtype(x.dtype, xp.floating) else xp.float32
    mean = xp.asarray(mean, dtype).reshape(shape)
    std = xp.asarray(std, dtype).reshape(shape)
    return (x.astype(dtype) - mean) / std


def one_hot(y, num_classes: int, dtype=jnp.float32) -> jax.Array:
    """One-hot rows: ``out[..., k] = 1 if y == k else 0``, shape ``y.shape + (num_classes,)``.

    Integer labels outside ``[0, num_classes)`` raise ``ValueError`` when ``y`` is
    concrete (under ``jit`` they give an all-zero row, as ``jax.nn.one_hot``).
    """
    if not jnp.issubdtype(jnp.result_type(y), jnp.integer):
        raise TypeError(f"one_hot: expected integer labels, got dtype {jnp.result_type(y)}")
    if not isinstance(y, jax.core.Tracer) and np.size(y):
        lo, hi = int(np.min(np.asarray(y))), int(np.max(np.asarray(y)))
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"one_hot: labels must lie in [0, {num_classes}), got values from "
                             f"{lo} to {hi}")
    return jax.nn.one_hot(y, num_classes, dtype=dtype)


def batches(x, y, batch_size: int, *, key=None, shuffle: bool = True,
            drop_last: bool = False) -> Iterator[tuple]:
    """Iterate over mini-batches ``(x[idx], y[idx])`` of one epoch.

    With ``shuffle=True`` the order is ``jax.random.permutation(key, n)`` (``key``
    required: use a fresh one per epoch, e.g. ``fold_in(key, epoch)``); with
    ``shuffle=False`` the batches follow the data's order and ``key`` is not used. The
    last batch has ``n % batch_size`` examples unless ``drop_last`` drops it.
    Arguments are checked when called, not on the first ``next``.

    Yields:
      ``(xb, yb)`` of the input arrays' kind.
    """
    n = num_examples("batches", x, y)
    if not (isinstance(batch_size, (int, np.integer)) and batch_size > 0):
        raise ValueError(f"batches: batch_size must be a positive int, got {batch_size!r}")
    if shuffle and key is None:
        raise ValueError("batches: shuffle=True needs a key (jax.random.key); pass key=... or "
                         "shuffle=False")
    order = _permutation(key, n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n

    def gen():
        for i in range(0, stop, batch_size):
            idx = order[i:i + batch_size]
            yield take_examples(x, idx), take_examples(y, idx)

    return gen()
