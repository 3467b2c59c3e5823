"""Sampling with temperature and bits per character, against closed forms and NumPy."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck, text


def test_bits_per_character_matches_numpy(rng):
    logits = rng.normal(size=(3, 5, 7)).astype(np.float32)
    targets = rng.integers(0, 7, (3, 5))
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    ref = -np.mean(np.log2(np.take_along_axis(p, targets[..., None], -1)))
    np.testing.assert_allclose(text.bits_per_character(logits, targets), ref, rtol=1e-5)
    mask = np.zeros((3, 5)); mask[0, :2] = 1
    ref_m = -np.mean(np.log2(np.take_along_axis(p, targets[..., None], -1))[0, :2])
    np.testing.assert_allclose(text.bits_per_character(logits, targets, mask), ref_m, rtol=1e-5)
    # uniform logits: log2(V) bits
    np.testing.assert_allclose(text.bits_per_character(np.zeros((4, 8)), np.arange(4)), 3.0, rtol=1e-6)
    with pytest.raises(ValueError, match="targets"):
        text.bits_per_character(logits, targets[:, :2])


def test_cross_entropy_gradient_is_softmax_minus_onehot(x64, rng):
    """The written-out gradient against the closed form (NumPy), central differences in
    float64, and second order (its JVP rule is itself differentiable)."""
    logits = rng.normal(size=(3, 5, 7)) * 3
    targets = rng.integers(0, 7, (3, 5))
    mask = (rng.random((3, 5)) > 0.3).astype(np.float64)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    onehot = np.eye(7)[targets]
    grad = jax.grad(text.cross_entropy_nats)(jnp.asarray(logits), targets, mask)
    np.testing.assert_allclose(grad, (p - onehot) * mask[..., None] / mask.sum(), rtol=1e-12, atol=1e-15)
    for m in (None, mask):
        gradcheck.check_gradients(lambda z: text.cross_entropy_nats(z, targets, m), jnp.asarray(logits), tol=1e-8)
    # Hessian of one position's loss: diag(p) - p p^T
    hess = jax.hessian(lambda z: text.cross_entropy_nats(z, targets[0, 0]))(jnp.asarray(logits[0, 0]))
    np.testing.assert_allclose(hess, np.diag(p[0, 0]) - np.outer(p[0, 0], p[0, 0]), atol=1e-12)


def test_sample_logits_temperature_frequencies():
    logits = jnp.log(jnp.array([0.5, 0.3, 0.2]))
    key = jax.random.key(0)
    draws = text.sample_logits(key, jnp.broadcast_to(logits, (20000, 3)), 0.5)
    freq = np.bincount(np.asarray(draws), minlength=3) / 20000
    p = np.array([0.5, 0.3, 0.2]) ** 2
    np.testing.assert_allclose(freq, p / p.sum(), atol=0.015)   # softmax(log p / T) = p^(1/T) / Z
    np.testing.assert_array_equal(text.sample_logits(None, jnp.array([[0., 3., 1.]]), 0.0), [1])
    with pytest.raises(ValueError, match="temperature"):
        text.sample_logits(key, logits, -1.0)


def test_sample_sequence_follows_a_deterministic_chain_and_stops_at_end():
    # a "model" whose next token is (token + 1) mod 5 with near-certainty; 4 is the end token
    def step(carry, token):
        return carry + 1, 50.0 * jax.nn.one_hot((token + 1) % 5, 5)
    out = text.sample_sequence(step, jnp.zeros(()), jnp.array([0, 2]), jax.random.key(1), 6, end_token=4)
    np.testing.assert_array_equal(np.asarray(out).T, [[1, 2, 3, 4, 4, 4], [3, 4, 4, 4, 4, 4]])
    free = text.sample_sequence(step, jnp.zeros(()), jnp.array(0), jax.random.key(2), 6)
    np.testing.assert_array_equal(free, [1, 2, 3, 4, 0, 1])
    assert math.isclose(float(text.bits_per_character(jnp.zeros(2), jnp.array(0))), 1.0, rel_tol=1e-6)


# ---------------------------------------------------------------------------
# top-k and top-p (nucleus) filtering

def np_filter(logits, top_k=None, top_p=None):
    """Reference in float64, row by row: keep logits >= the k-th largest; then sort the
    probabilities descending, take the smallest prefix whose sum is >= p, and keep every
    token at least as likely as the last one of the prefix (ties kept)."""
    logits = np.asarray(logits, np.float64)
    out = logits.copy()
    for index in np.ndindex(*logits.shape[:-1]):
        row = out[index]
        if top_k is not None:
            kth = np.sort(row)[::-1][min(top_k, row.size) - 1]
            row[row < kth] = -np.inf
        if top_p is not None and top_p < 1:
            probs = np.exp(row - row.max())
            probs /= probs.sum()
            ordered = np.sort(probs)[::-1]
            n = 1
            while ordered[:n].sum() < top_p:
                n += 1
            row[probs < ordered[n - 1]] = -np.inf
        out[index] = row
    return out


def softmax_np(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("top_k, top_p", [(None, None), (3, None), (None, 0.5), (None, 0.9), (5, 0.7),
                                          (1, 0.3), (10, None), (10, 1.0), (None, 1.0), (None, 1e-6)])
def test_filter_logits_matches_numpy_sort_and_cumsum(rng, top_k, top_p):
    logits = rng.normal(size=(4, 3, 10)).astype(np.float32) * 2
    got = text.filter_logits(jnp.asarray(logits), top_k=top_k, top_p=top_p)
    ref = np_filter(logits, top_k, top_p)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    np.testing.assert_array_equal(got[np.isfinite(ref)], logits[np.isfinite(ref)])
    assert got.dtype == jnp.float32
    jitted = jax.jit(lambda z: text.filter_logits(z, top_k=top_k, top_p=top_p))(jnp.asarray(logits))
    np.testing.assert_array_equal(jitted, got)
    if top_k is not None and top_k < 10 and top_p is None:
        assert (np.isfinite(ref).sum(-1) == top_k).all()     # no ties in random logits
    if top_k in (None, 10) and top_p in (None, 1.0):
        np.testing.assert_array_equal(got, logits)           # k = V and p = 1 keep everything


def test_filter_logits_ties_are_kept():
    logits = np.log(np.array([[0.3, 0.2, 0.3, 0.1, 0.1],
                              [0.2, 0.2, 0.2, 0.2, 0.2],
                              [0.1, 0.4, 0.1, 0.3, 0.1]], np.float32))
    for k in (1, 2, 3, 4):
        got = text.filter_logits(jnp.asarray(logits), top_k=k)
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(np_filter(logits, k, None)))
    # k = 1 on a row of ties keeps them all; k = 4 on the last row keeps the three tied 0.1s
    got = np.isfinite(text.filter_logits(jnp.asarray(logits), top_k=1))
    np.testing.assert_array_equal(got, [[1, 0, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]])
    got = np.isfinite(text.filter_logits(jnp.asarray(logits), top_k=4))
    np.testing.assert_array_equal(got[2], [1, 1, 1, 1, 1])
    # nucleus p = 0.55: row 0 needs 0.3 + 0.3 (both tied ones); row 2 needs 0.4 + 0.3
    got = np.isfinite(text.filter_logits(jnp.asarray(logits), top_p=0.55))
    np.testing.assert_array_equal(got, [[1, 0, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 0, 1, 0]])
    # p = 0.75: row 0 reaches 0.8 with a 0.2; row 2 reaches 0.8 with one 0.1, all three tied kept
    got = np.isfinite(text.filter_logits(jnp.asarray(logits), top_p=0.75))
    np.testing.assert_array_equal(got, [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(got, np.isfinite(np_filter(logits, None, 0.75)))


def test_sampling_frequencies_match_filtered_softmax():
    """20,000 draws against softmax(filter(logits / T)); temperature comes before top-p:
    the other order, or no filtering, gives a distribution the test must reject."""
    logits = jnp.log(jnp.array([0.35, 0.25, 0.15, 0.12, 0.08, 0.05]))
    n, temperature = 20000, 1.5
    cases = [(None, 0.7), (None, 0.55), (4, None), (4, 0.65)]
    for i, (top_k, top_p) in enumerate(cases):
        draws = text.sample_logits(jax.random.key(i), jnp.broadcast_to(logits, (n, 6)), temperature,
                                   top_k=top_k, top_p=top_p)
        freq = np.bincount(np.asarray(draws), minlength=6) / n
        want = softmax_np(np_filter(np.asarray(logits) / temperature, top_k, top_p))
        assert np.max(np.abs(freq - want)) < 0.02, (top_k, top_p, freq, want)
        wrong_order = softmax_np(np_filter(np.asarray(logits), top_k, top_p) / temperature)
        unfiltered = softmax_np(np.asarray(logits) / temperature)
        if top_p is not None:
            assert np.max(np.abs(want - wrong_order)) > 0.05      # the check can tell the orders apart
        assert np.max(np.abs(want - unfiltered)) > 0.05
    # greedy decoding ignores the filters (the top token is always kept)
    np.testing.assert_array_equal(text.sample_logits(None, jnp.array([[0., 3., 1.]]), 0.0, top_k=2, top_p=0.1), [1])


def test_sample_sequence_passes_top_k_and_top_p():
    base = jnp.log(jnp.array([0.4, 0.3, 0.2, 0.1]))

    def step(carry, token):
        return carry, jnp.broadcast_to(base, token.shape + (4,))

    first = jnp.zeros((500,), jnp.int32)
    greedy = text.sample_sequence(step, (), first, jax.random.key(3), 4, top_k=1)
    np.testing.assert_array_equal(greedy, np.zeros((4, 500)))
    nucleus = np.asarray(text.sample_sequence(step, (), first, jax.random.key(4), 4, top_p=0.65))
    assert set(np.unique(nucleus)) == {0, 1}                   # 0.4 + 0.3 >= 0.65
    np.testing.assert_allclose(np.mean(nucleus == 0), 4 / 7, atol=0.03)
    both = np.asarray(text.sample_sequence(step, (), first, jax.random.key(5), 4, temperature=0.5,
                                           top_k=3, top_p=0.95))
    assert set(np.unique(both)) == {0, 1, 2}


def test_filter_and_sampling_arguments_are_checked_before_compute():
    logits = jnp.zeros((2, 5))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="filter_logits: expected top_k as a positive int, got 0"):
        text.filter_logits(logits, top_k=0)
    with pytest.raises(TypeError, match="sample_logits: expected top_k as an int, got 2.5"):
        text.sample_logits(key, logits, top_k=2.5)
    for p in (0.0, 1.5, -0.1, True, float("nan"), "0.9"):
        with pytest.raises(ValueError, match=r"expected top_p as a float in \(0, 1\], got"):
            text.filter_logits(logits, top_p=p)
    with pytest.raises(ValueError, match=r"filter_logits: expected logits of shape \(\.\.\., V\), got shape \(\)"):
        text.filter_logits(jnp.zeros(()), top_k=1)
    with pytest.raises(TypeError, match="filter_logits: expected logits of a floating dtype, got int32"):
        text.filter_logits(jnp.zeros((3,), jnp.int32), top_k=1)

    def step(carry, token):
        raise AssertionError("the model must not run with bad arguments")
    with pytest.raises(ValueError, match="sample_sequence: expected top_p as a float"):
        text.sample_sequence(step, (), jnp.array(0), key, 3, top_p=2.0)
    with pytest.raises(ValueError, match="sample_sequence: temperature must be a float >= 0"):
        text.sample_sequence(step, (), jnp.array(0), key, 3, temperature=-1.0)
