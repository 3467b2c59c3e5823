"""affine_warp / random_affine against a NumPy bilinear loop written from the inverse map,
and random_erasing's rectangles checked pixel by pixel."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet.data import augment


def numpy_affine(img, angle, scale, shift, fill):
    """Output pixel (r, c) samples the input at c0 + R(angle) ((r, c) - c0 - shift) / scale,
    bilinear over the four neighbours, a neighbour outside the image counting as ``fill``."""
    h, w, ch = img.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    out = np.zeros_like(img, dtype=np.float64)
    for r in range(h):
        for c in range(w):
            u, v = (r - cy - shift[0]) / scale, (c - cx - shift[1]) / scale
            sy = math.cos(angle) * u - math.sin(angle) * v + cy
            sx = math.sin(angle) * u + math.cos(angle) * v + cx
            y0, x0 = math.floor(sy), math.floor(sx)
            for k in range(ch):
                value = 0.0
                for yy, wy in ((y0, 1 - (sy - y0)), (y0 + 1, sy - y0)):
                    for xx, wx in ((x0, 1 - (sx - x0)), (x0 + 1, sx - x0)):
                        inside = 0 <= yy < h and 0 <= xx < w
                        value += wy * wx * (img[yy, xx, k] if inside else fill)
                out[r, c, k] = value
    return out


def test_affine_warp_matches_numpy_loop(rng):
    x = rng.uniform(0, 1, (3, 9, 7, 2)).astype(np.float32)
    angles = np.array([0.3, -0.5, 0.0])
    scales = np.array([1.2, 0.8, 1.0])
    shifts = np.array([[0.5, -1.25], [0.0, 2.0], [-1.0, 0.0]])
    got = np.asarray(augment.affine_warp(jnp.asarray(x), angles, scales, shifts, fill=0.25))
    for n in range(3):
        np.testing.assert_allclose(got[n], numpy_affine(x[n], angles[n], scales[n], shifts[n], 0.25), atol=1e-5)
    # identity parameters give the image back; an integer shift is random_translate's
    same = augment.affine_warp(jnp.asarray(x), np.zeros(3), np.ones(3), np.zeros((3, 2)))
    np.testing.assert_allclose(np.asarray(same), x, atol=1e-6)
    moved = np.asarray(augment.affine_warp(jnp.asarray(x[:1]), np.zeros(1), np.ones(1), np.array([[1.0, -2.0]])))
    np.testing.assert_allclose(moved[0, 1:, :5], x[0, :-1, 2:], atol=1e-6)
    assert np.all(moved[0, 0] == 0) and np.all(moved[0, :, 5:] == 0)
    # a quarter turn moves the pixel right of the centre to below it (clockwise on the screen)
    dot = np.zeros((1, 5, 5, 1), np.float32)
    dot[0, 2, 3, 0] = 1.0
    turned = np.asarray(augment.affine_warp(jnp.asarray(dot), np.array([math.pi / 2]), np.ones(1), np.zeros((1, 2))))
    assert np.argwhere(turned[0, :, :, 0] > 0.5).tolist() == [[3, 2]]


def test_random_affine_draws_within_its_ranges():
    x = jnp.asarray(np.random.default_rng(1).uniform(0, 1, (64, 11, 9, 1)), jnp.float32)
    key = jax.random.key(3)
    y = augment.random_affine(key, x, max_degrees=10.0, max_scale=0.1)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_array_equal(np.asarray(y), np.asarray(augment.random_affine(key, x, 10.0, 0.1)))
    # rotation and zoom about the centre leave the centre pixel where it was, and move the rest
    np.testing.assert_allclose(np.asarray(y)[:, 5, 4], np.asarray(x)[:, 5, 4], atol=1e-6)
    assert np.all(np.abs(np.asarray(y) - np.asarray(x)).max(axis=(1, 2, 3)) > 1e-3)
    # all ranges 0: the identity
    np.testing.assert_allclose(np.asarray(augment.random_affine(key, x)), np.asarray(x), atol=1e-6)


def test_random_erasing_sets_one_rectangle_in_range():
    n, h, w = 200, 12, 10
    x = jnp.asarray(np.random.default_rng(2).uniform(1, 2, (n, h, w, 1)), jnp.float32)
    y = np.asarray(augment.random_erasing(jax.random.key(5), x, probability=0.5, area_range=(0.05, 0.3),
                                          aspect_range=(0.5, 2.0), fill=0.0))
    xs = np.asarray(x)
    erased = 0
    for i in range(n):
        mask = y[i, :, :, 0] == 0.0
        if not mask.any():
            np.testing.assert_array_equal(y[i], xs[i])
            continue
        erased += 1
        rows, cols = np.nonzero(mask)
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert mask.sum() == (r1 - r0) * (c1 - c0)              # one full rectangle
        np.testing.assert_array_equal(y[i][~mask], xs[i][~mask])  # the rest untouched
        area, ratio = (r1 - r0) * (c1 - c0) / (h * w), (r1 - r0) / (c1 - c0)
        # rounding the sides to whole pixels moves the area and ratio a little off their ranges
        assert 0.02 <= area <= 0.4 and 0.3 <= ratio <= 3.5
    assert 70 <= erased <= 130                                   # about half of 200


def test_bad_input_raises():
    x = jnp.zeros((2, 4, 4, 1))
    with pytest.raises(ValueError, match=r"affine_warp: expected scales of shape \(2,\) for 2 images, got \(3,\)"):
        augment.affine_warp(x, np.zeros(2), np.ones(3), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"expected an NHWC batch of rank 4, got shape \(4, 4\)"):
        augment.random_affine(jax.random.key(0), jnp.zeros((4, 4)), 5.0)
    with pytest.raises(ValueError, match="expected max_degrees >= 0, got -1.0"):
        augment.random_affine(jax.random.key(0), x, -1.0)
    with pytest.raises(ValueError, match="expected max_scale < 1"):
        augment.random_affine(jax.random.key(0), x, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"expected a probability in \[0, 1\], got 1.5"):
        augment.random_erasing(jax.random.key(0), x, 1.5)
    with pytest.raises(ValueError, match=r"expected area_range \(lo, hi\) with 0 < lo <= hi <= 1"):
        augment.random_erasing(jax.random.key(0), x, 0.5, area_range=(0.5, 0.2))


def test_affine_warp_gradient_float64(x64, rng):
    """Finite differences in float64, through the image and the warp's parameters (at
    sample points away from pixel boundaries, where bilinear interpolation is smooth)."""
    from fnnet import gradcheck

    x = jnp.asarray(rng.uniform(0, 1, (2, 6, 5, 1)))
    weights = jnp.asarray(rng.normal(size=(2, 6, 5, 1)))
    args = {"x": x, "angles": jnp.array([0.21, -0.37]), "scales": jnp.array([1.13, 0.91]),
            "shifts": jnp.array([[0.31, -0.42], [0.17, 0.23]])}
    loss = lambda a: jnp.sum(weights * augment.affine_warp(a["x"], a["angles"], a["scales"], a["shifts"]))  # noqa: E731
    gradcheck.check_gradients(jax.jit(loss), args, tol=1e-6)
