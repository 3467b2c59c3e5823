"""multi_head_attention: against torch.nn.MultiheadAttention with the same weights
(float64, through fnnet.interop), against a NumPy loop for grouped-query and rotary
attention, its key-value cache against the full causal pass, gradients, transforms
and errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck, interop
from fnnet.nn.attention import init_cache, multi_head_attention

B, T, E, H = 3, 5, 8, 2


def np_rotary(x, positions, base=10000.0):
    """Rotate consecutive pairs of the last axis of ``x [..., T, D]`` by ``p base^(-2i/D)``."""
    d = x.shape[-1]
    y = np.empty_like(x)
    for t in range(x.shape[-2]):
        for i in range(d // 2):
            a = positions[t] * base ** (-2 * i / d)
            e, o = x[..., t, 2 * i], x[..., t, 2 * i + 1]
            y[..., t, 2 * i] = e * np.cos(a) - o * np.sin(a)
            y[..., t, 2 * i + 1] = e * np.sin(a) + o * np.cos(a)
    return y


def np_mha(params, x, ctx, heads, kv_heads, allowed, rotary=False):
    """The textbook loop: per batch, head and query, a softmax over the allowed keys."""
    p = {k: {n: np.asarray(a, np.float64) for n, a in v.items()} for k, v in params.items()}
    ctx = x if ctx is None else ctx
    q = x @ p["query"]["kernel"] + p["query"]["bias"]
    k = ctx @ p["key"]["kernel"] + p["key"]["bias"]
    v = ctx @ p["value"]["kernel"] + p["value"]["bias"]
    b, t, s = x.shape[0], x.shape[1], ctx.shape[1]
    d = q.shape[-1] // heads
    q, k, v = q.reshape(b, t, heads, d), k.reshape(b, s, kv_heads, d), v.reshape(b, s, kv_heads, d)
    out = np.zeros((b, t, heads, d))
    for bi in range(b):
        for h in range(heads):
            g = h // (heads // kv_heads)
            qh, kh = q[bi, :, h], k[bi, :, g]
            if rotary:
                qh, kh = np_rotary(qh, np.arange(t)), np_rotary(kh, np.arange(s))
            for ti in range(t):
                ok = [si for si in range(s) if allowed[bi, ti, si]]
                logits = np.array([qh[ti] @ kh[si] / np.sqrt(d) for si in ok])
                w = np.exp(logits - logits.max())
                out[bi, ti, h] = (w / w.sum()) @ v[bi, ok, g]
    return out.reshape(b, t, heads * d) @ p["out"]["kernel"] + p["out"]["bias"]


def random_params(module, x, seed=0):
    """Params with random (not zero) biases, so that every bias is checked."""
    params, state = module.init(jax.random.key(seed), x)
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    leaves = [jnp.asarray(rng.normal(size=a.shape) * 0.5, a.dtype) for a in leaves]
    return jax.tree.unflatten(tree, leaves), state


# ---------------------------------------------------------------------------
# PyTorch

@pytest.mark.parametrize("fused", [False, True])
def test_self_attention_matches_torch_with_padding_and_causal_masks(fused, x64, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(E, H, batch_first=True, dtype=torch.float64).eval()
    with torch.no_grad():
        tm.in_proj_bias.normal_()
        tm.out_proj.bias.normal_()
    x = rng.normal(size=(B, T, E))
    lengths = np.array([5, 2, 4])
    kpm = np.arange(T)[None, :] >= lengths[:, None]                 # torch: True = ignore
    causal = np.triu(np.ones((T, T), bool), 1)
    xt = torch.tensor(x)
    with torch.no_grad():
        want = tm(xt, xt, xt, key_padding_mask=torch.tensor(kpm), attn_mask=torch.tensor(causal),
                  need_weights=False)[0].numpy()
        want_pad = tm(xt, xt, xt, key_padding_mask=torch.tensor(kpm), need_weights=False)[0].numpy()

    params = interop.multi_head_attention(tm.state_dict(), fused=fused)
    assert ("qkv" in params) == fused
    for causal_flag, reference in ((True, want), (False, want_pad)):
        m = multi_head_attention(H, fused_qkv=fused, causal=causal_flag, dtype=jnp.float64)
        out, _ = m.apply(params, {}, {"inputs": jnp.asarray(x), "lengths": jnp.asarray(lengths)})
        np.testing.assert_allclose(out["inputs"], reference, rtol=1e-12, atol=1e-12)
    # an explicit mask (True = may attend) instead of lengths gives the same
    m = multi_head_attention(H, fused_qkv=fused, dtype=jnp.float64)
    out, _ = m.apply(params, {}, {"inputs": jnp.asarray(x), "mask": jnp.asarray(~kpm)[:, None, None, :]})
    np.testing.assert_allclose(out["inputs"], want_pad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kdim", [E, 6])
def test_cross_attention_matches_torch(kdim, x64, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    tm = torch.nn.MultiheadAttention(E, H, batch_first=True, kdim=kdim, vdim=kdim,
                                     dtype=torch.float64).eval()
    x, ctx = rng.normal(size=(B, T, E)), rng.normal(size=(B, 4, kdim))
    ctx_lengths = np.array([4, 1, 3])
    kpm = np.arange(4)[None, :] >= ctx_lengths[:, None]
    with torch.no_grad():
        want = tm(torch.tensor(x), torch.tensor(ctx), torch.tensor(ctx),
                  key_padding_mask=torch.tensor(kpm), need_weights=False)[0].numpy()
    for fused in ((False, True) if kdim == E else (False,)):
        params = interop.multi_head_attention(tm.state_dict(), fused=fused)
        m = multi_head_attention(H, fused_qkv=fused, dtype=jnp.float64)
        out, _ = m.apply(params, {}, {"inputs": jnp.asarray(x), "context": jnp.asarray(ctx),
                                      "context_lengths": jnp.asarray(ctx_lengths)})
        np.testing.assert_allclose(out["inputs"], want, rtol=1e-12, atol=1e-12)
        assert set(out) == {"inputs", "context", "context_lengths"}
    if kdim != E:
        with pytest.raises(ValueError, match="fused=True needs in_proj_weight"):
            interop.multi_head_attention(tm.state_dict(), fused=True)


# ---------------------------------------------------------------------------
# NumPy reference: grouped-query heads, rotary, no output bias shortcuts

@pytest.mark.parametrize("kv_heads,rotary", [(1, False), (2, True), (4, True)])
def test_grouped_query_and_rotary_match_numpy_loop(kv_heads, rotary, x64, rng):
    heads = 4
    m = multi_head_attention(heads, num_kv_heads=kv_heads, rotary=rotary, causal=True,
                             qkv_features=16, out_features=6, dtype=jnp.float64)
    x = jnp.asarray(rng.normal(size=(2, 4, E)))
    params, state = random_params(m, x)
    assert params["key"]["kernel"].shape == (E, kv_heads * 4) and params["out"]["kernel"].shape == (16, 6)
    y, _ = m.apply(params, state, x)
    allowed = np.broadcast_to(np.tril(np.ones((4, 4), bool)), (2, 4, 4))
    np.testing.assert_allclose(y, np_mha(params, np.asarray(x), None, heads, kv_heads, allowed, rotary),
                               rtol=1e-12, atol=1e-12)


def test_fused_params_are_the_concatenated_projections(x64, rng):
    """The same key draws the same blocks fused or apart, and both compute the NumPy loop's output."""
    x = jnp.asarray(rng.normal(size=(2, 3, E)))
    apart, _ = random_params(multi_head_attention(H, num_kv_heads=1, dtype=jnp.float64), x)
    fused_m = multi_head_attention(H, num_kv_heads=1, fused_qkv=True, dtype=jnp.float64)
    fused = {"qkv": {n: jnp.concatenate([apart[k][n] for k in ("query", "key", "value")], axis=-1)
                     for n in ("kernel", "bias")}, "out": apart["out"]}
    y, _ = fused_m.apply(fused, {}, x)
    np.testing.assert_allclose(y, np_mha(apart, np.asarray(x), None, H, 1, np.ones((2, 3, 3), bool)),
                               rtol=1e-12, atol=1e-12)
    p_apart, _ = multi_head_attention(H, num_kv_heads=1).init(jax.random.key(3), x)
    p_fused, _ = multi_head_attention(H, num_kv_heads=1, fused_qkv=True).init(jax.random.key(3), x)
    np.testing.assert_array_equal(p_fused["qkv"]["kernel"][:, :E], p_apart["query"]["kernel"])
    np.testing.assert_array_equal(p_fused["qkv"]["kernel"][:, E + 4:], p_apart["value"]["kernel"])


