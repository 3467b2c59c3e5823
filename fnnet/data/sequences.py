"""Synthetic long-memory sequence tasks: the adding problem and the copy task.

Each generator is deterministic from its source of randomness, which is either a
``jax.random.key`` (the arrays are drawn with ``jax.random``, so the generator also
runs under ``jit``/``vmap``) or a NumPy seed / ``numpy.random.Generator`` (drawn with
NumPy). The two sources give different, equally valid, data sets.

Imports: numpy, jax.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["adding_problem", "copy_task"]


def _is_key(source) -> bool:
    return isinstance(source, jax.Array) and jnp.issubdtype(source.dtype, jax.dtypes.prng_key)


def _rng(name, source):
    if isinstance(source, np.random.Generator):
        return source
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        return np.random.default_rng(int(source))
    raise TypeError(f"{name}: expected a jax.random.key, an int seed or a numpy Generator, got {type(source).__name__}")


def adding_problem(source, num_examples: int, length: int, *, dtype=np.float32):
    """Hochreiter & Schmidhuber's (1997) adding problem, in the form of Le et al. (2015).

    Each input step is a pair ``(value, marker)``: values are uniform on [0, 1), and
    exactly two steps are marked with 1, one uniformly in the first half and one in the
    second half (``[0, L//2)`` and ``[L//2, L)``). The target is the sum of the two
    marked values. Predicting 1 always gives mean squared error 1/6 ~ 0.167, the bar a
    model has to beat.

    Args:
        source: a ``jax.random.key``, an int seed or a ``numpy.random.Generator``.
        num_examples: n.
        length: L >= 2, the number of time steps.

    Returns:
        ``(x, y)``: x (n, L, 2) and y (n,), float32 (or ``dtype``); JAX arrays for a
        key, NumPy arrays for a seed.
    """
    if length < 2:
        raise ValueError(f"adding_problem: length must be >= 2, got {length}")
    half = length // 2
    if _is_key(source):
        kv, k1, k2 = (jax.random.fold_in(source, i) for i in range(3))
        values = jax.random.uniform(kv, (num_examples, length), dtype)
        first = jax.random.randint(k1, (num_examples,), 0, half)
        second = jax.random.randint(k2, (num_examples,), half, length)
        steps = jnp.arange(length)[None, :]
        markers = ((steps == first[:, None]) | (steps == second[:, None])).astype(dtype)
        y = jnp.sum(values * markers, axis=1)
        return jnp.stack([values, markers], axis=-1), y
    rng = _rng("adding_problem", source)
    values = rng.random((num_examples, length)).astype(dtype)
    first = rng.integers(0, half, num_examples)
    second = rng.integers(half, length, num_examples)
    markers = np.zeros((num_examples, length), dtype)
    rows = np.arange(num_examples)
    markers[rows, first] = 1
    markers[rows, second] = 1
    y = (values * markers).sum(axis=1).astype(dtype)
    return np.stack([values, markers], axis=-1), y


def copy_task(source, num_examples: int, delay: int, *, num_symbols: int = 8, copy_length: int = 10):
    """The copy task (Hochreiter & Schmidhuber, 1997; the form of Arjovsky et al., 2016).

    Token 0 is the blank, tokens ``1..num_symbols`` are the symbols, token
    ``num_symbols + 1`` is the delimiter. The input is ``copy_length`` random symbols,
    ``delay - 1`` blanks, the delimiter and ``copy_length`` blanks (total length
    ``T = delay + 2 * copy_length``); the target is ``delay + copy_length`` blanks
    followed by the symbols. A model that outputs blanks and then guesses symbols
    uniformly has cross-entropy ``copy_length * log(num_symbols) / T`` per step.

    Args:
        source: a ``jax.random.key``, an int seed or a ``numpy.random.Generator``.
        num_examples: n.
        delay: the number of steps between the last symbol and the delimiter, plus one (>= 1).
        num_symbols: the alphabet size of the symbols.
        copy_length: how many symbols to remember.

    Returns:
        ``(x, y)``: int32 arrays (n, T); the vocabulary size is ``num_symbols + 2``.
    """
    if delay < 1 or copy_length < 1 or num_symbols < 1:
        raise ValueError(f"copy_task: delay, copy_length and num_symbols must be >= 1, got "
                         f"{delay}, {copy_length}, {num_symbols}")
    if _is_key(source):
        symbols = jax.random.randint(source, (num_examples, copy_length), 1, num_symbols + 1, jnp.int32)
        xp, zeros = jnp, jnp.zeros
    else:
        symbols = _rng("copy_task", source).integers(1, num_symbols + 1, (num_examples, copy_length)).astype(np.int32)
        xp, zeros = np, np.zeros
    n = num_examples
    delim = xp.full((n, 1), num_symbols + 1, xp.int32)
    x = xp.concatenate([symbols, zeros((n, delay - 1), xp.int32), delim, zeros((n, copy_length), xp.int32)], axis=1)
    y = xp.concatenate([zeros((n, delay + copy_length), xp.int32), symbols], axis=1)
    return x, y
