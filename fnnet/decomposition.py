"""Linear dimensionality reduction as pure functions: PCA and Fisher's LDA.

Each ``*_fit`` returns a NamedTuple of arrays (a pytree: ``jit``, ``vmap`` and
``jax.tree`` see through it), and ``*_transform`` / ``pca_inverse_transform`` are pure
functions of that tuple and the data. Rows of ``x`` are examples, columns features.

- PCA (Pearson 1901; Hotelling 1933) from the SVD of the centred data
  ``X - mean = U S V^T``: the principal axes are the rows of ``V^T``, the variance
  along axis ``k`` is ``S_k^2 / (N - 1)``. The sign of an axis is arbitrary in the SVD;
  here the entry of largest magnitude of each axis is positive (scikit-learn's
  convention since 1.5), so the result does not depend on the LAPACK build.
- LDA (Fisher 1936; Rao 1948): directions ``w`` maximising the ratio of between-class
  to within-class scatter ``J(w) = w^T S_B w / w^T S_W w``, the generalised
  eigenproblem ``S_B w = lambda S_W w``. It is solved without forming ``S_W`` or its
  inverse: the SVD of the class-centred data whitens the within-class scatter, and a
  second SVD of the whitened, weighted class means gives the directions
  (scikit-learn's ``solver="svd"`` route), which keeps the condition number of the
  data instead of squaring it.

Eigenfaces (Turk & Pentland 1991) are :func:`pca_fit` on face images; fisherfaces
(Belhumeur, Hespanha & Kriegman 1997) are :func:`lda_fit` on their PCA projection.

Imports: jax.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["PCA", "pca_fit", "pca_transform", "pca_inverse_transform", "LDA", "lda_fit", "lda_transform"]


class PCA(NamedTuple):
    """A fitted PCA of ``D`` features with ``k`` components.

    Attributes:
      mean: ``(D,)`` the feature means of the training data.
      components: ``(k, D)`` orthonormal principal axes, by decreasing variance.
      explained_variance: ``(k,)`` the variance along each axis, ``S^2 / (N - 1)``.
      explained_variance_ratio: ``(k,)`` each variance over the total variance of the data.
      singular_values: ``(k,)`` the singular values ``S`` of the centred data.
      scale: ``(k,)`` what :func:`pca_transform` divides by: ``sqrt(explained_variance)``
        if whitened, else ones.
    """
    mean: jax.Array
    components: jax.Array
    explained_variance: jax.Array
    explained_variance_ratio: jax.Array
    singular_values: jax.Array
    scale: jax.Array


class LDA(NamedTuple):
    """A fitted LDA of ``D`` features, ``C`` classes and ``k <= C - 1`` directions.

    Attributes:
      mean: ``(D,)`` the overall mean of the training data.
      scalings: ``(D, k)`` the discriminant directions ``w_j``, scaled so that the
        pooled within-class covariance ``S_W / (N - C)`` is the identity along them.
      eigenvalues: ``(k,)`` the generalised eigenvalues ``lambda_j = J(w_j)``,
        decreasing.
      explained_variance_ratio: ``(k,)`` ``lambda_j`` over the sum of all ``C - 1``
        of them (scikit-learn's ``explained_variance_ratio_``).
      class_means: ``(C, D)`` the mean of each class.
    """
    mean: jax.Array
    scalings: jax.Array
    eigenvalues: jax.Array
    explained_variance_ratio: jax.Array
    class_means: jax.Array


def _check_data(name: str, x, min_rows: int):
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name}: expected x of a floating dtype, got {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name}: expected x of shape (N, D) (examples by features), got {x.shape}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name}: expected at least {min_rows} examples, got {x.shape[0]}")
    return x


def _check_components(name: str, n_components, limit: int, what: str) -> int:
    if n_components is None:
        return limit
    if isinstance(n_components, bool) or not isinstance(n_components, int) or not 1 <= n_components <= limit:
        raise ValueError(f"{name}: expected n_components an int in [1, {limit}] ({what}), got {n_components!r}")
    return n_components


def _lead(v: jax.Array, ndim: int) -> jax.Array:
    """``v (k,)`` reshaped to rank ``ndim`` for an explicit broadcast over leading axes."""
    return jnp.reshape(v, (1,) * (ndim - 1) + v.shape)


def _sign_flip(vt: jax.Array) -> jax.Array:
    """Make the largest-magnitude entry of each row positive."""
    biggest = jnp.take_along_axis(vt, jnp.argmax(jnp.abs(vt), axis=1)[:, None], axis=1)
    return vt * jnp.where(biggest < 0, -1.0, 1.0).astype(vt.dtype)     # (k, 1) signs


def pca_fit(x: jax.Array, n_components: int | None = None, *, whiten: bool = False) -> PCA:
    """Principal component analysis of ``x`` by a thin SVD of the centred data.

    ``X - mean = U S V^T``; the components are the first ``k`` rows of ``V^T`` (sign
    fixed: the largest-magnitude entry of each is positive), with variances
    ``S_k^2 / (N - 1)`` and ratios ``S_k^2 / sum_j S_j^2`` (over all ``min(N, D)``
    singular values, so the ratios of a truncated fit sum to less than 1). Matches
    scikit-learn's ``PCA(n_components, whiten=whiten, svd_solver="full")``.

    Args:
      x: ``(N, D)`` floating, ``N >= 2``.
      n_components: ``k`` in ``[1, min(N, D)]``; None keeps all ``min(N, D)``.
      whiten: let :func:`pca_transform` divide each coordinate by its standard
        deviation, so the projected training data have unit variance.

    Returns:
      A :class:`PCA`.
    """
    name = "pca_fit"
    x = _check_data(name, x, 2)
    k = _check_components(name, n_components, min(x.shape), "at most min(N, D)")
    if not isinstance(whiten, bool):
        raise TypeError(f"{name}: expected whiten a bool, got {whiten!r}")
    return _pca(x, k, whiten)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _pca(x, k: int, whiten: bool) -> PCA:
    mean = jnp.mean(x, axis=0)
    _, s, vt = jnp.linalg.svd(x - mean[None, :], full_matrices=False)
    vt = _sign_flip(vt[:k])
    var_all = s * s / (x.shape[0] - 1)
    variance = var_all[:k]
    scale = jnp.sqrt(variance) if whiten else jnp.ones_like(variance)
    return PCA(mean, vt, variance, variance / jnp.sum(var_all), s[:k], scale)


def pca_transform(pca: PCA, x: jax.Array) -> jax.Array:
    """Project ``x (..., D)`` onto the components: ``z = (x - mean) V_k^T / scale``,
    shape ``(..., k)``."""
    x = jnp.asarray(x)
    if x.shape[-1:] != pca.mean.shape:
        raise ValueError(f"pca_transform: expected x of shape (..., {pca.mean.shape[0]}) (the fitted "
                         f"features), got {x.shape}")
    return ((x - _lead(pca.mean, x.ndim)) @ pca.components.T) / _lead(pca.scale, x.ndim)


def pca_inverse_transform(pca: PCA, z: jax.Array) -> jax.Array:
    """Map ``z (..., k)`` back to feature space: ``x = (z scale) V_k + mean``, the
    best rank-``k`` reconstruction of a projected ``x`` (in the least-squares sense)."""
    z = jnp.asarray(z)
    if z.shape[-1:] != pca.scale.shape:
        raise ValueError(f"pca_inverse_transform: expected z of shape (..., {pca.scale.shape[0]}) (the "
                         f"fitted components), got {z.shape}")
    return (z * _lead(pca.scale, z.ndim)) @ pca.components + _lead(pca.mean, z.ndim)


def lda_fit(x: jax.Array, labels: jax.Array, num_classes: int | None = None, n_components: int | None = None,
            *, tol: float = 1e-6) -> LDA:
    """Fisher's linear discriminant analysis: the directions that best separate the classes.

    With class means ``m_c``, counts ``n_c`` and overall mean ``m``, the scatters are
    ``S_W = sum_c sum_{i in c} (x_i - m_c)(x_i - m_c)^T`` and
    ``S_B = sum_c n_c (m_c - m)(m_c - m)^T``, and the directions solve
    ``S_B w = lambda S_W w`` (at most ``C - 1`` non-zero ``lambda``). Solved stably:

    1. SVD of the class-centred data ``X_W = U S V^T`` (so ``S_W = V S^2 V^T``);
       ``T = V S^-1`` whitens ``S_W``, with ``1 / S`` set to 0 for singular values
       below ``tol * S_max`` (directions where ``S_W`` is singular are dropped).
    2. SVD of the whitened, weighted class means ``M = [sqrt(n_c) (m_c - m)]_c T =
       P Sigma Q^T``; then ``lambda = Sigma^2`` and ``w = T Q``.

    ``w`` is rescaled so that ``w^T S_W w / (N - C) = 1``. The directions equal
    scikit-learn's ``LinearDiscriminantAnalysis`` (both solvers) up to sign and scale.
    When ``D > N - C`` (faces), ``S_W`` is singular: project with :func:`pca_fit` to at
    most ``N - C`` dimensions first (fisherfaces).

    Args:
      x: ``(N, D)`` floating.
      labels: ``(N,)`` integers in ``[0, C)``, every class present at least once.
      num_classes: ``C``; inferred as ``max(labels) + 1`` when the labels are concrete.
      n_components: ``k`` in ``[1, min(C - 1, D)]``; None keeps ``min(C - 1, D)``.
      tol: relative cut-off of the within-class singular values.

    Returns:
      An :class:`LDA`.
    """
    name = "lda_fit"
    x = _check_data(name, x, 2)
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{name}: expected integer class labels, got dtype {labels.dtype}")
    if labels.shape != x.shape[:1]:
        raise ValueError(f"{name}: expected labels of shape ({x.shape[0]},), one per row of x, got {labels.shape}")
    concrete = not isinstance(labels, jax.core.Tracer)
    if num_classes is None:
        if not concrete:
            raise ValueError(f"{name}: pass num_classes when the labels are traced (inside jit)")
        num_classes = int(jnp.max(labels)) + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"{name}: expected num_classes an int >= 2, got {num_classes!r}")
    if concrete:
        counts = jnp.bincount(labels, length=num_classes)
        if int(jnp.min(labels)) < 0 or int(jnp.max(labels)) >= num_classes:
            raise ValueError(f"{name}: labels must lie in [0, {num_classes}), got values from "
                             f"{int(jnp.min(labels))} to {int(jnp.max(labels))}")
        if int(jnp.min(counts)) == 0:
            missing = [int(c) for c in jnp.flatnonzero(counts == 0)[:5]]
            raise ValueError(f"{name}: every one of the {num_classes} classes needs an example, got none "
                             f"for classes {missing}")
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise ValueError(f"{name}: expected tol in (0, 1), got {tol!r}")
    k = _check_components(name, n_components, min(num_classes - 1, x.shape[1]), "at most min(C - 1, D)")
    return _lda(x, labels, num_classes, k, float(tol))


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _lda(x, labels, num_classes: int, k: int, tol: float) -> LDA:
    n = x.shape[0]
    onehot = jax.nn.one_hot(labels, num_classes, dtype=x.dtype)             # (N, C)
    counts = jnp.sum(onehot, axis=0)
    class_means = (onehot.T @ x) / counts[:, None]
    mean = jnp.mean(x, axis=0)
    within = x - onehot @ class_means
    _, s, vt = jnp.linalg.svd(within, full_matrices=False)
    keep = s > tol * s[0]
    inverse = jnp.where(keep, 1.0 / jnp.where(keep, s, 1.0), 0.0)
    whiten = vt.T * inverse[None, :]                                         # (D, r): S_W -> identity
    between = jnp.sqrt(counts)[:, None] * (class_means - mean[None, :])      # (C, D)
    _, sigma, qt = jnp.linalg.svd(between @ whiten, full_matrices=False)
    eigenvalues = sigma * sigma
    scalings = _sign_flip((whiten @ qt[:k].T).T).T * jnp.sqrt(jnp.asarray(n - num_classes, x.dtype))
    ratio = eigenvalues[:k] / jnp.sum(eigenvalues[:num_classes - 1])
    return LDA(mean, scalings, eigenvalues[:k], ratio, class_means)


def lda_transform(lda: LDA, x: jax.Array) -> jax.Array:
    """Project ``x (..., D)`` onto the discriminant directions: ``(x - mean) W``, ``(..., k)``."""
    x = jnp.asarray(x)
    if x.shape[-1:] != lda.mean.shape:
        raise ValueError(f"lda_transform: expected x of shape (..., {lda.mean.shape[0]}) (the fitted "
                         f"features), got {x.shape}")
    return (x - _lead(lda.mean, x.ndim)) @ lda.scalings
