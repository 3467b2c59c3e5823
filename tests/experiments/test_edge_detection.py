"""edge_detection: the filters against a float64 NumPy correlation and scikit-image's
Sobel/Scharr, the course's 6x6 example in closed form, and a reduced learning run."""
import numpy as np
import pytest

from fnnet.cli import load_experiment


@pytest.fixture(scope="module")
def exp():
    return load_experiment("edge_detection")


def correlate_valid(image, kernel):
    """Textbook cross-correlation with two loops over the output, float64."""
    h, w = image.shape
    out = np.zeros((h - 2, w - 2))
    for i in range(h - 2):
        for j in range(w - 2):
            out[i, j] = np.sum(image[i:i + 3, j:j + 3] * kernel)
    return out


def test_course_example_vertical_edge(exp):
    # Bright left half, dark right half: the vertical filter gives 30 on the edge, 0 elsewhere.
    image = np.array([[10.0] * 3 + [0.0] * 3] * 6, np.float32)
    out = np.asarray(exp.apply_filters(image, exp.filter_bank(["vertical", "horizontal"])))
    np.testing.assert_array_equal(out[..., 0], np.array([[0.0, 30.0, 30.0, 0.0]] * 4))
    np.testing.assert_array_equal(out[..., 1], np.zeros((4, 4)))


def test_filters_match_numpy_and_skimage(exp):
    filters = pytest.importorskip("skimage.filters")
    image = exp.load_image("camera", 8)                       # 64 x 64
    assert image.shape == (64, 64) and image.dtype == np.float32
    names = list(exp.FILTERS)
    out = np.asarray(exp.apply_filters(image, exp.filter_bank(names)))
    x64 = image.astype(np.float64)
    for i, name in enumerate(names):
        ref = correlate_valid(x64, np.asarray(exp.FILTERS[name], np.float64))
        np.testing.assert_allclose(out[..., i], ref, atol=2e-5, err_msg=name)
    # scikit-image convolves (flipped kernel) and normalises Sobel by 1/4, Scharr by 1/16.
    for name, sk, scale in [("sobel_x", filters.sobel_v, -4), ("sobel_y", filters.sobel_h, -4),
                            ("scharr_x", filters.scharr_v, -16), ("scharr_y", filters.scharr_h, -16)]:
        np.testing.assert_allclose(out[..., names.index(name)], scale * sk(x64)[1:-1, 1:-1], atol=2e-5,
                                   err_msg=name)


def test_reduced_run_learns_sobel(exp, tmp_path):
    result = exp.run(exp.Config(downsample=8, steps=400, log_every=100))
    sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float64)
    np.testing.assert_allclose(np.asarray(result["learned_kernel"]), sobel, atol=1e-3)
    assert result["learned_relative_output_error"] < 1e-3
    assert result["final_loss"] < 1e-6 * result["initial_loss"]
    assert result["plain_gd_max_abs_diff"] > 10 * result["learned_max_abs_diff"]  # momentum matters
    assert [h["step"] for h in result["history"]] == [0, 100, 200, 300]
    # measured at downsample 8: Sobel 0.429, Scharr 1.786 (weights summing to 16 vs 4: ratio 4.2)
    assert 0.35 < result["sobel_mean_magnitude"] < 0.5
    assert 3.8 < result["scharr_mean_magnitude"] / result["sobel_mean_magnitude"] < 4.5
    assert 0.05 < result["plain_gd_max_abs_diff"] < 0.3                       # measured 0.12
    assert len(exp.plot(result, tmp_path)) == 1
