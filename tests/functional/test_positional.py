"""Sinusoid table and rotary embedding against NumPy loops (the paper's formula, an
explicit 2x2 rotation per pair), the relative-position property, finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck
from fnnet.functional.positional import apply_rotary, sinusoidal_positions


def np_sinusoid(length, dim, base=10000.0):
    """PE[p, 2i] = sin(p / base^(2i/d)), PE[p, 2i+1] = cos(p / base^(2i/d)), two loops."""
    pe = np.zeros((length, dim))
    for p in range(length):
        for j in range(dim):
            i = j // 2
            angle = p / base ** (2 * i / dim)
            pe[p, j] = np.sin(angle) if j % 2 == 0 else np.cos(angle)
    return pe


def np_rotary(x, positions, base=10000.0):
    """Rotate each pair (x_2i, x_2i+1) by the matrix [[cos, -sin], [sin, cos]] of angle
    p base^(-2i/d); x [batch, seq, heads, d], positions [batch, seq]."""
    out = np.zeros_like(x, dtype=np.float64)
    batch, seq, heads, dim = x.shape
    for b in range(batch):
        for s in range(seq):
            for h in range(heads):
                for i in range(dim // 2):
                    a = positions[b, s] * base ** (-2 * i / dim)
                    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
                    out[b, s, h, 2 * i:2 * i + 2] = rot @ x[b, s, h, 2 * i:2 * i + 2]
    return out


@pytest.mark.parametrize("length, dim, base", [(1, 2, 10000.0), (17, 8, 10000.0), (9, 5, 100.0)])
def test_sinusoid_table_matches_formula(length, dim, base):
    pe = sinusoidal_positions(length, dim, base=base)
    assert pe.shape == (length, dim) and pe.dtype == jnp.float32
    np.testing.assert_allclose(pe, np_sinusoid(length, dim, base), rtol=0, atol=2e-6)


def test_sinusoid_table_float64(x64):
    pe = sinusoidal_positions(300, 6, dtype=jnp.float64)
    assert pe.dtype == jnp.float64
    np.testing.assert_allclose(pe, np_sinusoid(300, 6), rtol=0, atol=1e-12)


def test_sinusoid_bad_arguments():
    with pytest.raises(ValueError, match="sinusoidal_positions: expected length as a positive int, got 0"):
        sinusoidal_positions(0, 4)
    with pytest.raises(TypeError, match="sinusoidal_positions: expected dim as an int"):
        sinusoidal_positions(3, 4.0)
    with pytest.raises(ValueError, match="sinusoidal_positions: expected base as a float > 0, got -1"):
        sinusoidal_positions(3, 4, base=-1.0)
    with pytest.raises(TypeError, match="sinusoidal_positions: expected a floating dtype, got int32"):
        sinusoidal_positions(3, 4, dtype=jnp.int32)


@pytest.mark.parametrize("shared", [True, False])
def test_rotary_matches_rotation_matrices(rng, shared):
    x = rng.normal(size=(2, 5, 3, 8)).astype(np.float32)
    if shared:
        positions = np.arange(5) + 7
        ref = np_rotary(x, np.broadcast_to(positions, (2, 5)))
    else:
        positions = np.stack([np.arange(5), np.arange(5) + 100])    # per-sequence offsets
        ref = np_rotary(x, positions)
    y = apply_rotary(jnp.asarray(x), jnp.asarray(positions))
    assert y.shape == x.shape and y.dtype == jnp.float32
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=2e-5)
    # unbatched [seq, heads, head_dim]
    y0 = apply_rotary(jnp.asarray(x[1]), jnp.asarray(positions if shared else positions[1]), base=500.0)
    ref0 = np_rotary(x[1:2], (positions if shared else positions[1])[None], base=500.0)[0]
    np.testing.assert_allclose(y0, ref0, rtol=1e-5, atol=2e-5)


def test_rotary_scores_depend_only_on_relative_position(x64, rng):
    """<R_m q, R_n k> is a function of m - n: shifting both positions leaves it unchanged,
    while different offsets give different scores."""
    q = jnp.asarray(rng.normal(size=(1, 1, 1, 16)))
    k = jnp.asarray(rng.normal(size=(1, 1, 1, 16)))

    def score(m, n):
        rq = apply_rotary(q, jnp.array([m]))
        rk = apply_rotary(k, jnp.array([n]))
        return float(jnp.sum(rq * rk))

    for m, n in [(3, 1), (10, 10), (0, 7)]:
        for shift in (1, 50, 1234):
            assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-9)
    assert abs(score(3, 1) - score(3, 2)) > 1e-3
    # a rotation keeps norms; position 0 is the identity
    np.testing.assert_allclose(jnp.linalg.norm(apply_rotary(q, jnp.array([99]))), jnp.linalg.norm(q), rtol=1e-12)
    np.testing.assert_allclose(apply_rotary(q, jnp.array([0])), q, rtol=0, atol=0)


def test_rotary_gradient_float64(x64, rng):
    x = jnp.asarray(rng.normal(size=(2, 3, 2, 4)))
    w = jnp.asarray(rng.normal(size=(2, 3, 2, 4)))
    positions = jnp.array([[0, 1, 2], [5, 9, 11]])
    gradcheck.check_gradients(lambda a: jnp.sum(jnp.sin(apply_rotary(a, positions)) * w), x)
    # the map is linear and orthogonal: its vector-Jacobian product is the inverse rotation
    g = jax.grad(lambda a: jnp.sum(apply_rotary(a, positions) * w))(x)
    np.testing.assert_allclose(g, np_rotary(np.asarray(w), -np.asarray(positions)), rtol=1e-12, atol=1e-12)


def test_rotary_under_jit_and_vmap(rng):
    x = jnp.asarray(rng.normal(size=(3, 4, 2, 6)).astype(np.float32))
    positions = jnp.asarray(rng.integers(0, 50, (3, 4)))
    ref = np_rotary(np.asarray(x), np.asarray(positions))
    np.testing.assert_allclose(jax.jit(apply_rotary)(x, positions), ref, rtol=1e-5, atol=2e-5)
    # vmap over the batch of the unbatched form equals the batched form
    np.testing.assert_allclose(jax.vmap(apply_rotary)(x, positions), ref, rtol=1e-5, atol=2e-5)
    # a bfloat16 input comes back in bfloat16
    assert apply_rotary(x.astype(jnp.bfloat16), positions).dtype == jnp.bfloat16


def test_rotary_bad_input():
    x = jnp.ones((2, 4, 3, 6))
    with pytest.raises(ValueError, match=r"apply_rotary: expected x .* of rank 3 or 4, got shape \(4, 6\)"):
        apply_rotary(jnp.ones((4, 6)), jnp.arange(4))
    with pytest.raises(ValueError, match=r"apply_rotary: expected an even head_dim, got x of shape \(2, 4, 3, 5\)"):
        apply_rotary(jnp.ones((2, 4, 3, 5)), jnp.arange(4))
    with pytest.raises(TypeError, match="apply_rotary: expected integer positions, got dtype float32"):
        apply_rotary(x, jnp.arange(4.0))
    with pytest.raises(TypeError, match="apply_rotary: expected x of a floating dtype"):
        apply_rotary(jnp.ones((2, 4, 3, 6), jnp.int32), jnp.arange(4))
    with pytest.raises(ValueError, match=r"expected positions of shape \(4,\) or \(2, 4\) .* got \(3,\)"):
        apply_rotary(x, jnp.arange(3))
    with pytest.raises(ValueError, match=r"expected positions of shape \(4,\) for x .* got \(2, 4\)"):
        apply_rotary(x[0], jnp.zeros((2, 4), jnp.int32))
