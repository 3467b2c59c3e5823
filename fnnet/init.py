"""Initialisers: factories returning ``init(key, shape, dtype=float32) -> array``.

Each says exactly what it draws. Fans follow the channels-last kernel layouts of
fnnet (dense ``(in, out)``, conv ``(*window, in, out)``):
``fan_in = prod(window) * in`` and ``fan_out = prod(window) * out``.

Unlike ``jax.nn.initializers``, the ``he_*``, ``xavier_*`` and ``lecun_*`` normal
initialisers are the textbook *untruncated* normals.

Imports: jax only.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]

__all__ = [
    "Initializer", "fans", "zeros", "ones", "constant", "normal", "uniform",
    "xavier_normal", "xavier_uniform", "glorot_normal", "glorot_uniform",
    "he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "orthogonal",
]


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a kernel of ``shape``: ``(*window, in, out)``.

    A 1-D shape (a bias) has ``fan_in = fan_out = shape[0]``.
    """
    shape = tuple(shape)
    if len(shape) == 0:
        raise ValueError("fans: expected a shape with at least one dimension, got ()")
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * shape[-1]


def constant(value: float) -> Initializer:
    """Every entry equals ``value``."""
    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(shape, value, dtype)
    return init


def zeros() -> Initializer:
    """Every entry is 0."""
    return constant(0.0)


def ones() -> Initializer:
    """Every entry is 1."""
    return constant(1.0)


def _standard_normal(key, shape, dtype):
    """``N(0, 1)`` draws behind an optimisation barrier, so that scaling them rounds the
    same way eagerly and under ``jax.jit``.

    ``jax.random.normal`` ends in ``sqrt(2) * erfinv(u)``; compiled together with a
    later ``stddev * z``, XLA's algebraic simplifier folds the two constants into one
    (``erfinv(u) * (sqrt(2) stddev)``), which rounds differently from the eager
    ``stddev * (sqrt(2) erfinv(u))`` in about a third of the entries (by one ulp).
    The barrier keeps ``z`` a materialised value, as it is eagerly.
    """
    return jax.lax.optimization_barrier(jax.random.normal(key, shape, dtype))


@jax.jit
def _shift(z, stddev, mean):
    """``mean + stddev * z``, compiled: XLA may fuse it into one multiply-add (one
    rounding), and does so alike eagerly and inside a bigger compiled program."""
    return mean + stddev * z


def normal(stddev: float = 1e-2, mean: float = 0.0) -> Initializer:
    """``w ~ N(mean, stddev^2)``.

    With ``mean != 0``, ``mean + stddev * z`` runs as one compiled kernel, so it rounds
    the same eagerly and under ``jax.jit`` (where XLA would otherwise contract the
    eager two-step ``stddev * z``, ``+ mean`` into a fused multiply-add).
    """
    def init(key, shape, dtype=jnp.float32):
        z = _standard_normal(key, shape, dtype)
        if mean == 0:
            return mean + stddev * z
        return _shift(z, jnp.asarray(stddev, dtype), jnp.asarray(mean, dtype))
    return init


def uniform(limit: float = 1e-2) -> Initializer:
    """``w ~ U(-limit, limit)``."""
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -limit, limit)
    return init


def _variance_scaling(scale: float, mode: str, distribution: str) -> Initializer:
    """Normal with variance ``scale / n`` or uniform with the same variance,
    ``U(-sqrt(3 scale / n), sqrt(3 scale / n))``, where n is fan_in, fan_out or
    their mean."""
    def init(key, shape, dtype=jnp.float32):
        fan_in, fan_out = fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / n
        if distribution == "normal":
            return math.sqrt(variance) * _standard_normal(key, shape, dtype)
        limit = math.sqrt(3.0 * variance)
        return jax.random.uniform(key, shape, dtype, -limit, limit)
    return init


def xavier_normal() -> Initializer:
    """Glorot & Bengio (2010): ``N(0, 2 / (fan_in + fan_out))``."""
    return _variance_scaling(1.0, "fan_avg", "normal")


def xavier_uniform() -> Initializer:
    """Glorot & Bengio (2010): ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``."""
    return _variance_scaling(1.0, "fan_avg", "uniform")


glorot_normal = xavier_normal
glorot_uniform = xavier_uniform


def he_normal() -> Initializer:
    """He et al. (2015): ``N(0, 2 / fan_in)``, for ReLU networks."""
    return _variance_scaling(2.0, "fan_in", "normal")


def he_uniform() -> Initializer:
    """He et al. (2015): ``U(-a, a)``, ``a = sqrt(6 / fan_in)``."""
    return _variance_scaling(2.0, "fan_in", "uniform")


def lecun_normal() -> Initializer:
    """LeCun et al. (1998): ``N(0, 1 / fan_in)``."""
    return _variance_scaling(1.0, "fan_in", "normal")


def lecun_uniform() -> Initializer:
    """LeCun et al. (1998): ``U(-a, a)``, ``a = sqrt(3 / fan_in)``."""
    return _variance_scaling(1.0, "fan_in", "uniform")


def orthogonal(scale: float = 1.0) -> Initializer:
    """Saxe et al. (2014): a (semi-)orthogonal matrix times ``scale``.

    The shape is viewed as a matrix ``(prod(shape[:-1]), shape[-1])``; ``Q`` of the QR
    decomposition of a standard normal matrix, with the signs fixed by ``diag(R)`` so
    that ``Q`` is uniform (Haar) over the orthogonal group. Rows are orthonormal if
    there are fewer rows than columns, columns otherwise.
    """
    def init(key, shape, dtype=jnp.float32):
        if len(shape) < 2:
            raise ValueError(f"orthogonal: expected a shape with at least 2 dimensions, got {tuple(shape)}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = jax.random.normal(key, (max(rows, cols), min(rows, cols)), dtype)
        q, r = jnp.linalg.qr(a)
        q = q * jnp.sign(jnp.diagonal(r))[None, :]
        if rows < cols:
            q = q.T
        return (scale * q).reshape(shape)
    return init
