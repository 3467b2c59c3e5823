"""Image augmentation as pure functions of ``(key, x)`` on NHWC batches.

Every function draws one random transformation *per image* from ``key``, returns a
batch of the same shape and dtype, and is safe under ``jit`` and ``vmap`` (shapes are
static; no Python control flow on data). The same key gives the same batch. Labels
are untouched: :func:`compose` chains augmentations and passes an ``(x, y)`` batch
through with ``y`` unchanged.

    augment = compose(random_flip_lr, lambda k, x: random_crop(k, x, padding=4))
    xb, yb = augment(key, (xb, yb))

Imports: jax.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["random_flip_lr", "random_crop", "random_translate", "random_rotate",
           "random_brightness", "random_color_shift", "compose", "affine_warp", "random_affine",
           "random_erasing"]


def _check_images(name: str, x):
    if jnp.ndim(x) != 4:
        raise ValueError(f"{name}: expected an NHWC batch of rank 4, got shape {jnp.shape(x)}")


def random_flip_lr(key, x, probability: float = 0.5):
    """Mirror each image left-right with probability ``probability``."""
    _check_images("random_flip_lr", x)
    flip = jax.random.bernoulli(key, probability, (x.shape[0], 1, 1, 1))
    return jnp.where(flip, x[:, :, ::-1, :], x)


def _shift_crop(x, offsets, pad, mode):
    """Pad H and W by ``pad`` and cut an (H, W) window at ``offsets (N, 2)`` per image."""
    n, h, w, c = x.shape
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=mode)

    def cut(img, off):
        return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))

    return jax.vmap(cut)(padded, offsets)


def random_crop(key, x, padding: int, mode: str = "constant"):
    """Pad each image by ``padding`` pixels on every side (zeros, or ``mode`` as in
    ``jnp.pad``, e.g. ``"reflect"``) and cut a random window of the original size
    (the CIFAR-10 augmentation of He et al., 2016, with ``padding=4``)."""
    _check_images("random_crop", x)
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"random_crop: expected a non-negative int padding, got {padding!r}")
    offsets = jax.random.randint(key, (x.shape[0], 2), 0, 2 * padding + 1)
    return _shift_crop(x, offsets, padding, mode)


def random_translate(key, x, max_shift: int, fill: float = 0.0):
    """Shift each image by an integer ``(dy, dx)``, each uniform in
    ``[-max_shift, max_shift]``; uncovered pixels take ``fill``."""
    _check_images("random_translate", x)
    if not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"random_translate: expected a non-negative int max_shift, got {max_shift!r}")
    offsets = jax.random.randint(key, (x.shape[0], 2), 0, 2 * max_shift + 1)
    if fill == 0:
        return _shift_crop(x, offsets, max_shift, "constant")
    return _shift_crop(x - fill, offsets, max_shift, "constant") + fill


def _rotate_one(img, angle, fill):
    """Rotate ``img (H, W, C)`` by ``angle`` radians about its centre (bilinear)."""
    h, w, _ = img.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                          indexing="ij")
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    # inverse map: output pixel (y, x) samples the input at R(-angle) (y, x)
    src_y = cos * (yy - cy) - sin * (xx - cx) + cy
    src_x = sin * (yy - cy) + cos * (xx - cx) + cx

    def channel(ch):
        return jax.scipy.ndimage.map_coordinates(ch, [src_y, src_x], order=1, mode="constant",
                                                 cval=fill)

    return jax.vmap(channel, in_axes=2, out_axes=2)(img.astype(jnp.float32)).astype(img.dtype)


def random_rotate(key, x, max_degrees: float = 15.0, fill: float = 0.0):
    """Rotate each image about its centre by an angle uniform in
    ``[-max_degrees, max_degrees]`` (bilinear interpolation, ``fill`` outside)."""
    _check_images("random_rotate", x)
    limit = math.radians(max_degrees)
    angles = jax.random.uniform(key, (x.shape[0],), minval=-limit, maxval=limit)
    return jax.vmap(lambda img, a: _rotate_one(img, a, fill))(x, angles)


def random_brightness(key, x, max_delta: float = 0.1):
    """Add to each image one offset uniform in ``[-max_delta, max_delta]``."""
    _check_images("random_brightness", x)
    delta = jax.random.uniform(key, (x.shape[0], 1, 1, 1), x.dtype, -max_delta, max_delta)
    return x + delta


def random_color_shift(key, x, max_delta: float = 0.1):
    """Add to each channel of each image its own offset uniform in
    ``[-max_delta, max_delta]`` (a colour cast)."""
    _check_images("random_color_shift", x)
    delta = jax.random.uniform(key, (x.shape[0], 1, 1, x.shape[3]), x.dtype, -max_delta, max_delta)
    return x + delta


def affine_warp(x, angles, scales, shifts, fill: float = 0.0):
    """Rotate, scale and shift each image about its centre (bilinear interpolation).

    Image ``n`` is rotated by ``a = angles[n]`` radians (clockwise on the screen, as
    :func:`random_rotate`: a point right of the centre moves down for ``a > 0``), zoomed
    by ``s = scales[n]`` about the centre ``c = ((H - 1) / 2, (W - 1) / 2)`` and shifted
    by ``t = shifts[n]``: output pixel ``p' = (row, col)`` samples the input at
    ``p = c + R(a) (p' - c - t) / s``, ``R(a) = [[cos a, -sin a], [sin a, cos a]]``.
    Of the four pixels around a sample point, those outside the image count as ``fill``.

    Args:
      x: ``(N, H, W, C)`` images.
      angles: ``(N,)`` rotations in radians.
      scales: ``(N,)`` zoom factors (> 1 enlarges the face).
      shifts: ``(N, 2)`` translations ``(d_row, d_col)`` in pixels.
      fill: the value of pixels from outside the image.

    Returns:
      The warped batch, of ``x``'s shape and dtype.
    """
    _check_images("affine_warp", x)
    n, h, w, _ = x.shape
    for what, v, shape in (("angles", angles, (n,)), ("scales", scales, (n,)), ("shifts", shifts, (n, 2))):
        if jnp.shape(v) != shape:
            raise ValueError(f"affine_warp: expected {what} of shape {shape} for {n} images, got {jnp.shape(v)}")
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32  # float64 stays float64
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=dtype), jnp.arange(w, dtype=dtype), indexing="ij")

    def one(img, angle, scale, shift):
        u, v = (yy - cy - shift[0]) / scale, (xx - cx - shift[1]) / scale
        cos, sin = jnp.cos(angle), jnp.sin(angle)
        src_y = cos * u - sin * v + cy
        src_x = sin * u + cos * v + cx

        def channel(ch):
            return jax.scipy.ndimage.map_coordinates(ch, [src_y, src_x], order=1, mode="constant", cval=fill)

        return jax.vmap(channel, in_axes=2, out_axes=2)(img.astype(dtype)).astype(img.dtype)

    return jax.vmap(one)(x, jnp.asarray(angles, dtype), jnp.asarray(scales, dtype), jnp.asarray(shifts, dtype))


def random_affine(key, x, max_degrees: float = 0.0, max_scale: float = 0.0, max_shift: float = 0.0,
                  fill: float = 0.0):
    """:func:`affine_warp` with each image's angle uniform in ``[-max_degrees,
    max_degrees]`` degrees, zoom uniform in ``[1 - max_scale, 1 + max_scale]`` and shift
    uniform in ``[-max_shift, max_shift]`` pixels along each axis (sub-pixel shifts
    included): a random crop rescaled to the image's size, rotated."""
    _check_images("random_affine", x)
    for what, v in (("max_degrees", max_degrees), ("max_scale", max_scale), ("max_shift", max_shift)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            raise ValueError(f"random_affine: expected {what} >= 0, got {v!r}")
    if max_scale >= 1:
        raise ValueError(f"random_affine: expected max_scale < 1 (zoom in [1 - max_scale, 1 + max_scale] "
                         f"must stay positive), got {max_scale!r}")
    n = x.shape[0]
    k_angle, k_scale, k_shift = (jax.random.fold_in(key, i) for i in range(3))
    limit = math.radians(max_degrees)
    angles = jax.random.uniform(k_angle, (n,), minval=-limit, maxval=limit)
    scales = jax.random.uniform(k_scale, (n,), minval=1.0 - max_scale, maxval=1.0 + max_scale)
    shifts = jax.random.uniform(k_shift, (n, 2), minval=-max_shift, maxval=max_shift)
    return affine_warp(x, angles, scales, shifts, fill)


def random_erasing(key, x, probability: float = 0.5, area_range: tuple[float, float] = (0.02, 0.25),
                   aspect_range: tuple[float, float] = (0.3, 3.3), fill: float = 0.0):
    """Random erasing (Zhong et al. 2017): with probability ``probability``, set one
    random rectangle of each image to ``fill``.

    The rectangle covers a fraction ``a`` of the image, uniform in ``area_range``,
    with height / width ratio ``r``, log-uniform in ``aspect_range``: it is
    ``round(sqrt(a H W r))`` rows by ``round(sqrt(a H W / r))`` columns, each clipped
    to the image's size (the paper redraws a rectangle that does not fit; clipping
    keeps the shapes static), placed uniformly inside the image.
    """
    _check_images("random_erasing", x)
    if not 0 <= probability <= 1:
        raise ValueError(f"random_erasing: expected a probability in [0, 1], got {probability!r}")
    for what, (lo, hi), top in (("area_range", area_range, 1.0), ("aspect_range", aspect_range, float("inf"))):
        if not 0 < lo <= hi <= top:
            raise ValueError(f"random_erasing: expected {what} (lo, hi) with 0 < lo <= hi"
                             f"{' <= 1' if top == 1 else ''}, got {(lo, hi)!r}")
    n, h, w, _ = x.shape
    keys = [jax.random.fold_in(key, i) for i in range(5)]
    erase = jax.random.bernoulli(keys[0], probability, (n,))
    area = jax.random.uniform(keys[1], (n,), minval=area_range[0], maxval=area_range[1]) * (h * w)
    ratio = jnp.exp(jax.random.uniform(keys[2], (n,), minval=math.log(aspect_range[0]),
                                       maxval=math.log(aspect_range[1])))
    rows = jnp.clip(jnp.round(jnp.sqrt(area * ratio)), 1, h).astype(jnp.int32)
    cols = jnp.clip(jnp.round(jnp.sqrt(area / ratio)), 1, w).astype(jnp.int32)
    top = jnp.floor(jax.random.uniform(keys[3], (n,)) * (h - rows + 1)).astype(jnp.int32)
    left = jnp.floor(jax.random.uniform(keys[4], (n,)) * (w - cols + 1)).astype(jnp.int32)
    r = jnp.arange(h)[None, :, None]
    c = jnp.arange(w)[None, None, :]
    inside = ((r >= top[:, None, None]) & (r < (top + rows)[:, None, None])
              & (c >= left[:, None, None]) & (c < (left + cols)[:, None, None]) & erase[:, None, None])
    return jnp.where(inside[..., None], jnp.asarray(fill, x.dtype), x)


def compose(*augmentations: Callable) -> Callable:
    """Chain augmentations ``f(key, x) -> x``; augmentation ``i`` gets ``fold_in(key, i)``.

    The returned function takes ``(key, x)`` or ``(key, (x, y, ...))`` and returns the
    same structure, the images augmented and everything else (labels) unchanged.
    """
    def augment(key, batch):
        x, rest = (batch[0], tuple(batch[1:])) if isinstance(batch, (tuple, list)) else (batch, None)
        for i, f in enumerate(augmentations):
            x = f(jax.random.fold_in(key, i), x)
        return x if rest is None else (x, *rest)

    return augment
