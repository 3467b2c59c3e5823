"""Classic local face descriptors: local binary patterns (LBP), their cell histograms
and the chi-square distance between histograms (Ahonen, Hadid & Pietikainen 2006).

The LBP code of a pixel ``g_c`` compares it with ``P`` neighbours ``g_p`` sampled on a
circle of radius ``R`` around it, ``(r - R sin(2 pi p / P), c + R cos(2 pi p / P))``
(bilinear interpolation; pixels outside the image count as 0)::

    s_p = [g_p >= g_c],    LBP = sum_p s_p 2^p

and a pattern is *uniform* when its circular bit string has at most two 0/1
transitions. The ``method`` maps the code as scikit-image's
``local_binary_pattern`` does:

- ``"default"``: the code itself, ``0 .. 2^P - 1``;
- ``"uniform"``: rotation invariant, ``sum_p s_p`` for a uniform pattern and ``P + 1``
  for all the others (``P + 2`` values; Ojala et al. 2002's ``riu2``);
- ``"nri_uniform"``: one value per uniform pattern and its rotation (``0`` all zeros,
  ``P (P - 1) + 1`` all ones, ``1 + (k - 1) P + rotation`` for ``k`` ones), and
  ``P (P - 1) + 2`` for the non-uniform ones (``P (P - 1) + 3`` values, 59 for
  ``P = 8``; Ahonen et al.'s ``u2``).

A face is then divided into a grid of cells, each cell's histogram of codes counted,
and the histograms concatenated (:func:`lbp_histograms`); two faces are compared by
the (optionally weighted) chi-square distance (:func:`chi_square_distance`)::

    chi2(a, b) = sum_i w_i (a_i - b_i)^2 / (a_i + b_i)      (0 where a_i + b_i = 0)

The codes are integers (LBP is a step function of the pixels, with no useful
gradient); the histograms and the distance run under ``jit`` and ``vmap``, the
distance is differentiable in both arguments where ``a_i + b_i > 0``.

Imports: jax, numpy.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["LBP_METHODS", "local_binary_pattern", "lbp_bins", "lbp_histograms", "chi_square_distance"]

LBP_METHODS = ("default", "uniform", "nri_uniform")
_MAX_POINTS = 16          # the code table has 2^P entries
_CHUNK = 1 << 23          # chi_square_distance: the most (row, row, feature) terms held at once


def _check_lbp_args(where: str, points, radius, method) -> None:
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)):
        raise TypeError(f"{where}: expected points an int, got {type(points).__name__}")
    if not 1 <= points <= _MAX_POINTS:
        raise ValueError(f"{where}: expected points in [1, {_MAX_POINTS}], got {points}")
    if isinstance(radius, bool) or not isinstance(radius, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: expected radius a number, got {type(radius).__name__}")
    if not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"{where}: expected radius > 0, got {radius}")
    if method not in LBP_METHODS:
        raise ValueError(f"{where}: expected method one of {LBP_METHODS}, got {method!r}")


def lbp_bins(points: int = 8, method: str = "uniform") -> int:
    """The number of code values of :func:`local_binary_pattern`: ``2^P``, ``P + 2`` or
    ``P (P - 1) + 3``."""
    _check_lbp_args("lbp_bins", points, 1.0, method)
    return {"default": 2 ** points, "uniform": points + 2, "nri_uniform": points * (points - 1) + 3}[method]


@functools.lru_cache(maxsize=None)
def _code_table(points: int, method: str) -> np.ndarray:
    """The value of each of the ``2^P`` raw codes under ``method`` (int32)."""
    codes = np.arange(2 ** points)
    bits = (codes[:, None] >> np.arange(points)) & 1                         # s_0 .. s_{P-1}
    if method == "default":
        return codes.astype(np.int32)
    changes = np.sum(bits[:, :-1] != bits[:, 1:], axis=1)   # circular changes <= 2 iff these are
    ones = bits.sum(axis=1)
    uniform = changes <= 2
    if method == "uniform":
        return np.where(uniform, ones, points + 1).astype(np.int32)
    first_one = np.argmax(bits == 1, axis=1)
    first_zero = np.argmax(bits == 0, axis=1)
    rotation = np.where(first_one == 0, ones - first_zero, points - first_one)
    value = 1 + (ones - 1) * points + rotation
    value = np.where(ones == 0, 0, np.where(ones == points, points * (points - 1) + 1, value))
    return np.where(uniform, value, points * (points - 1) + 2).astype(np.int32)


def local_binary_pattern(image, points: int = 8, radius: float = 1.0, method: str = "uniform") -> jax.Array:
    """The LBP code of every pixel (module docstring), as scikit-image's
    ``local_binary_pattern(image, P, R, method)``.

    Args:
      image: ``(..., H, W)`` grey levels, integer or floating (computed in the image's
        float dtype, float32 for integers); leading axes are a batch.
      points: ``P``, the neighbours on the circle, ``1 <= P <= 16``.
      radius: ``R > 0``, the circle's radius in pixels.
      method: ``"default"``, ``"uniform"`` or ``"nri_uniform"``.

    Returns:
      int32 codes of shape ``(..., H, W)``, in ``[0, lbp_bins(points, method))``.
    """
    where = "local_binary_pattern"
    _check_lbp_args(where, points, radius, method)
    image = jnp.asarray(image)
    if image.ndim < 2:
        raise ValueError(f"{where}: expected an image of shape (..., H, W), got shape {image.shape}")
    if not (jnp.issubdtype(image.dtype, jnp.integer) or jnp.issubdtype(image.dtype, jnp.floating)):
        raise TypeError(f"{where}: expected integer or floating grey levels, got dtype {image.dtype}")
    if jnp.issubdtype(image.dtype, jnp.integer):
        image = image.astype(jnp.float32)
    h, w = image.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"{where}: expected a non-empty image, got shape {image.shape}")
    table = jnp.asarray(_code_table(int(points), method))
    angles = 2 * np.pi * np.arange(points) / points
    dr = np.round(-radius * np.sin(angles), 5)              # scikit-image rounds the offsets
    dc = np.round(radius * np.cos(angles), 5)
    pad = int(math.ceil(radius)) + 1
    padded = jnp.pad(image, [(0, 0)] * (image.ndim - 2) + [(pad, pad), (pad, pad)])

    def pixel(r0, c0):                                       # the image shifted by whole pixels
        return padded[..., pad + r0:pad + r0 + h, pad + c0:pad + c0 + w]

    code = jnp.zeros(image.shape, jnp.int32)
    for p in range(points):
        r0, c0 = math.floor(dr[p]), math.floor(dc[p])
        r1, c1 = math.ceil(dr[p]), math.ceil(dc[p])
        fr, fc = float(dr[p] - r0), float(dc[p] - c0)
        # g_p - g_c as the weighted differences of the four pixels around g_p from g_c,
        # so that four pixels equal to g_c give exactly 0 (a tie, s_p = 1) in any dtype
        top = (1 - fc) * (pixel(r0, c0) - image) + fc * (pixel(r0, c1) - image)
        bottom = (1 - fc) * (pixel(r1, c0) - image) + fc * (pixel(r1, c1) - image)
        code = code + (((1 - fr) * top + fr * bottom >= 0).astype(jnp.int32) << p)
    return table[code]


def _cell_edges(size: int, cells: int) -> np.ndarray:
    return np.round(np.linspace(0, size, cells + 1)).astype(int)


def lbp_histograms(codes, bins: int, grid: tuple[int, int] = (7, 7), *, normalize: bool = True) -> jax.Array:
    """The histograms of the codes in a ``grid`` of cells, concatenated (row-major).

    The ``H x W`` image is cut into ``grid[0] x grid[1]`` cells at the rounded
    positions ``round(linspace(0, H, grid[0] + 1))`` (the same for the columns), so
    cells differ by at most one pixel in size.

    Args:
      codes: ``(..., H, W)`` integer codes in ``[0, bins)`` (:func:`local_binary_pattern`;
        codes outside are not counted).
      bins: the number of code values (:func:`lbp_bins`).
      grid: cells per column and per row, each in ``[1, H]`` resp. ``[1, W]``.
      normalize: divide each cell's histogram by its pixel count (so it sums to 1).

    Returns:
      float32 ``(..., grid[0] * grid[1] * bins)``: cell ``(i, j)``'s histogram at
      ``[(i * grid[1] + j) * bins : ... + bins]``.
    """
    where = "lbp_histograms"
    codes = jnp.asarray(codes)
    if codes.ndim < 2:
        raise ValueError(f"{where}: expected codes of shape (..., H, W), got shape {codes.shape}")
    if not jnp.issubdtype(codes.dtype, jnp.integer):
        raise TypeError(f"{where}: expected integer codes (local_binary_pattern's), got dtype {codes.dtype}")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"{where}: expected bins a positive int, got {bins!r}")
    if (not isinstance(grid, (tuple, list)) or len(grid) != 2
            or not all(isinstance(g, (int, np.integer)) and not isinstance(g, bool) for g in grid)):
        raise ValueError(f"{where}: expected grid a pair of ints (rows, columns of cells), got {grid!r}")
    h, w = codes.shape[-2:]
    if not (1 <= grid[0] <= h and 1 <= grid[1] <= w):
        raise ValueError(f"{where}: expected grid in [1, {h}] x [1, {w}] for codes of {h} x {w} pixels, "
                         f"got {tuple(grid)}")
    rows, cols = _cell_edges(h, grid[0]), _cell_edges(w, grid[1])
    in_row = (np.arange(h)[None] >= rows[:-1, None]) & (np.arange(h)[None] < rows[1:, None])   # (gy, H)
    in_col = (np.arange(w)[None] >= cols[:-1, None]) & (np.arange(w)[None] < cols[1:, None])   # (gx, W)
    one_hot = jax.nn.one_hot(codes, bins, dtype=jnp.float32)                                    # (..., H, W, B)
    hist = jnp.einsum("yh,xw,...hwb->...yxb", jnp.asarray(in_row, jnp.float32),
                      jnp.asarray(in_col, jnp.float32), one_hot)
    if normalize:
        sizes = np.diff(rows)[:, None] * np.diff(cols)[None, :]
        sizes = sizes.reshape((1,) * (codes.ndim - 2) + sizes.shape + (1,))
        hist = hist / jnp.asarray(sizes, jnp.float32)
    return hist.reshape(codes.shape[:-2] + (grid[0] * grid[1] * bins,))


def chi_square_distance(x, y, weights=None) -> jax.Array:
    """Pairwise chi-square distances between the rows of two sets of histograms::

        d_ij = sum_k w_k (x_ik - y_jk)^2 / (x_ik + y_jk)      (a term is 0 where x_ik + y_jk = 0)

    For non-negative features (histograms); Ahonen et al. weight each cell's bins by
    the cell's weight (``weights = jnp.repeat(cell_weights, bins)``).

    Args:
      x: ``(N, D)`` floating.
      y: ``(M, D)`` floating.
      weights: optional ``(D,)`` per-feature weights (1 when None).

    Returns:
      ``(N, M)`` distances in the inputs' dtype.
    """
    where = "chi_square_distance"
    x, y = jnp.asarray(x), jnp.asarray(y)
    for name, a in (("x", x), ("y", y)):
        if a.ndim != 2:
            raise ValueError(f"{where}: expected {name} of shape (N, D), got shape {a.shape}")
        if not jnp.issubdtype(a.dtype, jnp.floating):
            raise TypeError(f"{where}: expected {name} of a floating dtype, got {a.dtype}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{where}: expected x and y with the same number of features, got {x.shape} and {y.shape}")
    dtype = jnp.result_type(x, y)
    if weights is not None:
        weights = jnp.asarray(weights)
        if weights.shape != (x.shape[1],):
            raise ValueError(f"{where}: expected weights of shape ({x.shape[1]},), got {weights.shape}")
    w = jnp.ones((x.shape[1],), dtype) if weights is None else weights.astype(dtype)
    x, y = x.astype(dtype), y.astype(dtype)

    def rows(a):                                 # (n, D) rows of x against every row of y: (n, M)
        total = a[:, None, :] + y[None]
        positive = total > 0
        terms = jnp.where(positive, (a[:, None, :] - y[None]) ** 2 / jnp.where(positive, total, 1), 0)
        return terms @ w

    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    if n * m * d <= _CHUNK or n <= 1:
        return rows(x)
    # chunks of rows keep the (n, M, D) terms near _CHUNK elements (400 images' 7x7x59 bins: 2.7 GB at once)
    chunk = max(1, _CHUNK // max(m * d, 1))
    return jax.lax.map(lambda a: rows(a[None])[0], x, batch_size=chunk)
