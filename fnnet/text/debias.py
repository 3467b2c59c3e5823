"""Debiasing word embeddings (Bolukbasi et al. 2016, "Man is to Computer Programmer as
Woman is to Homemaker? Debiasing Word Embeddings").

Three steps, as in the paper and the course notes:

1. **A bias direction** ``g`` from definitional pairs ``(a_i, b_i)`` (``("woman",
   "man")``, ``("she", "he")``, ...): the mean difference ``mean_i (a_i - b_i)`` (the
   notes' ``g = e_woman - e_man`` for one pair), or the first principal component of
   the pair-centred vectors ``a_i - mu_i``, ``b_i - mu_i`` with ``mu_i = (a_i + b_i) / 2``
   (the paper's PCA), see :func:`bias_direction` and :func:`definitional_pca`.
2. **Neutralise** a word that should carry no bias (an occupation): remove its
   component along ``g``, ``e_B = (e . g / ||g||^2) g``, ``e' = e - e_B``
   (:func:`neutralize`).
3. **Equalise** a pair that should differ only along ``g`` (``actor / actress``):
   both words get the same component orthogonal to ``g`` and mirror components along
   it, so every neutralised word is equally far from both (:func:`equalize`).

Every function is a pure ``jax.numpy`` function of arrays (``jit``, ``vmap`` and
``grad`` apply); shapes are checked before any compute. Directions are oriented from
the second word of each pair to the first: pairs ``("woman", "man")`` give a ``g``
pointing towards "woman", as the notes' ``e_woman - e_man``.

Imports: jax, numpy.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet.functional._checks import as_int, check_floating, check_rank

__all__ = ["bias_direction", "definitional_pca", "bias_component", "projection", "neutralize", "equalize"]


def _check_pairs(name: str, pairs) -> jax.Array:
    pairs = jnp.asarray(pairs)
    check_floating(name, "pairs", pairs)
    if pairs.ndim != 3 or pairs.shape[1] != 2 or pairs.shape[0] < 1 or pairs.shape[2] < 1:
        raise ValueError(f"{name}: expected pairs of shape (P, 2, d) with P >= 1 (the vectors of P "
                         f"definitional word pairs), got shape {pairs.shape}")
    return pairs


def _check_direction(name: str, direction, d: int | None = None) -> jax.Array:
    direction = jnp.asarray(direction)
    check_floating(name, "direction", direction)
    check_rank(name, "a direction (d,)", direction, 1)
    if d is not None and direction.shape[0] != d:
        raise ValueError(f"{name}: expected a direction of shape ({d},) (the vectors' last axis), "
                         f"got shape {direction.shape}")
    return direction


def _times(scale, g) -> jax.Array:
    """``scale[..., None] * g`` with ``g (d,)`` reshaped to the rank of the result (no
    implicit rank promotion)."""
    scale = scale[..., None]
    return scale * g.reshape((1,) * (scale.ndim - 1) + g.shape)


def _check_vectors(name: str, what: str, e) -> jax.Array:
    e = jnp.asarray(e)
    check_floating(name, what, e)
    if e.ndim < 1:
        raise ValueError(f"{name}: expected {what} of shape (..., d), got a scalar")
    return e


def definitional_pca(pairs, num_components: int | None = None) -> tuple[jax.Array, jax.Array]:
    """Principal components of the pair-centred definitional vectors (the paper's PCA).

    For each pair ``mu_i = (a_i + b_i) / 2``; the ``2P`` rows ``a_i - mu_i`` and
    ``b_i - mu_i`` (= ``+-(a_i - b_i) / 2``, so their mean is zero) are decomposed by SVD,
    ``X = U S V^T``; the components are the rows of ``V^T`` and the explained variance
    ratio is ``S_k^2 / sum_j S_j^2`` (what ``sklearn.decomposition.PCA`` gives on
    ``X``, as in Bolukbasi et al.'s ``doPCA``). Each component's sign is fixed so that
    it has a non-negative dot product with the mean difference ``mean_i (a_i - b_i)``
    (it then points towards the pairs' first words).

    Args:
      pairs: ``(P, 2, d)`` floating vectors of ``P`` pairs.
      num_components: how many to return (default ``min(2P, d)``, all of them).

    Returns:
      ``(components (k, d)`` unit rows, ``explained_variance_ratio (k,))``.
    """
    name = "definitional_pca"
    pairs = _check_pairs(name, pairs)
    full = min(2 * pairs.shape[0], pairs.shape[2])
    k = full if num_components is None else as_int(name, "num_components", num_components, minimum=1)
    if k > full:
        raise ValueError(f"{name}: expected num_components <= min(2P, d) = {full} for pairs of shape "
                         f"{pairs.shape}, got {k}")
    half = (pairs[:, 0] - pairs[:, 1]) / 2
    rows = jnp.concatenate([half, -half], axis=0)                      # a - mu, b - mu
    _, s, vt = jnp.linalg.svd(rows, full_matrices=False)
    sign = jnp.where(vt[:k] @ jnp.mean(half, axis=0) < 0, -1.0, 1.0).astype(vt.dtype)
    variance = s ** 2
    return vt[:k] * sign[:, None], variance[:k] / jnp.sum(variance)


def bias_direction(pairs, *, method: str = "difference") -> jax.Array:
    """The bias direction ``g (d,)`` of definitional pairs ``(a_i, b_i)``.

    - ``method="difference"``: ``g = (1/P) sum_i (a_i - b_i)``, unnormalised (the
      notes' ``g = e_woman - e_man`` for one pair).
    - ``method="pca"``: the first principal component of the pair-centred vectors
      (:func:`definitional_pca`), a unit vector pointing towards the first words.

    :func:`neutralize` and :func:`equalize` depend only on the line of ``g``, not on
    its length or sign.

    Args:
      pairs: ``(P, 2, d)`` floating vectors of ``P`` pairs, first word, second word.
      method: ``"difference"`` or ``"pca"``.
    """
    name = "bias_direction"
    if method not in ("difference", "pca"):
        raise ValueError(f"{name}: expected method 'difference' or 'pca', got {method!r}")
    pairs = _check_pairs(name, pairs)
    if method == "difference":
        return jnp.mean(pairs[:, 0] - pairs[:, 1], axis=0)
    return definitional_pca(pairs, 1)[0][0]


def bias_component(e, direction) -> jax.Array:
    """The component of ``e (..., d)`` along ``g``: ``e_B = (e . g / ||g||^2) g``."""
    name = "bias_component"
    e = _check_vectors(name, "vectors e", e)
    g = _check_direction(name, direction, e.shape[-1])
    return _times((e @ g) / (g @ g), g)


def projection(e, direction) -> jax.Array:
    """The scalar projection of ``e (..., d)`` on ``g``: ``e . g / ||g||`` (shape ``...``).

    On unit vectors it is the cosine similarity with ``g``, the number Bolukbasi et al.
    plot for occupations.
    """
    name = "projection"
    e = _check_vectors(name, "vectors e", e)
    g = _check_direction(name, direction, e.shape[-1])
    return (e @ g) / jnp.sqrt(g @ g)


def neutralize(e, direction, *, renormalize: bool = False) -> jax.Array:
    """Remove the bias component: ``e' = e - (e . g / ||g||^2) g`` for ``e (..., d)``.

    Then ``e' . g = 0``. With ``renormalize=True`` the result is scaled to unit length,
    ``e' / ||e'||``, as in the paper (which works with unit vectors); the notes keep the
    length (the default).
    """
    name = "neutralize"
    e = _check_vectors(name, "vectors e", e)
    g = _check_direction(name, direction, e.shape[-1])
    out = e - _times((e @ g) / (g @ g), g)
    if renormalize:
        out = out / jnp.linalg.norm(out, axis=-1, keepdims=True)
    return out


def _safe_norm(v):
    """``||v||`` over the last axis, with a finite gradient at ``v = 0``."""
    sq = jnp.sum(v * v, axis=-1, keepdims=True)
    safe = jnp.where(sq > 0, sq, 1.0)
    return jnp.where(sq > 0, jnp.sqrt(safe), 0.0)


def equalize(e1, e2, direction, *, form: str = "paper") -> tuple[jax.Array, jax.Array]:
    """Equalise a pair ``e1, e2 (..., d)`` about the direction ``g`` (Bolukbasi et al. 2016)::

        mu = (e1 + e2) / 2,   mu_B = (mu . g / ||g||^2) g,   nu = mu - mu_B
        e_iB = (e_i . g / ||g||^2) g
        e_i' = nu + sqrt(|1 - ||nu||^2|) (e_iB - mu_B) / D_i

    with ``D_i = ||e_iB - mu_B||`` (``form="paper"``; for unit inputs both outputs have
    unit length) or ``D_i = ||e_i - nu - mu_B|| = ||e_i - mu||`` (``form="notes"``, the
    course's formula, which the notes apply to unnormalised GloVe vectors). In both
    forms the two results share the component ``nu`` orthogonal to ``g`` and have
    opposite components along it (``e_1B' = -e_2B'``), so their norms are equal and
    every neutralised word is equidistant from them. A pair that does not differ along
    ``g`` (``e_1B = mu_B``) has nothing to mirror and comes back as ``(nu, nu)``.

    Args:
      e1, e2: the pair's vectors, same shape ``(..., d)`` (a batch of pairs is fine).
      direction: the bias direction ``g (d,)``.
      form: ``"paper"`` or ``"notes"`` (the denominator ``D_i`` above).

    Returns:
      ``(e1', e2')``, each of ``e1``'s shape.
    """
    name = "equalize"
    if form not in ("paper", "notes"):
        raise ValueError(f"{name}: expected form 'paper' or 'notes', got {form!r}")
    e1 = _check_vectors(name, "vectors e1", e1)
    e2 = _check_vectors(name, "vectors e2", e2)
    if e1.shape != e2.shape:
        raise ValueError(f"{name}: expected e1 and e2 of the same shape, got {e1.shape} and {e2.shape}")
    g = _check_direction(name, direction, e1.shape[-1])
    gg = g @ g

    def along(v):
        return _times((v @ g) / gg, g)

    mu = (e1 + e2) / 2
    mu_b = along(mu)
    nu = mu - mu_b
    scale = jnp.sqrt(jnp.abs(1.0 - jnp.sum(nu * nu, axis=-1, keepdims=True)))
    out = []
    for e in (e1, e2):
        offset = along(e) - mu_b
        denom = _safe_norm(offset if form == "paper" else e - mu)
        safe = jnp.where(denom > 0, denom, 1.0)
        out.append(nu + jnp.where(denom > 0, scale * offset / safe, 0.0))
    return out[0], out[1]
