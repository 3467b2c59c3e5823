"""The adding problem and the copy task: structure, determinism, both sources of randomness."""
import jax
import numpy as np
import pytest

from fnnet.data import sequences


@pytest.mark.parametrize("source", [0, "key"])
def test_adding_problem_structure(source):
    src = jax.random.key(0) if source == "key" else source
    x, y = sequences.adding_problem(src, 50, 11)
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == (50, 11, 2) and y.shape == (50,) and x.dtype == np.float32
    marks = x[..., 1]
    np.testing.assert_array_equal(marks[:, :5].sum(1), 1)     # one mark in [0, 11 // 2)
    np.testing.assert_array_equal(marks[:, 5:].sum(1), 1)     # one in [5, 11)
    ref = np.array([sum(x[i, t, 0] for t in range(11) if x[i, t, 1] == 1) for i in range(50)])
    np.testing.assert_allclose(y, ref, rtol=1e-6)
    assert 0 <= x[..., 0].min() and x[..., 0].max() < 1
    x2, y2 = sequences.adding_problem(jax.random.key(0) if source == "key" else 0, 50, 11)
    np.testing.assert_array_equal(x, x2); np.testing.assert_array_equal(y, y2)


def test_adding_problem_baseline_mse():
    _, y = sequences.adding_problem(np.random.default_rng(3), 20000, 20)
    assert abs(np.mean((y - 1.0) ** 2) - 1 / 6) < 0.01
    with pytest.raises(ValueError, match="length"):
        sequences.adding_problem(0, 2, 1)
    with pytest.raises(TypeError, match="key"):
        sequences.adding_problem("seed", 2, 4)


@pytest.mark.parametrize("source", [1, "key"])
def test_copy_task(source):
    src = jax.random.key(1) if source == "key" else source
    x, y = sequences.copy_task(src, 30, delay=7, num_symbols=4, copy_length=3)
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == y.shape == (30, 13) and x.dtype == np.int32
    for i in range(30):
        sym = x[i, :3]
        assert ((1 <= sym) & (sym <= 4)).all()
        np.testing.assert_array_equal(x[i, 3:], [0] * 6 + [5] + [0] * 3)
        np.testing.assert_array_equal(y[i], [0] * 10 + list(sym))
    x2, _ = sequences.copy_task(jax.random.key(1) if source == "key" else 1, 30, delay=7, num_symbols=4,
                                copy_length=3)
    np.testing.assert_array_equal(x, x2)
