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
           "random_brightness", "random_color_shift", "compose"]


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
