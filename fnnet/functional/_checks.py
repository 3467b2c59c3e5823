"""Shared input checks and small helpers for the kernels.

Every check runs on static shapes at trace time and raises an error that names the
kernel, what it expected and what it got.

Integer arguments (features, groups, windows, strides, scales) go through
:func:`as_int` / :func:`as_ints`: anything ``operator.index`` accepts (a Python or
NumPy integer) becomes a Python int; bools, floats and other types raise a TypeError.

Imports: jax, numpy.
"""
from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np


def check_rank(name: str, what: str, x, ranks) -> None:
    """Raise unless ``x.ndim`` is in ``ranks`` (an int or a collection of ints)."""
    ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    if jnp.ndim(x) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ValueError(f"{name}: expected {what} of rank {want}, got shape {jnp.shape(x)}")


def check_floating(name: str, what: str, x) -> None:
    """Raise a ``TypeError`` unless ``x`` has a floating-point dtype."""
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise TypeError(f"{name}: expected {what} of a floating dtype, got {jnp.result_type(x)}")


def bias_add(name: str, y: jax.Array, bias: jax.Array | None) -> jax.Array:
    """``y + bias`` over the last axis, with an explicit (not promoted) broadcast."""
    if bias is None:
        return y
    if bias.shape != y.shape[-1:]:
        raise ValueError(f"{name}: expected bias of shape {y.shape[-1:]}, got {bias.shape}")
    return y + bias.reshape((1,) * (y.ndim - 1) + bias.shape)


def as_int(name: str, what: str, value, minimum: int | None = None) -> int:
    """``value`` as a Python int by ``operator.index`` (Python and NumPy integers).

    Raises a ``TypeError`` for a bool, a float or any non-integer, and a ``ValueError``
    when ``value < minimum``; both name the function, ``what`` and the value.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected {what} as an int, got the bool {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected {what} as an int, got {value!r} of type "
                        f"{type(value).__name__}") from None
    if minimum is not None and v < minimum:
        want = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name}: expected {what} as {want}, got {v}")
    return v


def as_ints(name: str, what: str, value, minimum: int | None = None):
    """An int, or a sequence of ints, through :func:`as_int`: an int stays an int and a
    sequence becomes a tuple (its length is the caller's to check)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or np.ndim(value) == 0:
        return as_int(name, what, value, minimum)
    return tuple(as_int(name, what, v, minimum) for v in value)
