"""Bundled data sets: shapes, dtypes, agreement with their sources, MNIST-1D variants."""
import numpy as np
import pytest
import sklearn.datasets

from fnnet import data


@pytest.mark.parametrize("name, n, d, k", [("digits", 1797, 64, 10), ("breast_cancer", 569, 30, 2),
                                           ("iris", 150, 4, 3), ("wine", 178, 13, 3)])
def test_sklearn_sets(name, n, d, k):
    x, y = getattr(data, f"load_{name}")()
    assert x.shape == (n, d) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int32
    ref = getattr(sklearn.datasets, f"load_{name}")()
    np.testing.assert_array_equal(x, ref.data.astype(np.float32))
    np.testing.assert_array_equal(y, ref.target)
    assert set(np.unique(y)) == set(range(k))


def test_digits_images():
    x, y = data.load_digits(images=True)
    flat, _ = data.load_digits()
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32
    ref = sklearn.datasets.load_digits().images
    np.testing.assert_array_equal(x[..., 0], ref)
    np.testing.assert_array_equal(x.reshape(1797, 64), flat)


def test_mnist1d_matches_generator_and_keeps_global_rng():
    from mnist1d.data import get_dataset_args, make_dataset
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    (x, y), (xt, yt) = data.load_mnist1d()
    np.testing.assert_array_equal(np.random.get_state()[1], before)   # caller's RNG untouched
    assert x.shape == (4000, 40) and xt.shape == (1000, 40)
    assert x.dtype == xt.dtype == np.float32 and y.dtype == yt.dtype == np.int32
    ref = make_dataset(get_dataset_args())      # the reference generation (reseeds numpy)
    np.testing.assert_array_equal(x, ref["x"].astype(np.float32))
    np.testing.assert_array_equal(yt, ref["y_test"])
    assert np.bincount(y).min() > 350          # about 400 per class

    # the shuffled variant uses exactly the reference protocol's permutation
    np.random.seed(42)
    perm = np.random.permutation(40)
    (xs, ys), (xts, _) = data.load_mnist1d(shuffle_seq=True)
    np.testing.assert_array_equal(xs, x[:, perm])
    np.testing.assert_array_equal(xts, xt[:, perm])
    np.testing.assert_array_equal(ys, y)

    # the cache hands out copies: mutating a result does not change the next call
    x[:] = 0
    assert data.load_mnist1d()[0][0].any()


def test_tiny_shakespeare_is_the_published_corpus():
    text = data.load_tiny_shakespeare()
    # the char-rnn corpus: its length, its 65 characters and its first line
    assert len(text) == 1_115_394
    assert len(set(text)) == 65
    assert text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.")
