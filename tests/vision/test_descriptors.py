"""Local binary patterns against scikit-image, cell histograms and the chi-square
distance against NumPy loops, its gradient against finite differences, bad input."""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck
from fnnet.vision.descriptors import chi_square_distance, lbp_bins, lbp_histograms, local_binary_pattern


def _skimage_lbp(image, points, radius, method):
    skf = pytest.importorskip("skimage.feature")
    with warnings.catch_warnings():             # scikit-image warns about float images
        warnings.simplefilter("ignore")
        return skf.local_binary_pattern(image, points, radius, method=method)


@pytest.mark.parametrize("method", ["default", "uniform", "nri_uniform"])
def test_lbp_matches_scikit_image(x64, rng, method):
    smooth = rng.random((12, 10))                                   # no ties between pixels
    levels = rng.integers(0, 4, (12, 10)).astype(np.float64)        # many ties: g_p >= g_c counts them as 1
    for image in (smooth, levels):
        for points, radius in ((8, 1.0), (8, 2.0), (4, 1.5), (12, 2.5)):
            got = np.asarray(local_binary_pattern(jnp.asarray(image), points, radius, method))
            ref = _skimage_lbp(image, points, radius, method)
            np.testing.assert_array_equal(got, ref, err_msg=f"P={points} R={radius}")
            assert got.max() < lbp_bins(points, method)


def test_lbp_of_a_batch_of_integer_images_in_float32(rng):
    images = rng.integers(0, 256, (3, 9, 8)).astype(np.uint8)
    got = np.asarray(jax.jit(lambda x: local_binary_pattern(x, 8, 1.0, "nri_uniform"))(jnp.asarray(images)))
    assert got.dtype == np.int32 and got.shape == (3, 9, 8)
    for n in range(3):      # integer grey levels: the float32 interpolation settles the same ties
        np.testing.assert_array_equal(got[n], _skimage_lbp(images[n].astype(np.float64), 8, 1.0, "nri_uniform"))


def test_lbp_bins_counts_the_values():
    assert [lbp_bins(8, m) for m in ("default", "uniform", "nri_uniform")] == [256, 10, 59]
    assert lbp_bins(16, "nri_uniform") == 243


def test_histograms_match_a_numpy_loop(rng):
    codes = rng.integers(0, 5, (2, 11, 9))
    for grid, normalize in (((3, 2), True), ((1, 1), False), ((11, 4), True)):
        got = np.asarray(lbp_histograms(jnp.asarray(codes, jnp.int32), 5, grid, normalize=normalize))
        rows = np.round(np.linspace(0, 11, grid[0] + 1)).astype(int)
        cols = np.round(np.linspace(0, 9, grid[1] + 1)).astype(int)
        ref = []
        for n in range(2):
            parts = []
            for i in range(grid[0]):
                for j in range(grid[1]):
                    cell = codes[n, rows[i]:rows[i + 1], cols[j]:cols[j + 1]].ravel()
                    hist = np.array([np.sum(cell == b) for b in range(5)], np.float64)
                    parts.append(hist / cell.size if normalize else hist)
            ref.append(np.concatenate(parts))
        np.testing.assert_allclose(got, np.stack(ref), rtol=1e-6)


def _chi_square_loop(x, y, w):
    out = np.zeros((len(x), len(y)))
    for i in range(len(x)):
        for j in range(len(y)):
            for k in range(x.shape[1]):
                if x[i, k] + y[j, k] > 0:
                    out[i, j] += w[k] * (x[i, k] - y[j, k]) ** 2 / (x[i, k] + y[j, k])
    return out


def test_chi_square_matches_a_numpy_loop(rng):
    x = rng.random((5, 6)) * (rng.random((5, 6)) > 0.3)      # zeros in both: 0 / 0 terms count 0
    y = rng.random((4, 6)) * (rng.random((4, 6)) > 0.3)
    x[:, 0] = y[:, 0] = 0.0
    w = rng.random(6)
    got = np.asarray(chi_square_distance(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)))
    np.testing.assert_allclose(got, _chi_square_loop(x, y, np.ones(6)), rtol=1e-5, atol=1e-6)
    got = np.asarray(chi_square_distance(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), w))
    np.testing.assert_allclose(got, _chi_square_loop(x, y, w), rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(np.asarray(jax.grad(lambda a: chi_square_distance(a, a).sum())(jnp.asarray(x)))))


def test_chi_square_in_chunks_of_rows(rng, monkeypatch):
    from fnnet.vision import descriptors
    monkeypatch.setattr(descriptors, "_CHUNK", 13)      # 2 rows of y x 6 features: one row of x at a time
    x, y = rng.random((5, 6)), rng.random((2, 6))
    got = np.asarray(chi_square_distance(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)))
    np.testing.assert_allclose(got, _chi_square_loop(x, y, np.ones(6)), rtol=1e-5)


def test_chi_square_gradient_matches_finite_differences(x64, rng):
    x = jnp.asarray(rng.random((3, 5)) + 0.1)
    y = jnp.asarray(rng.random((4, 5)) + 0.1)
    w = jnp.asarray(rng.random(5))
    gradcheck.check_gradients(lambda t: jnp.sum(chi_square_distance(t, y, w) ** 2), x)
    gradcheck.check_gradients(lambda t: jnp.sum(jnp.sin(chi_square_distance(x, t))), y)


def test_bad_input_raises():
    image = jnp.zeros((6, 6))
    with pytest.raises(ValueError, match=r"expected an image of shape \(\.\.\., H, W\), got shape \(6,\)"):
        local_binary_pattern(jnp.zeros(6))
    with pytest.raises(TypeError, match="expected integer or floating grey levels, got dtype bool"):
        local_binary_pattern(jnp.zeros((4, 4), bool))
    with pytest.raises(ValueError, match=r"expected points in \[1, 16\], got 17"):
        local_binary_pattern(image, 17)
    with pytest.raises(TypeError, match="expected points an int, got float"):
        local_binary_pattern(image, 8.0)
    with pytest.raises(ValueError, match="expected radius > 0, got 0"):
        local_binary_pattern(image, 8, 0)
    with pytest.raises(ValueError, match="expected method one of .*'nri_uniform'.*, got 'ror'"):
        local_binary_pattern(image, 8, 1.0, "ror")
    codes = jnp.zeros((6, 6), jnp.int32)
    with pytest.raises(TypeError, match="expected integer codes"):
        lbp_histograms(image, 10)
    with pytest.raises(ValueError, match=r"expected grid in \[1, 6\] x \[1, 6\] .* got \(7, 2\)"):
        lbp_histograms(codes, 10, (7, 2))
    with pytest.raises(ValueError, match="expected grid a pair of ints"):
        lbp_histograms(codes, 10, 4)
    with pytest.raises(ValueError, match="expected bins a positive int, got 0"):
        lbp_histograms(codes, 0)
    with pytest.raises(ValueError, match=r"expected x of shape \(N, D\), got shape \(3,\)"):
        chi_square_distance(jnp.ones(3), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"the same number of features, got \(2, 3\) and \(2, 4\)"):
        chi_square_distance(jnp.ones((2, 3)), jnp.ones((2, 4)))
    with pytest.raises(TypeError, match="expected y of a floating dtype, got int32"):
        chi_square_distance(jnp.ones((2, 3)), jnp.ones((2, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"expected weights of shape \(3,\), got \(2,\)"):
        chi_square_distance(jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.ones(2))