def test_no_output_projection_returns_the_heads(x64, rng):
    m = multi_head_attention(H, output_projection=False, dtype=jnp.float64)
    x = jnp.asarray(rng.normal(size=(1, 3, E)))
    params, _ = random_params(m, x)
    assert "out" not in params
    y, _ = m.apply(params, {}, x)
    eye = {"kernel": np.eye(E), "bias": np.zeros(E)}
    np.testing.assert_allclose(y, np_mha(dict(params, out=eye), np.asarray(x), None, H, H,
                                         np.ones((1, 3, 3), bool)), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# Key-value cache

@pytest.mark.parametrize("kv_heads,rotary,fused", [(2, False, True), (1, True, False)])
def test_cache_chunks_give_the_full_causal_pass(kv_heads, rotary, fused, x64, rng):
    m = multi_head_attention(H, num_kv_heads=kv_heads, rotary=rotary, fused_qkv=fused, causal=True,
                             dtype=jnp.float64)
    x = jnp.asarray(rng.normal(size=(2, 6, E)))
    params, state = random_params(m, x)
    full = np_mha(jax.tree.map(np.asarray, _unfuse(params, H, kv_heads)), np.asarray(x), None, H,
                  kv_heads, np.broadcast_to(np.tril(np.ones((6, 6), bool)), (2, 6, 6)), rotary)
    cache = init_cache(2, 8, kv_heads, E // H, dtype=jnp.float64)
    step = jax.jit(lambda c, xs: m.apply(params, state, {"inputs": xs, "cache": c})[0])
    outs = []
    for a, b in ((0, 3), (3, 4), (4, 5), (5, 6)):                    # a prompt, then one at a time
        out = step(cache, x[:, a:b])
        cache = out["cache"]
        outs.append(out["inputs"])
    np.testing.assert_array_equal(cache["length"], [6, 6])
    np.testing.assert_allclose(jnp.concatenate(outs, axis=1), full, rtol=1e-12, atol=1e-12)


def test_cache_with_right_padded_prompts_of_different_lengths(x64, rng):
    """Sequence 0 has a 4-token prompt, sequence 1 a 2-token prompt padded to 4: after the
    prefill each step feeds both their next input, at positions 4 and 2."""
    m = multi_head_attention(H, causal=True, rotary=True, dtype=jnp.float64)
    seqs = [rng.normal(size=(6, E)), rng.normal(size=(4, E))]
    params, state = random_params(m, jnp.asarray(seqs[0][None]))
    prompt = np.zeros((2, 4, E))
    prompt[0], prompt[1, :2] = seqs[0][:4], seqs[1][:2]
    prompt[1, 2:] = 1e3  # padding garbage that must not leak
    cache = init_cache(2, 6, H, E // H, dtype=jnp.float64)
    out, _ = m.apply(params, state, {"inputs": jnp.asarray(prompt), "lengths": jnp.array([4, 2]),
                                     "cache": cache})
    got = [[out["inputs"][0, :4]], [out["inputs"][1, :2]]]
    cache = out["cache"]
    np.testing.assert_array_equal(cache["length"], [4, 2])
    for i in range(2):
        nxt = np.stack([seqs[0][4 + i], seqs[1][2 + i]])[:, None]
        out, _ = m.apply(params, state, {"inputs": jnp.asarray(nxt), "cache": cache})
        cache = out["cache"]
        got[0].append(out["inputs"][0])
        got[1].append(out["inputs"][1])
    for seq, g in zip(seqs, got):
        n = len(seq)
        want = np_mha(params, seq[None], None, H, H, np.tril(np.ones((n, n), bool))[None], rotary=True)
        np.testing.assert_allclose(jnp.concatenate(g, axis=0), want[0], rtol=1e-10, atol=1e-10)


def _unfuse(params, heads, kv_heads):
    if "qkv" not in params:
        return params
    w, b = params["qkv"]["kernel"], params["qkv"]["bias"]
    d = w.shape[1] // (heads + 2 * kv_heads)
    cuts = [heads * d, (heads + kv_heads) * d]
    return {"query": {"kernel": w[:, :cuts[0]], "bias": b[:cuts[0]]},
            "key": {"kernel": w[:, cuts[0]:cuts[1]], "bias": b[cuts[0]:cuts[1]]},
            "value": {"kernel": w[:, cuts[1]:], "bias": b[cuts[1]:]}, "out": params["out"]}


# ---------------------------------------------------------------------------
# Gradients and transforms

def test_gradients_match_finite_differences(x64, rng):
    m = multi_head_attention(H, num_kv_heads=1, fused_qkv=True, causal=True, rotary=True,
                             dtype=jnp.float64)
    x = jnp.asarray(rng.normal(size=(2, 3, E)))
    params, state = random_params(m, x)
    weights = jnp.asarray(rng.normal(size=(2, 3, E)))
    lengths = jnp.array([3, 2])

    def loss(tree):
        out, _ = m.apply(tree["params"], state, {"inputs": tree["x"], "lengths": lengths})
        return jnp.sum(out["inputs"] * weights)

    gradcheck.check_gradients(jax.jit(loss), {"params": params, "x": x}, tol=1e-7)


def test_jit_vmap_grad(x64, rng):
    m = multi_head_attention(H, causal=True, dtype=jnp.float64)
    x = rng.normal(size=(B, T, E))
    params, state = random_params(m, jnp.asarray(x))
    want = np_mha(params, x, None, H, H, np.broadcast_to(np.tril(np.ones((T, T), bool)), (B, T, T)))
    # an unbatched input, and vmap over the batch of unbatched inputs
    y0, _ = m.apply(params, state, jnp.asarray(x[0]))
    np.testing.assert_allclose(y0, want[0], rtol=1e-12, atol=1e-12)
    yv = jax.jit(jax.vmap(lambda v: m.apply(params, state, v)[0]))(jnp.asarray(x))
    np.testing.assert_allclose(yv, want, rtol=1e-12, atol=1e-12)
    yj = jax.jit(lambda p, v: m.apply(p, state, v)[0])(params, jnp.asarray(x))
    np.testing.assert_allclose(yj, want, rtol=1e-12, atol=1e-12)
    # the gradient of a linear readout of the bias of ``out`` is the readout itself
    w = rng.normal(size=(B, T, E))
    g = jax.jit(jax.grad(lambda p: jnp.sum(m.apply(p, state, jnp.asarray(x))[0] * w)))(params)
    np.testing.assert_allclose(g["out"]["bias"], w.sum((0, 1)), rtol=1e-12)


def test_dropout_needs_a_key_and_drops_weights(rng):
    m = multi_head_attention(H, dropout_rate=0.5)
    x = jnp.asarray(rng.normal(size=(1, T, E)), jnp.float32)
    params, state = m.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="multi_head_attention: train=True needs a random key"):
        m.apply(params, state, x, train=True)
    a, _ = m.apply(params, state, x, key=jax.random.key(1), train=True)
    b, _ = m.apply(params, state, x, key=jax.random.key(1), train=True)
    e, _ = m.apply(params, state, x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, e)


# ---------------------------------------------------------------------------
# Errors before compute

def test_errors_name_the_layer_and_the_values():
    x = jnp.ones((2, 3, E))
    with pytest.raises(ValueError, match="num_kv_heads=3 does not divide num_heads=4"):
        multi_head_attention(4, num_kv_heads=3)
    with pytest.raises(ValueError, match="qkv_features=10 is not a multiple of num_heads=4"):
        multi_head_attention(4, qkv_features=10)
    with pytest.raises(ValueError, match="query width 8 .* num_heads=3"):
        multi_head_attention(3).init(jax.random.key(0), x)
    m = multi_head_attention(H, causal=True)
    params, state = m.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"unknown input entries \['lenghts'\]"):
        m.apply(params, state, {"inputs": x, "lenghts": jnp.array([1, 2])})
    with pytest.raises(ValueError, match=r"cache keys and values of shape \[2, L, 2, 4\].*\(2, 5, 2, 2\)"):
        m.apply(params, state, {"inputs": x, "cache": init_cache(2, 5, 2, 2)})  # another model's cache
    with pytest.raises(ValueError, match="3 new positions do not fit a cache of length 2"):
        m.apply(params, state, {"inputs": x, "cache": init_cache(2, 2, H, 4)})
    with pytest.raises(ValueError, match="lengths of integer dtype and shape \\(2,\\)"):
        m.apply(params, state, {"inputs": x, "lengths": jnp.array([1, 2, 3])})
    with pytest.raises(ValueError, match="cache serves causal self attention"):
        mn = multi_head_attention(H)
        mn.apply(params, state, {"inputs": x, "cache": init_cache(2, 5, H, 4)})
    with pytest.raises(ValueError, match="rotary serves self attention only"):
        multi_head_attention(H, rotary=True).apply(params, state, {"inputs": x, "context": x})
    with pytest.raises(ValueError, match="key/value kernels of width 1 heads x 4 = 4, got 8"):
        multi_head_attention(H, num_kv_heads=1).apply(params, state, x)  # 2-kv-head params
