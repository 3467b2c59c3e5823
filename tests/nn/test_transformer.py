"""Transformer blocks against torch.nn.TransformerEncoderLayer / TransformerDecoderLayer
with the same weights (float64, eval mode, dropout 0, both norm_first settings, key
padding and causal masks), gradients, transforms, a cache through a block, errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck, interop, nn
from fnnet.nn.attention import init_cache
from fnnet.nn.transformer import transformer_decoder_block, transformer_encoder_block

B, T, S, E, H, FF = 3, 5, 4, 8, 2, 16


def randomise_torch(module, torch):
    """Random biases and layer-norm affines, so that every parameter is checked."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "bias" in name or "norm" in name:
                p.normal_()
    return module.eval()


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_block_matches_torch(norm_first, activation, x64, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = randomise_torch(torch.nn.TransformerEncoderLayer(
        E, H, FF, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first,
        dtype=torch.float64), torch)
    x = rng.normal(size=(B, T, E))
    lengths = np.array([5, 3, 1])
    kpm = torch.tensor(np.arange(T)[None, :] >= lengths[:, None])
    causal = torch.tensor(np.triu(np.ones((T, T), bool), 1))
    with torch.no_grad():
        want_causal = tm(torch.tensor(x), src_mask=causal, src_key_padding_mask=kpm).numpy()
        want_pad = tm(torch.tensor(x), src_key_padding_mask=kpm).numpy()
        want_plain = tm(torch.tensor(x)).numpy()
    params = interop.transformer_encoder_layer(tm.state_dict())
    inputs = {"inputs": jnp.asarray(x), "lengths": jnp.asarray(lengths)}
    for causal_flag, want in ((True, want_causal), (False, want_pad)):
        block = transformer_encoder_block(H, FF, norm_first=norm_first, activation=activation,
                                          causal=causal_flag, dtype=jnp.float64)
        out, _ = block.apply(params, {}, inputs)
        valid = np.arange(T)[None, :] < lengths[:, None]      # torch's outputs at padded rows aside
        np.testing.assert_allclose(np.asarray(out["inputs"])[valid], want[valid], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(out["lengths"], lengths)
    block = transformer_encoder_block(H, FF, norm_first=norm_first, activation=activation, fused_qkv=True,
                                      dtype=jnp.float64)
    y, _ = block.apply(interop.transformer_encoder_layer(tm.state_dict(), fused=True), {}, jnp.asarray(x))
    np.testing.assert_allclose(y, want_plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("norm_first", [True, False])
def test_decoder_block_matches_torch(norm_first, x64, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    tm = randomise_torch(torch.nn.TransformerDecoderLayer(
        E, H, FF, dropout=0.0, batch_first=True, norm_first=norm_first, dtype=torch.float64), torch)
    tgt, memory = rng.normal(size=(B, T, E)), rng.normal(size=(B, S, E))
    lengths, mem_lengths = np.array([5, 2, 4]), np.array([4, 1, 3])
    with torch.no_grad():
        want = tm(torch.tensor(tgt), torch.tensor(memory),
                  tgt_mask=torch.tensor(np.triu(np.ones((T, T), bool), 1)),
                  tgt_key_padding_mask=torch.tensor(np.arange(T)[None] >= lengths[:, None]),
                  memory_key_padding_mask=torch.tensor(np.arange(S)[None] >= mem_lengths[:, None])).numpy()
    block = transformer_decoder_block(H, FF, norm_first=norm_first, activation="relu", dtype=jnp.float64)
    params = interop.transformer_decoder_layer(tm.state_dict())
    out, _ = block.apply(params, {}, {"inputs": jnp.asarray(tgt), "context": jnp.asarray(memory),
                                      "lengths": jnp.asarray(lengths),
                                      "context_lengths": jnp.asarray(mem_lengths)})
    np.testing.assert_allclose(out["inputs"], want, rtol=1e-12, atol=1e-12)
    # the memory's padding as an explicit mask (True = may attend) gives the same
    out, _ = block.apply(params, {}, {
        "inputs": jnp.asarray(tgt), "context": jnp.asarray(memory), "lengths": jnp.asarray(lengths),
        "context_mask": jnp.asarray(np.arange(S)[None] < mem_lengths[:, None])[:, None, None, :]})
    np.testing.assert_allclose(out["inputs"], want, rtol=1e-12, atol=1e-12)


def test_block_params_and_init(rng):
    block = transformer_decoder_block(H, FF, use_bias=False)
    params, state = block.init(jax.random.key(0), {"inputs": jnp.ones((1, T, E)), "context": jnp.ones((1, S, 6))})
    assert state == {}
    assert set(params) == {"self_attention", "norm1", "cross_attention", "norm2", "mlp", "norm3"}
    assert params["cross_attention"]["key"]["kernel"].shape == (6, E)  # a context of another width
    assert params["mlp"]["hidden"]["kernel"].shape == (E, FF) and "bias" not in params["mlp"]["hidden"]
    assert set(params["norm1"]) == {"scale"}
    fused = transformer_decoder_block(H, FF, fused_qkv=True)
    params, _ = fused.init(jax.random.key(0), {"inputs": jnp.ones((1, T, E)), "context": jnp.ones((1, S, E))})
    assert params["self_attention"]["qkv"]["kernel"].shape == (E, 3 * E)
    assert params["cross_attention"]["qkv"]["kernel"].shape == (E, 3 * E)
    with pytest.raises(ValueError, match="cross_attention: fused_qkv needs inputs and context of one width, got 8 and 6"):
        fused.init(jax.random.key(0), {"inputs": jnp.ones((1, T, E)), "context": jnp.ones((1, S, 6))})


def test_serial_stack_carries_lengths_and_matches_blockwise(x64, rng):
    """Two blocks in ``serial`` with a dict input equal the two blocks applied in turn by
    hand (each with the same lengths); the second block's mask must arrive."""
    block = transformer_encoder_block(H, FF, dtype=jnp.float64)
    stack = nn.serial(block, block)
    x = jnp.asarray(rng.normal(size=(2, 4, E)))
    lengths = jnp.array([4, 2])
    params, state = stack.init(jax.random.key(0), x)
    out, _ = stack.apply(params, state, {"inputs": x, "lengths": lengths})
    h = x
    for i in ("0", "1"):
        h = block.apply(params[i], {}, {"inputs": h, "lengths": lengths})[0]["inputs"]
    np.testing.assert_allclose(out["inputs"], h, rtol=1e-13)
    assert set(out) == {"inputs", "lengths"}
    unmasked = stack.apply(params, state, x)[0]                   # the mask did change something
    assert not np.allclose(np.asarray(unmasked)[1, :2], np.asarray(out["inputs"])[1, :2])


def test_encoder_block_gradients(x64, rng):
    block = transformer_encoder_block(H, FF, causal=True, fused_qkv=True, dtype=jnp.float64)
    x = jnp.asarray(rng.normal(size=(2, 3, E)))
    params, _ = block.init(jax.random.key(0), x)
    weights = jnp.asarray(rng.normal(size=(2, 3, E)))

    def loss(tree):
        out, _ = block.apply(tree["params"], {}, {"inputs": tree["x"], "lengths": jnp.array([3, 2])})
        return jnp.sum(out["inputs"] * weights)

    gradcheck.check_gradients(jax.jit(loss), {"params": params, "x": x}, tol=1e-7)


def test_decoder_block_gradients(x64, rng):
    block = transformer_decoder_block(H, FF, norm_first=False, dtype=jnp.float64)
    x, ctx = jnp.asarray(rng.normal(size=(1, 3, E))), jnp.asarray(rng.normal(size=(1, 2, E)))
    params, _ = block.init(jax.random.key(0), {"inputs": x, "context": ctx})
    weights = jnp.asarray(rng.normal(size=(1, 3, E)))

    def loss(tree):
        out, _ = block.apply(tree["params"], {}, {"inputs": tree["x"], "context": tree["ctx"]})
        return jnp.sum(out["inputs"] * weights)

    gradcheck.check_gradients(jax.jit(loss), {"params": params, "x": x, "ctx": ctx}, tol=1e-7)


def test_jit_vmap_and_a_cache_through_a_block(x64, rng):
    block = transformer_encoder_block(H, FF, causal=True, rotary=True, num_kv_heads=1, dtype=jnp.float64)
    x = jnp.asarray(rng.normal(size=(2, 5, E)))
    params, _ = block.init(jax.random.key(0), x)
    full = jax.jit(lambda p, v: block.apply(p, {}, v)[0])(params, x)
    each = jax.jit(jax.vmap(lambda v: block.apply(params, {}, v)[0]))(x)       # unbatched inputs under vmap
    np.testing.assert_allclose(each, full, rtol=1e-12, atol=1e-12)
    cache, outs = init_cache(2, 5, 1, E // H, dtype=jnp.float64), []
    step = jax.jit(lambda c, v: block.apply(params, {}, {"inputs": v, "cache": c})[0])
    for a, b in ((0, 2), (2, 3), (3, 5)):
        out = step(cache, x[:, a:b])
        cache = out["cache"]
        outs.append(out["inputs"])
    np.testing.assert_allclose(jnp.concatenate(outs, axis=1), full, rtol=1e-12, atol=1e-12)


def test_dropout_and_errors(rng):
    x = jnp.asarray(rng.normal(size=(1, 3, E)), jnp.float32)
    block = transformer_encoder_block(H, FF, dropout_rate=0.1)
    params, _ = block.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="transformer_encoder_block: train=True needs a random key"):
        block.apply(params, {}, x, train=True)
    a, _ = block.apply(params, {}, x, key=jax.random.key(1), train=True)
    e, _ = block.apply(params, {}, x)
    assert a.shape == e.shape and not np.allclose(a, e)
    with pytest.raises(ValueError, match="expected activation 'gelu' or 'relu', got 'swish'"):
        transformer_encoder_block(H, FF, activation="swish")
    with pytest.raises(ValueError, match="transformer_decoder_block: expected a dict input with 'inputs' and 'context'"):
        transformer_decoder_block(H, FF).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"unknown input entries \['context'\]"):
        block.apply(params, {}, {"inputs": x, "context": x})
    with pytest.raises(ValueError, match="transformer_encoder_block/attention: a key-value cache serves causal"):
        block.apply(params, {}, {"inputs": x, "cache": init_cache(1, 4, H, 4)})
