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
