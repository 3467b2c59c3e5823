"""fnnet.models.gpt against nanoGPT's forward pass written here in plain JAX (values and
gradients, float64); the key-value cache against the full causal pass at every
position (chunks, single steps, right-padded prompts of different lengths); greedy
generation against a loop of full passes; nanoGPT's init and parameter count; errors."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import nn
from fnnet.models.gpt import GPT, generate, gpt

V, CTX, L, H, D = 13, 8, 2, 2, 8


def nanogpt_forward(params, idx, heads, bias=True, tied=True):
    """nanoGPT's ``GPT.forward`` (model.py), module by module, from a params dict, with
    PyTorch's implicit broadcasting."""
    return _nanogpt_forward(params, jnp.asarray(idx), heads, bias, tied)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _nanogpt_forward(params, idx, heads, bias, tied):
    with jax.numpy_rank_promotion("allow"):
        return _nanogpt_body(params, idx, heads, bias, tied)


def _nanogpt_body(params, idx, heads, bias, tied):
    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        y = (x - mu) / jnp.sqrt(var + 1e-5) * p["scale"]
        return y + p["bias"] if bias else y

    def linear(x, p):
        y = x @ p["kernel"]
        return y + p["bias"] if bias else y

    b, t = idx.shape
    wte = params["token_embedding"]["embedding"]
    x = wte[idx] + params["position_embedding"]["embedding"][jnp.arange(t)][None]
    for i in range(len(params["blocks"])):
        p = params["blocks"][str(i)]
        # CausalSelfAttention
        h = ln(x, p["norm1"])
        q, k, v = jnp.split(linear(h, p["attention"]["qkv"]), 3, axis=2)
        c = q.shape[-1]
        q, k, v = (a.reshape(b, t, heads, c // heads).transpose(0, 2, 1, 3) for a in (q, k, v))
        att = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(k.shape[-1]))
        att = jnp.where(jnp.tril(jnp.ones((t, t)))[None, None] == 0, -jnp.inf, att)
        att = jax.nn.softmax(att, axis=-1)
        y = (att @ v).transpose(0, 2, 1, 3).reshape(b, t, c)
        x = x + linear(y, p["attention"]["out"])
        # MLP: c_fc, exact GELU, c_proj
        h = linear(ln(x, p["norm2"]), p["mlp"]["hidden"])
        h = 0.5 * h * (1.0 + jax.scipy.special.erf(h / math.sqrt(2.0)))
        x = x + linear(h, p["mlp"]["output"])
    x = ln(x, params["norm"])
    return x @ wte.T if tied else x @ params["head"]["kernel"]


def next_token_logits(params, seq):
    """nanoGPT's logits after ``seq`` (a list of ids): one full pass over a window of
    ``CTX`` ids, the tail padded (causal, so the padding cannot reach position
    ``len(seq) - 1``; one compile for every length)."""
    window = np.zeros((1, CTX), np.int32)
    window[0, :len(seq)] = seq
    return nanogpt_forward(params, window, H)[0, len(seq) - 1]


def random_params(model, tokens, seed=0):
    """Random params of the shapes ``init`` gives (found by ``eval_shape``, no init
    compile): matrices ``N(0, 0.2^2)`` (0.02 would make every logit nearly equal),
    biases and norm scales random too, so that every leaf matters."""
    params, state = jax.eval_shape(lambda k: model.init(k, tokens), jax.random.key(0))
    rng = np.random.default_rng(seed)

    def fill(path, a):
        names = jax.tree_util.keystr(path)
        if "scale" in names:
            return jnp.asarray(1 + 0.3 * rng.normal(size=a.shape), a.dtype)
        return jnp.asarray((0.3 if "bias" in names else 0.2) * rng.normal(size=a.shape), a.dtype)
    return jax.tree_util.tree_map_with_path(fill, params), state


def tokens_of(rng, b, t):
    return jnp.asarray(rng.integers(0, V, size=(b, t)), jnp.int32)


@pytest.mark.parametrize("bias,tied", [(True, True), (False, False)])
def test_full_pass_matches_nanogpt_values_and_gradients(bias, tied, x64, rng):
    model = gpt(V, CTX, L, H, D, use_bias=bias, tie_embeddings=tied, dtype=jnp.float64)
    idx = tokens_of(rng, 2, 6)
    params, state = random_params(model, idx)
    assert ("head" in params) != tied
    logits, _ = jax.jit(model.apply)(params, state, idx)
    want = nanogpt_forward(params, idx, H, bias, tied)
    np.testing.assert_allclose(logits, want, rtol=1e-12, atol=1e-12)
    targets = tokens_of(rng, 2, 6)

    def loss(f):
        def fn(p):
            z = f(p)
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), targets[..., None], -1))
        return fn

    g = jax.jit(jax.grad(loss(lambda p: model.apply(p, state, idx)[0])))(params)
    g_ref = jax.jit(jax.grad(loss(lambda p: nanogpt_forward(p, idx, H, bias, tied))))(params)
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(g)[0], jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=jax.tree_util.keystr(path))


