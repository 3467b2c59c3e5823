"""Attention kernels against NumPy loops, jax.nn and torch; masks; fully masked rows;
dropout's mean; float64 gradients; bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck
from fnnet.functional.attention import (additive_attention, causal_mask, combine_masks,
                                        dot_product_attention, masked_softmax,
                                        multiplicative_attention, padding_mask)


def attention_loop(q, k, v, allowed, bias, scale):
    """The textbook attention, one query position and head at a time (NumPy, float64)."""
    b, t, h, _ = q.shape
    s, hk = k.shape[1], k.shape[2]
    out = np.zeros((b, t, h, v.shape[3]))
    weights = np.zeros((b, h, t, s))
    for bi in range(b):
        for hi in range(h):
            kv = hi // (h // hk)
            for ti in range(t):
                idx = [si for si in range(s) if allowed[bi, hi, ti, si]]
                if not idx:
                    continue
                logits = np.array([scale * q[bi, ti, hi] @ k[bi, si, kv] + bias[bi, hi, ti, si]
                                   for si in idx])
                p = np.exp(logits - logits.max())
                p /= p.sum()
                for pi, si in zip(p, idx):
                    weights[bi, hi, ti, si] = pi
                    out[bi, ti, hi] += pi * v[bi, si, kv]
    return out, weights


def _qkv(rng, b=2, t=4, s=5, h=4, hk=2, d=3, dv=2):
    return (rng.normal(size=(b, t, h, d)), rng.normal(size=(b, s, hk, d)), rng.normal(size=(b, s, hk, dv)))


@pytest.mark.parametrize("causal", [False, True])
def test_against_numpy_loop_with_masks_bias_and_grouped_heads(x64, rng, causal):
    q, k, v = _qkv(rng)
    lengths = np.array([3, 5])
    mask = np.arange(5)[None, None, None, :] < lengths[:, None, None, None]       # (2, 1, 1, 5)
    bias = rng.normal(size=(1, 4, 4, 5))
    allowed = np.broadcast_to(mask, (2, 4, 4, 5)).copy()
    if causal:
        allowed &= np.arange(5)[None, :] <= np.arange(4)[:, None]
    want, want_w = attention_loop(q, k, v, allowed, np.broadcast_to(bias, (2, 4, 4, 5)), 0.7)
    got, got_w = dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), mask=jnp.asarray(mask),
                                       bias=jnp.asarray(bias), scale=0.7, is_causal=causal,
                                       return_weights=True)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_w, want_w, rtol=1e-12, atol=1e-12)


def test_default_scale_and_unbatched(x64, rng):
    q, k, v = _qkv(rng, b=1)
    allowed = np.ones((1, 4, 4, 5), bool)
    want, _ = attention_loop(q, k, v, allowed, np.zeros((1, 4, 4, 5)), 1 / np.sqrt(3))
    got = dot_product_attention(jnp.asarray(q[0]), jnp.asarray(k[0]), jnp.asarray(v[0]))
    np.testing.assert_allclose(got, want[0], rtol=1e-12, atol=1e-12)


def test_matches_jax_nn_dot_product_attention(rng):
    q, k, v = (jnp.asarray(a, jnp.float32) for a in _qkv(rng, d=8, dv=8))
    mask = padding_mask(jnp.array([2, 5]), 5)
    got = dot_product_attention(q, k, v, mask=mask, is_causal=True)
    want = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_matches_torch_scaled_dot_product_attention(rng):
    torch = pytest.importorskip("torch")
    q, k, v = _qkv(rng, h=2, hk=2, d=4, dv=3)
    mask = rng.random((2, 1, 4, 5)) < 0.7
    mask[0, 0, 1] = False  # a fully masked row: zeros in both
    t = lambda a: torch.tensor(a).transpose(1, 2)  # torch wants [batch, heads, seq, dim]
    want = torch.nn.functional.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=torch.tensor(mask))
    with jax.enable_x64(True):
        got = dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), mask=jnp.asarray(mask))
        np.testing.assert_allclose(got, want.transpose(1, 2).numpy(), rtol=1e-12, atol=1e-12)


def test_fully_masked_rows_give_zeros_and_zero_gradients(x64, rng):
    q, k, v = (jnp.asarray(a) for a in _qkv(rng))
    mask = padding_mask(jnp.array([0, 5]), 5)           # example 0 sees no key at all
    f = lambda q, k, v: jnp.sum(dot_product_attention(q, k, v, mask=mask) ** 2)
    out = dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_array_equal(out[0], 0.0)
    grads = jax.grad(f, argnums=(0, 1, 2))(q, k * 1e3, v)   # huge logits must not leak NaN
    for g in grads:
        assert np.all(np.isfinite(g))
        np.testing.assert_array_equal(g[0], 0.0)
    assert np.abs(grads[0][1]).max() > 0


def test_masked_softmax_closed_form(x64):
    logits = jnp.array([[1.0, 2.0, 3.0], [1e308, -1e308, 0.0], [5.0, 6.0, 7.0]])
    mask = jnp.array([[True, False, True], [False, True, True], [False, False, False]])
    got = masked_softmax(logits, mask)
    e = np.exp([1.0 - 3.0, 0.0])
    np.testing.assert_allclose(got[0], [e[0] / e.sum(), 0, e[1] / e.sum()], rtol=1e-14)
    np.testing.assert_allclose(got[1], [0, 0, 1], atol=0)
    np.testing.assert_array_equal(got[2], 0.0)


@pytest.mark.parametrize("wrt", ["q", "k", "v", "bias"])
def test_gradient_float64(x64, rng, wrt):
    q, k, v = (jnp.asarray(a) for a in _qkv(rng, b=1, t=3, s=4, h=2, hk=1, d=3, dv=2))
    bias = jnp.asarray(rng.normal(size=(1, 2, 3, 4)))
    mask = padding_mask(jnp.array([3]), 4)
    args = {"q": q, "k": k, "v": v, "bias": bias}
    w = jnp.asarray(rng.normal(size=(1, 3, 2, 2)))

    def f(x):
        a = {**args, wrt: x}
        out = dot_product_attention(a["q"], a["k"], a["v"], mask=mask, bias=a["bias"], is_causal=True)
        return jnp.sum(w * jnp.tanh(out))

    gradcheck.check_gradients(f, args[wrt], tol=1e-7)


@pytest.mark.parametrize("wrt", ["q", "k", "v"])
def test_causal_without_mask_or_bias_float64(x64, rng, wrt):
    """``is_causal`` alone takes a plain softmax after -inf logits (no row is empty):
    the NumPy loop's values, finite differences' gradients, and finite gradients for
    logits of 1e3 (the shifted exp never overflows)."""
    q, k, v = (jnp.asarray(a) for a in _qkv(rng, b=1, t=3, s=4, h=2, hk=1, d=3, dv=2))
    allowed = np.broadcast_to(np.arange(4)[None, :] <= np.arange(3)[:, None], (1, 2, 3, 4))
    want, weights = attention_loop(np.asarray(q), np.asarray(k), np.asarray(v), allowed,
                                   np.zeros((1, 2, 3, 4)), 1 / np.sqrt(3))
    got, got_weights = dot_product_attention(q, k, v, is_causal=True, return_weights=True)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_weights, weights, rtol=1e-12, atol=1e-12)
    args = {"q": q, "k": k, "v": v}
    w = jnp.asarray(rng.normal(size=(1, 3, 2, 2)))

    def f(x, big=1.0):
        a = {**args, wrt: x}
        return jnp.sum(w * jnp.tanh(dot_product_attention(a["q"], big * a["k"], a["v"], is_causal=True)))

    gradcheck.check_gradients(f, args[wrt], tol=1e-7)
    np.testing.assert_allclose(jax.jacfwd(f)(args[wrt]), jax.grad(f)(args[wrt]), rtol=1e-10, atol=1e-14)
    assert np.all(np.isfinite(jax.grad(f)(args[wrt], 1e3)))


def test_dropout_keeps_the_mean_and_needs_a_key(rng):
    q, k, v = (jnp.asarray(a, jnp.float32) for a in _qkv(rng, b=1))
    plain = dot_product_attention(q, k, v)
    keys = jax.random.split(jax.random.key(0), 4000)
    drops = jax.vmap(lambda key: dot_product_attention(q, k, v, dropout_rate=0.3, key=key))(keys)
    # each output is a sum of 5 weight-scaled values; the 4000-draw mean has std error < 0.02
    np.testing.assert_allclose(drops.mean(0), plain, atol=0.06)
    assert np.abs(drops[0] - plain).max() > 0.05
    with pytest.raises(ValueError, match="dot_product_attention: dropout_rate=0.3 needs a random key"):
        dot_product_attention(q, k, v, dropout_rate=0.3)


def test_mask_helpers_against_numpy():
    np.testing.assert_array_equal(causal_mask(3, 5, offset=2)[0, 0],
                                  [[s <= t + 2 for s in range(5)] for t in range(3)])
    np.testing.assert_array_equal(causal_mask(3)[0, 0], np.tril(np.ones((3, 3), bool)))
    np.testing.assert_array_equal(padding_mask(jnp.array([1, 3]), 4)[:, 0, 0],
                                  [[True, False, False, False], [True, True, True, False]])
    both = combine_masks(padding_mask(jnp.array([1, 3]), 3), None, causal_mask(3))
    want = np.array([[[s < n and s <= t for s in range(3)] for t in range(3)] for n in (1, 3)])
    np.testing.assert_array_equal(both[:, 0], want)
    assert combine_masks(None, None) is None


def test_jit_vmap_grad(rng):
    qn, kn, vn = _qkv(rng)
    q, k, v = (jnp.asarray(a, jnp.float32) for a in (qn, kn, vn))
    causal = np.arange(5)[None, :] <= np.arange(4)[:, None]
    want, _ = attention_loop(qn, kn, vn, np.broadcast_to(causal, (2, 4, 4, 5)), np.zeros((2, 4, 4, 5)),
                             1 / np.sqrt(3))
    f = jax.jit(lambda q: dot_product_attention(q, k, v, is_causal=True))
    np.testing.assert_allclose(f(q), want, rtol=1e-5, atol=1e-6)
    per_example = jax.vmap(lambda q, k, v: dot_product_attention(q, k, v, is_causal=True))(q, k, v)
    np.testing.assert_allclose(per_example, want, rtol=1e-5, atol=1e-6)

    def textbook(q):  # softmax(q k^T / sqrt(d)) v over s <= t, written out (key head h // 2)
        kh, vh = jnp.repeat(k, 2, axis=2), jnp.repeat(v, 2, axis=2)
        logits = jnp.einsum("bthd,bshd->bhts", q, kh) / np.sqrt(3)
        w = jax.nn.softmax(jnp.where(jnp.asarray(causal)[None, None], logits, -1e30), axis=-1)
        return jnp.einsum("bhts,bshd->bthd", w, vh)

    weights = jnp.asarray(rng.normal(size=(2, 4, 4, 2)), jnp.float32)
    np.testing.assert_allclose(jax.jit(jax.grad(lambda q: jnp.sum(weights * f(q))))(q),
                               jax.grad(lambda q: jnp.sum(weights * textbook(q)))(q), rtol=1e-4, atol=1e-5)


def additive_loop(query, keys, values, wq, wk, v, mask):
    out, weights = np.zeros((len(query), values.shape[2])), np.zeros(keys.shape[:2])
    for b in range(len(query)):
        idx = [s for s in range(keys.shape[1]) if mask[b, s]]
        e = np.array([v @ np.tanh(query[b] @ wq + keys[b, s] @ wk) for s in idx])
        p = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
        for pi, s in zip(p, idx):
            weights[b, s] = pi
            out[b] += pi * values[b, s]
    return out, weights


def test_additive_attention_against_loop_and_gradient(x64, rng):
    query, keys, values = rng.normal(size=(2, 3)), rng.normal(size=(2, 4, 5)), rng.normal(size=(2, 4, 2))
    wq, wk, v = rng.normal(size=(3, 6)), rng.normal(size=(5, 6)), rng.normal(size=6)
    mask = np.array([[True, True, False, False], [True, True, True, True]])
    want = additive_loop(query, keys, values, wq, wk, v, mask)
    a = [jnp.asarray(x) for x in (query, keys, values, wq, wk, v)]
    got = additive_attention(*a, mask=jnp.asarray(mask))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
    f = lambda p: jnp.sum(jnp.sin(additive_attention(a[0], a[1], a[2], p["wq"], p["wk"], p["v"],
                                                     mask=jnp.asarray(mask))[0]))
    gradcheck.check_gradients(f, {"wq": a[3], "wk": a[4], "v": a[5]}, tol=1e-7)


@pytest.mark.parametrize("general", [False, True])
def test_multiplicative_attention_against_loop_and_gradient(x64, rng, general):
    query, keys, values = rng.normal(size=(2, 3)), rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4, 2))
    w = rng.normal(size=(3, 3)) if general else np.eye(3)
    mask = np.array([[True, False, True, True], [True, True, True, True]])
    want_c, want_w = np.zeros((2, 2)), np.zeros((2, 4))
    for b in range(2):
        e = np.array([query[b] @ w @ keys[b, s] if mask[b, s] else -np.inf for s in range(4)])
        want_w[b] = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
        want_c[b] = want_w[b] @ values[b]
    a = [jnp.asarray(x) for x in (query, keys, values)]
    got_c, got_w = multiplicative_attention(*a, jnp.asarray(w) if general else None, mask=jnp.asarray(mask))
    np.testing.assert_allclose(got_c, want_c, rtol=1e-12)
    np.testing.assert_allclose(got_w, want_w, rtol=1e-12, atol=1e-15)
    f = lambda q: jnp.sum(jnp.sin(multiplicative_attention(q, a[1], a[2], jnp.asarray(w))[0]))
    gradcheck.check_gradients(f, a[0], tol=1e-7)


def test_bad_input_is_named_before_compute(rng):
    q, k, v = (jnp.asarray(a, jnp.float32) for a in _qkv(rng))
    with pytest.raises(ValueError, match=r"expected k with head_dim 3 \(q's\), got k of shape \(2, 5, 2, 4\)"):
        dot_product_attention(q, jnp.zeros((2, 5, 2, 4)), v)
    with pytest.raises(ValueError, match=r"mask broadcastable to \[batch, heads, q_len, kv_len\] = "
                                         r"\[2, 4, 4, 5\], got shape \(2, 1, 1, 4\)"):
        dot_product_attention(q, k, v, mask=jnp.ones((2, 1, 1, 4), bool))
    with pytest.raises(TypeError, match="expected a bool mask"):
        dot_product_attention(q, k, v, mask=jnp.ones((2, 1, 1, 5)))
    with pytest.raises(ValueError, match="4 heads are not a multiple of k's 3 heads"):
        dot_product_attention(q, jnp.zeros((2, 5, 3, 3)), jnp.zeros((2, 5, 3, 2)))
    with pytest.raises(ValueError, match="expected v with kv_len and kv_heads"):
        dot_product_attention(q, k, jnp.zeros((2, 6, 2, 2)))
    with pytest.raises(TypeError, match="expected q of a floating dtype"):
        dot_product_attention(jnp.zeros((2, 4, 4, 3), jnp.int32), k, v)
    with pytest.raises(ValueError, match="expected keys"):
        multiplicative_attention(jnp.zeros((2, 3)), jnp.zeros((3, 4, 3)), jnp.zeros((3, 4, 2)))
    with pytest.raises(ValueError, match="expected a bool mask of shape"):
        multiplicative_attention(jnp.zeros((2, 3)), jnp.zeros((2, 4, 3)), jnp.zeros((2, 4, 2)),
                                 mask=jnp.ones((2, 5), bool))
    with pytest.raises(ValueError, match=r"expected w_query \(3, A\)"):
        additive_attention(jnp.zeros((2, 3)), jnp.zeros((2, 4, 3)), jnp.zeros((2, 4, 2)),
                           jnp.zeros((4, 6)), jnp.zeros((3, 6)), jnp.zeros(6))
