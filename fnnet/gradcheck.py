"""Finite-difference gradient checks of any scalar function of a pytree.

The check compares the gradient from ``jax.grad`` with central differences taken one
coordinate at a time,

    g_approx[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps),

and reports the relative difference

    ||g - g_approx||_2 / (||g||_2 + ||g_approx||_2)

over the whole tree. In float64 a correct gradient gives about 1e-9 or less; a
wrong one gives something of order 1e-2 to 1. In float32 the rounding error of
the differences (about 1e-7 / eps) swamps the check, so every function here refuses
anything but float64 inputs.

``f`` is evaluated about ``2 n`` times on the same tree: a ``jax.random.key`` that
``f`` closes over (a fixed dropout mask) is reused on purpose, so the key-reuse checker
(``jax_debug_key_reuse``) is switched off inside the check.

Imports: jax, numpy.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

__all__ = ["relative_difference", "check_gradients", "numerical_gradient"]

# Largest number of floats in one vectorised chunk of perturbed inputs (chunk * n).
_MAX_CHUNK_ELEMENTS = 1 << 20
_MAX_CHUNK = 256
# Up to this many coordinates, eager evaluation beats compiling a vmapped function.
_EAGER_MAX_COORDINATES = 64


def _check_tree(name: str, tree: Any) -> None:
    if not jax.config.jax_enable_x64:
        raise TypeError(
            f"{name}: a finite-difference check is meaningless in float32; enable float64 "
            "first (jax.config.update('jax_enable_x64', True) or `with jax.enable_x64(True):`)")
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    if not leaves:
        raise ValueError(f"{name}: the input tree has no array leaves")
    for path, leaf in leaves:
        dtype = getattr(leaf, "dtype", None)
        if dtype is None:
            dtype = np.result_type(leaf)
        if np.dtype(dtype) != np.float64:
            raise TypeError(
                f"{name}: every leaf must be float64 (a check in lower precision is "
                f"meaningless), but leaf {jax.tree_util.keystr(path) or '<root>'} has dtype "
                f"{np.dtype(dtype).name}")


def _scalar_fn(name: str, f: Callable, unravel: Callable) -> Callable:
    def h(v):
        out = f(unravel(v))
        if jnp.shape(out) != ():
            raise ValueError(f"{name}: f must return a scalar, got shape {jnp.shape(out)}")
        if jnp.result_type(out) != jnp.float64:
            raise TypeError(f"{name}: f must return a float64 scalar (it computes in "
                            f"{jnp.result_type(out)}), the check is meaningless otherwise")
        return out
    return h


def _differences_vectorised(h: Callable, x: jax.Array, eps: float) -> np.ndarray:
    n = x.shape[0]
    chunk = int(max(1, min(_MAX_CHUNK, n, _MAX_CHUNK_ELEMENTS // max(n, 1))))

    @jax.jit
    def diff(idx):
        basis = jax.nn.one_hot(idx, n, dtype=x.dtype) * eps      # (chunk, n)
        plus = jax.vmap(h)(x[None, :] + basis)
        minus = jax.vmap(h)(x[None, :] - basis)
        return (plus - minus) / (2 * eps)

    out = np.empty(n, np.float64)
    for start in range(0, n, chunk):
        idx = np.arange(start, start + chunk)
        idx = np.minimum(idx, n - 1)        # pad the last chunk: one compile only
        vals = np.asarray(diff(jnp.asarray(idx)))
        stop = min(start + chunk, n)
        out[start:stop] = vals[: stop - start]
    return out


def _differences_loop(h: Callable, x: jax.Array, eps: float) -> np.ndarray:
    xs = np.asarray(x)
    out = np.empty(xs.shape[0], np.float64)
    for i in range(xs.shape[0]):
        plus, minus = xs.copy(), xs.copy()
        plus[i] += eps
        minus[i] -= eps
        out[i] = (float(h(jnp.asarray(plus))) - float(h(jnp.asarray(minus)))) / (2 * eps)
    return out


def numerical_gradient(f: Callable[[Any], jax.Array], tree: Any, eps: float = 1e-6, *,
                       vectorize: bool | None = None) -> Any:
    """Central-difference gradient of a scalar ``f`` at ``tree`` (float64 only).

    ``g[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` for every coordinate ``i``
    of every leaf; error ``O(eps^2)`` from truncation plus ``O(u/eps)`` from rounding.

    Args:
      f: a function of the tree returning a float64 scalar.
      tree: a pytree of float64 arrays.
      eps: the step.
      vectorize: ``True`` evaluates the perturbed inputs in jitted ``vmap`` chunks,
        ``False`` one at a time, eagerly, in Python; ``None`` (default) evaluates trees of
        at most 64 coordinates eagerly (faster than compiling), larger ones vectorised,
        falling back to the loop if ``f`` cannot be traced (data-dependent Python
        control flow).

    Returns:
      A tree like ``tree`` with the approximate gradient.
    """
    name = "numerical_gradient"
    _check_tree(name, tree)
    with jax.debug_key_reuse(False):   # a key closed over by f is reused on purpose
        return _numerical_gradient(name, f, tree, eps, vectorize)


def _numerical_gradient(name, f, tree, eps, vectorize):
    x, unravel = ravel_pytree(tree)
    h = _scalar_fn(name, f, unravel)
    if vectorize is None and x.shape[0] <= _EAGER_MAX_COORDINATES:
        flat = _differences_loop(h, x, eps)
    elif vectorize is None:
        try:
            flat = _differences_vectorised(h, x, eps)
        except jax.errors.JAXTypeError:
            flat = _differences_loop(h, x, eps)
    elif vectorize:
        flat = _differences_vectorised(h, x, eps)
    else:
        flat = _differences_loop(h, x, eps)
    return unravel(jnp.asarray(flat, dtype=x.dtype))


def _both(name, f, tree, eps, vectorize):
    _check_tree(name, tree)
    with jax.debug_key_reuse(False):
        approx = _numerical_gradient(name, f, tree, eps, vectorize)
        grad = jax.grad(f)(tree)
    return grad, approx


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    den = np.linalg.norm(a) + np.linalg.norm(b)
    if den == 0.0:
        return 0.0
    return float(np.linalg.norm(a - b) / den)


def relative_difference(f: Callable[[Any], jax.Array], tree: Any, eps: float = 1e-6, *,
                        vectorize: bool | None = None) -> float:
    """Relative difference between ``jax.grad(f)`` and central differences at ``tree``.

    ``||g - g_approx|| / (||g|| + ||g_approx||)`` over all leaves flattened together
    (0.0 when both gradients are zero). Below 1e-7 in float64 means the gradient is
    right; of order 1e-2 or more means it is wrong.

    Args:
      f: scalar function of the tree (float64 output).
      tree: a pytree of float64 arrays; anything else raises ``TypeError``.
      eps: the finite-difference step.
      vectorize: see :func:`numerical_gradient`.

    Returns:
      The relative difference as a Python float.

    >>> import jax, jax.numpy as jnp
    >>> with jax.enable_x64(True):
    ...     d = relative_difference(lambda t: jnp.sum(jnp.sin(t["w"])), {"w": jnp.ones(3)})
    >>> d < 1e-7
    True
    """
    grad, approx = _both("relative_difference", f, tree, eps, vectorize)
    return _relative(np.asarray(ravel_pytree(grad)[0]), np.asarray(ravel_pytree(approx)[0]))


def check_gradients(f: Callable[[Any], jax.Array], tree: Any, tol: float = 1e-7,
                    eps: float = 1e-6, *, vectorize: bool | None = None) -> float:
    """Assert that ``jax.grad(f)`` agrees with central differences at ``tree``.

    Raises ``AssertionError`` naming the relative difference, the leaf that differs
    most and its worst coordinate when ``relative_difference(f, tree, eps) > tol``.

    Returns:
      The relative difference (a float at most ``tol``).
    """
    grad, approx = _both("check_gradients", f, tree, eps, vectorize)
    diff = _relative(np.asarray(ravel_pytree(grad)[0]), np.asarray(ravel_pytree(approx)[0]))
    if not diff <= tol:
        worst = None
        g_leaves = jax.tree_util.tree_flatten_with_path(grad)[0]
        a_leaves = jax.tree.leaves(approx)
        for (path, g), a in zip(g_leaves, a_leaves):
            g, a = np.asarray(g), np.asarray(a)
            d = _relative(g.ravel(), a.ravel())
            if worst is None or d > worst[1]:
                i = np.unravel_index(int(np.argmax(np.abs(g - a))), g.shape) if g.size else ()
                worst = (jax.tree_util.keystr(path) or "<root>", d, i, g[i] if g.size else None,
                         a[i] if a.size else None)
        path, d, i, gi, ai = worst
        raise AssertionError(
            f"check_gradients: relative difference {diff:.3e} exceeds tol {tol:.1e}; leaf "
            f"{path} differs most ({d:.3e}), at index {tuple(int(k) for k in i)}: "
            f"jax.grad gives {gi!r}, central differences give {ai!r}")
    return diff