def test_parameter_count_and_nanogpt_init():
    d, layers = 32, 3
    model = gpt(V, CTX, layers, 4, d)
    params, state = model.init(jax.random.key(0), jnp.zeros((1, CTX), jnp.int32))
    assert isinstance(model, GPT) and isinstance(model, nn.Module) and state == {}
    # nanoGPT: wte + wpe + L (ln_1, c_attn, c_proj, ln_2, c_fc, c_proj) + ln_f
    assert nn.count_params(params) == V * d + CTX * d + layers * (12 * d * d + 13 * d) + 2 * d
    no_bias, _ = jax.eval_shape(gpt(V, CTX, layers, 4, d, use_bias=False, tie_embeddings=False).init,
                                jax.random.key(0), jnp.zeros((1, CTX), jnp.int32))
    assert nn.count_params(no_bias) == V * d + CTX * d + layers * (12 * d * d + 2 * d) + d + d * V
    blocks = params["blocks"]
    qkv = np.concatenate([np.ravel(blocks[k]["attention"]["qkv"]["kernel"]) for k in blocks])
    resid = np.concatenate([np.ravel(blocks[k][a][b]["kernel"]) for k in blocks
                            for a, b in (("attention", "out"), ("mlp", "output"))])
    emb = np.ravel(params["token_embedding"]["embedding"])
    assert abs(qkv.std() / 0.02 - 1) < 0.05 and abs(qkv.mean()) < 0.002
    assert abs(resid.std() / (0.02 / math.sqrt(2 * layers)) - 1) < 0.05
    assert abs(emb.std() / 0.02 - 1) < 0.15
    np.testing.assert_array_equal(blocks["0"]["attention"]["qkv"]["bias"], 0)
    np.testing.assert_array_equal(blocks["0"]["norm1"]["scale"], 1)


