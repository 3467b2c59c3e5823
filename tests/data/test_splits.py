"""Splits, standardisation, one-hot and batches, against NumPy references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import data


def _toy(n=103, k=3):
    y = np.repeat(np.arange(k), [50, 33, 20])[:n].astype(np.int32)   # sorted by class, unbalanced
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)             # row i holds 2i, 2i+1
    return x, y


def _rows(x):
    return (x[:, 0] / 2).astype(int)


def test_train_test_split_partition_deterministic_stratified():
    x, y = _toy()
    (xtr, ytr), (xte, yte) = data.train_test_split(jax.random.key(0), x, y, 0.2)
    itr, ite = _rows(xtr), _rows(xte)
    assert sorted(np.concatenate([itr, ite]).tolist()) == list(range(103))    # a partition
    np.testing.assert_array_equal(ytr, y[itr])                                 # rows stay paired
    np.testing.assert_array_equal(np.bincount(yte), [10, 7, 4])                # round(0.2 n_c)
    assert not np.all(np.diff(itr) > 0)                                        # shuffled, not sorted
    again = data.train_test_split(jax.random.key(0), x, y, 0.2)
    np.testing.assert_array_equal(again[1][0], xte)                            # same key, same split
    other = data.train_test_split(jax.random.key(1), x, y, 0.2)
    assert set(_rows(other[1][0])) != set(ite)
    (_, _), (xte2, _) = data.train_test_split(jax.random.key(0), x, y, 0.2, stratify=False)
    assert len(xte2) == round(0.2 * 103)


def test_train_dev_test_split():
    x, y = _toy()
    (xtr, ytr), (xd, yd), (xte, yte) = data.train_dev_test_split(jax.random.key(3), x, y, 0.2, 0.1)
    idx = np.concatenate([_rows(xtr), _rows(xd), _rows(xte)])
    assert sorted(idx.tolist()) == list(range(103))
    np.testing.assert_array_equal(np.bincount(yd), [10, 7, 4])
    np.testing.assert_array_equal(np.bincount(yte), [5, 3, 2])   # round(0.3 n) - round(0.2 n)
    xj = jnp.asarray(x)                                           # JAX arrays in, JAX arrays out
    (xtr_j, _), _, _ = data.train_dev_test_split(jax.random.key(3), xj, jnp.asarray(y), 0.2, 0.1)
    assert isinstance(xtr_j, jax.Array)
    np.testing.assert_array_equal(xtr_j, xtr)


def test_split_bad_input():
    x, y = _toy()
    with pytest.raises(ValueError, match="same number of examples"):
        data.train_test_split(jax.random.key(0), x, y[:-1], 0.2)
    with pytest.raises(ValueError, match="test_fraction"):
        data.train_test_split(jax.random.key(0), x, y, 1.2)
    with pytest.raises(ValueError, match="sum below 1"):
        data.train_dev_test_split(jax.random.key(0), x, y, 0.6, 0.5)


def test_standardizer_fits_train_only(rng):
    xtr = rng.normal(3.0, 2.0, size=(40, 3)).astype(np.float32)
    xtr[:, 2] = 7.0                                   # a constant feature
    xte = rng.normal(size=(10, 3)).astype(np.float32)
    mean, std = data.fit_standardizer(xtr)
    np.testing.assert_allclose(mean, xtr.astype(np.float64).mean(0), rtol=1e-6)
    ref_std = np.sqrt(((xtr.astype(np.float64) - xtr.mean(0)) ** 2).mean(0))
    np.testing.assert_allclose(std[:2], ref_std[:2], rtol=1e-5)
    assert std[2] == 1.0
    z = data.apply_standardizer(xte, mean, std)
    np.testing.assert_allclose(z, (xte - mean) / std, rtol=1e-6)
    ztr = data.apply_standardizer(jnp.asarray(xtr), mean, std)     # rank promotion is "raise"
    np.testing.assert_allclose(np.asarray(ztr)[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ztr)[:, :2].std(0), 1, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(ztr)[:, 2], 0.0)


def test_standardizer_per_channel_images(rng):
    x = rng.normal(size=(4, 3, 3, 2)).astype(np.float32) * [1.0, 5.0] + [0.0, 10.0]
    mean, std = data.fit_standardizer(x, axis=(0, 1, 2))
    assert mean.shape == (2,)
    for c in range(2):
        np.testing.assert_allclose(mean[c], x[..., c].mean(), rtol=1e-5)
        np.testing.assert_allclose(std[c], x[..., c].std(), rtol=1e-5)
    z = data.apply_standardizer(jnp.asarray(x), mean, std)
    assert z.shape == x.shape
    with pytest.raises(ValueError, match="trailing axes"):
        data.apply_standardizer(x, mean[:1], std[:1])
    with pytest.raises(ValueError, match="leading axes"):
        data.fit_standardizer(x, axis=(1, 2))


def test_one_hot():
    y = np.array([2, 0, 1, 2], np.int32)
    oh = data.one_hot(y, 3)
    np.testing.assert_array_equal(oh, np.eye(3, dtype=np.float32)[y])
    assert oh.dtype == jnp.float32
    assert data.one_hot(jnp.asarray(y), 4, dtype=jnp.int32).dtype == jnp.int32
    with pytest.raises(ValueError, match=r"one_hot.*\[0, 3\).*0 to 3"):
        data.one_hot(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="one_hot"):
        data.one_hot(jnp.asarray([-1, 1]), 3)
    with pytest.raises(TypeError, match="integer"):
        data.one_hot(np.array([0.0, 1.0]), 3)


@pytest.mark.parametrize("drop_last", [False, True])
def test_batches(drop_last):
    x = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    y = np.arange(10, dtype=np.int32)
    plain = list(data.batches(x, y, 4, shuffle=False, drop_last=drop_last))
    sizes = [len(b) for b, _ in plain]
    assert sizes == ([4, 4] if drop_last else [4, 4, 2])
    np.testing.assert_array_equal(np.concatenate([b for _, b in plain]), y[:sum(sizes)])
    shuffled = list(data.batches(x, y, 4, key=jax.random.key(0), drop_last=drop_last))
    order = np.concatenate([b for _, b in shuffled])
    ref = np.asarray(jax.random.permutation(jax.random.key(0), 10))
    np.testing.assert_array_equal(order, ref[:sum(sizes)])
    for xb, yb in shuffled:
        np.testing.assert_array_equal(xb[:, 0], 2 * yb)           # x and y stay paired
    again = np.concatenate([b for _, b in data.batches(x, y, 4, key=jax.random.key(0), drop_last=drop_last)])
    np.testing.assert_array_equal(again, order)


def test_batches_bad_input():
    x, y = np.zeros((5, 2)), np.zeros(5, np.int32)
    with pytest.raises(ValueError, match="needs a key"):
        data.batches(x, y, 2)
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(x, y, 0, shuffle=False)
    with pytest.raises(ValueError, match="same number"):
        data.batches(x, y[:4], 2, shuffle=False)


def test_pytree_examples_split_and_batch_like_their_arrays():
    rng = np.random.default_rng(0)
    images, tokens, y = rng.normal(size=(10, 2, 2)), rng.integers(0, 5, size=(10, 3)), np.arange(10) % 2
    x = {"images": images, "tokens": tokens}
    assert data.num_examples("t", x, y) == 10
    key = lambda: jax.random.key(2)  # noqa: E731  (the same key, built anew for each use)
    (xa, ya), (xb, yb) = data.train_test_split(key(), x, y, 0.3)
    (ia, ja), (ib, jb) = data.train_test_split(key(), images, y, 0.3)
    np.testing.assert_array_equal(xa["images"], ia)
    np.testing.assert_array_equal(xb["images"], ib)
    np.testing.assert_array_equal(ya, ja)
    order = np.asarray(jax.random.permutation(key(), 10))
    for i, (bx, by) in enumerate(data.batches(x, y, 4, key=key())):
        idx = order[4 * i:4 * i + 4]
        np.testing.assert_array_equal(bx["tokens"], tokens[idx])
        np.testing.assert_array_equal(by, y[idx])
    with pytest.raises(ValueError, match=r"got x\['images'\] \(10, 2, 2\) and x\['tokens'\] \(9, 3\) and y \(10,\)"):
        data.num_examples("t", {"images": images, "tokens": tokens[:9]}, y)
    with pytest.raises(ValueError, match="expected an array or a pytree of arrays as x"):
        data.num_examples("t", {}, y)