@pytest.mark.parametrize("kv_heads", [None, 1])
def test_cache_gives_the_full_pass_at_every_position(kv_heads, x64, rng):
    model = gpt(V, CTX, L, H, D, num_kv_heads=kv_heads, dtype=jnp.float64)
    idx = tokens_of(rng, 2, 7)
    params, state = random_params(model, idx)
    full, _ = jax.jit(model.apply)(params, state, idx)
    cache = model.init_cache(2)
    assert cache["layers"]["0"]["key"].shape == (2, CTX, kv_heads or H, D // H)
    assert cache["layers"]["0"]["key"].dtype == jnp.float64
    logits, cache = model.prefill(params, cache, idx[:, :3])
    got = [logits]
    logits, cache = model.prefill(params, cache, idx[:, 3:5])              # a second chunk
    got.append(logits)
    for t in (5, 6):
        logits, cache = model.decode_step(params, cache, idx[:, t])
        got.append(logits[:, None])
    np.testing.assert_array_equal(cache["length"], [7, 7])
    np.testing.assert_allclose(jnp.concatenate(got, axis=1), full, rtol=1e-12, atol=1e-12)


def test_cache_in_float32_agrees_to_rounding(rng):
    model = gpt(V, CTX, L, H, D)
    idx = tokens_of(rng, 2, 6)
    params, state = random_params(model, idx)
    full, _ = jax.jit(model.apply)(params, state, idx)
    logits, cache = model.prefill(params, model.init_cache(2), idx[:, :2])
    got = [logits]
    for t in range(2, 6):
        logits, cache = model.decode_step(params, cache, idx[:, t])
        got.append(logits[:, None])
    np.testing.assert_allclose(jnp.concatenate(got, axis=1), full, rtol=1e-5, atol=1e-5)


def test_right_padded_prompts_of_different_lengths(x64, rng):
    """Three prompts of 5, 2 and 3 tokens, right padded to 5 with junk ids, then three
    decode steps: every sequence's logits are those of its own full pass, unpadded."""
    model = gpt(V, CTX, L, H, D, dtype=jnp.float64)
    seqs = [np.asarray(tokens_of(rng, 1, n))[0] for n in (8, 5, 6)]
    lengths = np.array([5, 2, 3])
    prompt = np.array(tokens_of(rng, 3, 5))                        # junk in the padding
    for b, s in enumerate(seqs):
        prompt[b, :lengths[b]] = s[:lengths[b]]
    params, state = random_params(model, jnp.asarray(prompt))
    logits, cache = model.prefill(params, model.init_cache(3), jnp.asarray(prompt), jnp.asarray(lengths))
    got = [[logits[b, :lengths[b]]] for b in range(3)]
    for step in range(3):
        nxt = jnp.asarray([s[n + step] for s, n in zip(seqs, lengths)], jnp.int32)
        logits, cache = model.decode_step(params, cache, nxt)
        for b in range(3):
            got[b].append(logits[b][None])
    np.testing.assert_array_equal(cache["length"], lengths + 3)
    for b, s in enumerate(seqs):
        n = lengths[b] + 3
        window = np.zeros((1, CTX), np.int32)
        window[0, :n] = s[:n]
        want = nanogpt_forward(params, window, H)[0, :n]           # causal: the tail cannot matter
        np.testing.assert_allclose(jnp.concatenate(got[b], axis=0), want, rtol=1e-12, atol=1e-12)


def greedy_by_full_passes(params, seq, steps):
    seq = list(seq)
    for _ in range(steps):
        seq.append(int(jnp.argmax(next_token_logits(params, seq))))
    return seq[-steps:]


def test_greedy_generation_matches_a_loop_of_full_passes(x64, rng):
    model = gpt(V, CTX, L, H, D, dtype=jnp.float64)
    prompt = np.asarray(tokens_of(rng, 2, 3))
    lengths = np.array([3, 1])
    params, state = random_params(model, jnp.asarray(prompt))
    out = model.generate(params, jnp.asarray(prompt), jax.random.key(0), steps=5, temperature=0.0,
                         lengths=jnp.asarray(lengths))
    assert out.shape == (2, 5) and out.dtype == jnp.int32
    for b in range(2):
        assert out[b].tolist() == greedy_by_full_passes(params, prompt[b, :lengths[b]], 5)
    # the function form, and top_k=1 sampling is greedy too
    same = generate(model, params, state, jnp.asarray(prompt[:1]), 5, key=jax.random.key(3),
                    temperature=1.0, top_k=1)
    assert same[0].tolist() == out[0].tolist()


def test_sampling_is_reproducible_and_stays_in_the_top_k(x64, rng):
    model = gpt(V, CTX, L, H, D, dtype=jnp.float64)
    prompt = tokens_of(rng, 1, 2)
    params, _ = random_params(model, prompt)
    a = model.generate(params, prompt, jax.random.key(5), steps=6, top_k=3)
    b = model.generate(params, prompt, jax.random.key(5), steps=6, top_k=3)
    np.testing.assert_array_equal(a, b)
    seq = np.asarray(prompt)[0].tolist()
    for tok in np.asarray(a)[0]:
        assert tok in np.argsort(np.asarray(next_token_logits(params, seq)))[-3:]
        seq.append(int(tok))


def test_train_step_jit_vmap_and_dropout(rng):
    from fnnet import losses, optim, train
    model = gpt(V, CTX, 1, H, D, dropout_rate=0.1)
    x, y = tokens_of(rng, 2, CTX), tokens_of(rng, 2, CTX)
    params, state = random_params(model, x)
    step = train.make_train_step(model, losses.softmax_cross_entropy_with_integer_labels, optim.sgd(0.1))
    p1, _, _, loss = step(params, state, optim.sgd(0.1).init(params), x, y, jax.random.key(1))
    assert np.isfinite(loss) and np.isfinite(jax.tree.leaves(p1)[0]).all()
    with pytest.raises(ValueError, match="gpt: train=True needs a random key"):
        model.apply(params, state, x, train=True)
    # an ensemble of two members in one call, each its own model
    members = [random_params(model, x, seed)[0] for seed in (1, 2)]
    ens = jax.tree.map(lambda *a: jnp.stack(a), *members)
    out = jax.jit(jax.vmap(lambda p: model.apply(p, state, x)[0]))(ens)
    for i, p in enumerate(members):
        np.testing.assert_allclose(out[i], nanogpt_forward(p, x, H), rtol=2e-5, atol=2e-5)


def test_errors_before_compute(rng):
    model = gpt(V, CTX, L, H, D)
    x = tokens_of(rng, 2, 4)
    params, state = model.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="gpt: a sequence of 9 tokens is longer than the context length 8"):
        model.apply(params, state, tokens_of(rng, 2, 9))
    with pytest.raises(ValueError, match="gpt: expected int token ids of shape \\(B, T\\)"):
        model.apply(params, state, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="max_len=9 exceeds the context length 8"):
        model.init_cache(2, 9)
    with pytest.raises(ValueError, match="a prompt of 4 tokens and steps=6 need 9 positions, more than the context length 8"):
        model.generate(params, x, jax.random.key(0), steps=6)
    with pytest.raises(ValueError, match="gpt.prefill: 4 new tokens do not fit a cache of 3 positions"):
        model.prefill(params, model.init_cache(2, 3), x)
    other = gpt(V, CTX, L, 4, D)            # another model: 4 heads of size 2
    with pytest.raises(ValueError, match=r"cache layer 0 key of shape \[2, L <= 8, 2, 4\].*got \(2, 8, 4, 2\)"):
        model.decode_step(params, other.init_cache(2), x[:, 0])
    with pytest.raises(ValueError, match="cache from init_cache with 2 layers"):
        model.decode_step(params, gpt(V, CTX, 3, H, D).init_cache(2), x[:, 0])
    with pytest.raises(ValueError, match=r"expected cache layer 0 key of shape \[2,"):
        model.decode_step(params, model.init_cache(3), x[:, 0])          # another batch size
    with pytest.raises(ValueError, match="embed_dim=8 is not a multiple of num_heads=3"):
        gpt(V, CTX, L, 3, D)


def test_a_full_cache_gives_nan_not_wrong_logits(rng):
    model = gpt(V, CTX, L, H, D)
    x = tokens_of(rng, 2, 3)
    params, _ = model.init(jax.random.key(0), x)
    logits, cache = model.prefill(params, model.init_cache(2, 4), x, jnp.array([3, 2]))
    logits, cache = model.decode_step(params, cache, x[:, 0])               # lengths 4 and 3: full, room
    assert np.isfinite(logits).all()
    logits, cache = model.decode_step(params, cache, x[:, 0])               # sequence 0 overflows
    assert np.isnan(logits[0]).all() and np.isfinite(logits[1]).all()
