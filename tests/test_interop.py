"""fnnet.interop: PyTorch state_dicts run in fnnet and give PyTorch's outputs.

Recurrent layers (multi-layer, bidirectional, packed variable-length sequences) are
compared with torch.nn.LSTM / GRU / RNN; Linear, Conv and BatchNorm with torch too.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import functional as F
from fnnet import interop, nn

try:
    import torch
except ImportError:  # each test then skips (or fails when references are required)
    torch = None


@pytest.fixture(autouse=True)
def _torch_reference():
    pytest.importorskip("torch")


N, T, FIN, H = 3, 5, 4, 6
RTOL = 5e-6  # float32 vs PyTorch, against max|torch output|; the measured worst is 3e-7


def assert_close_to_scale(actual, desired, rtol=RTOL):
    """``max|actual - desired| <= rtol * max|desired|``, the error against the output's scale."""
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    err, scale = np.max(np.abs(actual - desired)), np.max(np.abs(desired))
    assert err <= rtol * scale, f"max|a - b| = {err:.3g} > {rtol:g} * max|b| = {rtol * scale:.3g} (ratio {err / scale:.3g})"


def seeded(module):
    torch.manual_seed(0)
    return module


@pytest.fixture
def xs(rng):
    return rng.normal(size=(N, T, FIN)).astype(np.float32)


@pytest.mark.parametrize("kind,layers,bidir", [
    ("lstm", 2, True), ("lstm", 1, False), ("gru", 2, True), ("gru", 1, False),
    ("rnn_tanh", 2, True), ("rnn_relu", 1, False)])
def test_recurrent_layers_match_torch(kind, layers, bidir, xs):
    torch.manual_seed(0)
    if kind == "lstm":
        tm = torch.nn.LSTM(FIN, H, num_layers=layers, bidirectional=bidir, batch_first=True)
        fm = nn.lstm(H, num_layers=layers, bidirectional=bidir, return_carry=True)
        params = interop.lstm(tm.state_dict())
    elif kind == "gru":
        tm = torch.nn.GRU(FIN, H, num_layers=layers, bidirectional=bidir, batch_first=True)
        fm = nn.gru(H, num_layers=layers, bidirectional=bidir, return_carry=True)
        params = interop.gru(tm.state_dict())
    else:
        act = kind.split("_")[1]
        tm = torch.nn.RNN(FIN, H, num_layers=layers, bidirectional=bidir, nonlinearity=act, batch_first=True)
        fm = nn.simple_rnn(H, activation=act, num_layers=layers, bidirectional=bidir, return_carry=True)
        params = interop.rnn(tm.state_dict())
    ref_params, _ = fm.init(jax.random.key(0), xs)
    assert jax.tree.structure(params) == jax.tree.structure(ref_params)
    with torch.no_grad():
        t_out, t_state = tm(torch.from_numpy(xs))
    (ys, carry), _ = fm.apply(params, {}, xs)
    assert_close_to_scale(ys, t_out.numpy())
    # final hidden state: torch's h_n is (layers * directions, N, H)
    h_n = (t_state[0] if kind == "lstm" else t_state).numpy()
    per_layer = carry if layers > 1 else (carry,)
    got = []
    for c in per_layer:
        for d in (c if bidir else (c,)):
            got.append(d[0] if kind == "lstm" else d)
    assert_close_to_scale(np.stack(got), h_n)


def test_packed_sequences_match_torch_lengths(xs):
    tm = seeded(torch.nn.GRU(FIN, H, num_layers=2, bidirectional=True, batch_first=True))
    lengths = np.array([5, 2, 3])
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(xs), torch.from_numpy(lengths),
                                                     batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, h_n = tm(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    fm = nn.gru(H, num_layers=2, bidirectional=True, return_carry=True)
    (y, carry), _ = fm.apply(interop.gru(tm.state_dict()), {}, {"inputs": xs, "lengths": lengths})
    assert_close_to_scale(y["inputs"], out.numpy())
    assert_close_to_scale(np.stack([carry[1][0], carry[1][1]]), h_n.numpy()[2:])


def test_lstm_gradients_match_torch(xs):
    tm = seeded(torch.nn.LSTM(FIN, H, batch_first=True))
    params = interop.lstm({k: v.numpy() for k, v in tm.state_dict().items()})   # numpy values work too
    xt = torch.from_numpy(xs)
    (tm(xt)[0] ** 2).sum().backward()
    g = jax.grad(lambda p: jnp.sum(F.lstm_sequence(p, (jnp.zeros((N, H)),) * 2, xs)[1] ** 2))(params)
    assert_close_to_scale(g["w_hh"], tm.weight_hh_l0.grad.numpy().T)
    assert_close_to_scale(g["w_ih"], tm.weight_ih_l0.grad.numpy().T)
    assert_close_to_scale(g["b_hh"], tm.bias_hh_l0.grad.numpy())


def test_linear_conv_batchnorm_sequential_match_torch(rng):
    net = seeded(torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, groups=2), torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 3, 5)))
    with torch.no_grad():                      # non-trivial running statistics
        net[1].running_mean.normal_()
        net[1].running_var.uniform_(0.5, 2.0)
        net[1].weight.normal_()
    net.eval()
    x = rng.normal(size=(2, 3, 5, 5)).astype(np.float32)              # NCHW for torch
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    params, state = interop.sequential(net.state_dict(), 6)
    assert params["2"] == {} and set(state["1"]) == {"mean", "var"}
    h = F.conv(jnp.asarray(x.transpose(0, 2, 3, 1)), params["0"]["kernel"], params["0"]["bias"], padding=1)
    p, s = params["1"], state["1"]
    h = (h - s["mean"].reshape(1, 1, 1, 4)) / jnp.sqrt(s["var"].reshape(1, 1, 1, 4) + 1e-5)
    h = h * p["scale"].reshape(1, 1, 1, 4) + p["bias"].reshape(1, 1, 1, 4)
    h = F.conv(jax.nn.relu(h), params["3"]["kernel"], params["3"]["bias"], groups=2)
    h = jnp.transpose(h, (0, 3, 1, 2)).reshape(2, -1)                 # torch flattens NCHW
    y = h @ params["5"]["kernel"] + params["5"]["bias"].reshape(1, 5)
    assert_close_to_scale(y, want)
    conv1d = seeded(torch.nn.Conv1d(3, 2, 2))
    k = interop.conv(conv1d.state_dict())["kernel"]
    assert k.shape == (2, 3, 2)
    np.testing.assert_allclose(k[1, 2, 0], conv1d.weight[0, 2, 1].item(), rtol=1e-6)


def test_errors_say_what_is_missing():
    with pytest.raises(KeyError, match="no entry enc.weight_ih_l0"):
        interop.lstm({"enc.weight": np.zeros((2, 2))}, "enc.")
    tm = seeded(torch.nn.GRU(2, 3))
    with pytest.raises(ValueError, match="expected a lstm"):
        interop.lstm(tm.state_dict())


# ---------------------------------------------------------------------------
# LayerNorm, MultiheadAttention, TransformerEncoderLayer/DecoderLayer (float32; the
# float64 comparisons with masks are in tests/nn/test_attention_modules.py and
# tests/nn/test_transformer.py)

E_ATT, HEADS = 8, 2


def test_layer_norm_matches_torch(rng):
    tm = seeded(torch.nn.LayerNorm(E_ATT))
    with torch.no_grad():
        tm.weight.normal_()
        tm.bias.normal_()
    x = rng.normal(size=(2, 3, E_ATT)).astype(np.float32)
    params = interop.layer_norm(tm.state_dict())
    y, _ = nn.layer_norm().apply(params, {}, jnp.asarray(x))
    with torch.no_grad():
        assert_close_to_scale(y, tm(torch.from_numpy(x)).numpy())
    assert interop.layer_norm(seeded(torch.nn.LayerNorm(4, elementwise_affine=False)).state_dict()) == {}


@pytest.mark.parametrize("fused", [False, True])
def test_multi_head_attention_matches_torch(fused, rng):
    from fnnet.nn.attention import multi_head_attention
    tm = seeded(torch.nn.MultiheadAttention(E_ATT, HEADS, batch_first=True)).eval()
    with torch.no_grad():
        tm.in_proj_bias.normal_()
    x = rng.normal(size=(2, 4, E_ATT)).astype(np.float32)
    params = interop.multi_head_attention(tm.state_dict(), fused=fused)
    assert set(params) == ({"qkv", "out"} if fused else {"query", "key", "value", "out"})
    y, _ = multi_head_attention(HEADS, fused_qkv=fused).apply(params, {}, jnp.asarray(x))
    xt = torch.from_numpy(x)
    with torch.no_grad():
        assert_close_to_scale(y, tm(xt, xt, xt, need_weights=False)[0].numpy())


def test_transformer_layers_match_torch(rng):
    from fnnet.nn.transformer import transformer_decoder_block, transformer_encoder_block
    enc = seeded(torch.nn.TransformerEncoderLayer(E_ATT, HEADS, 16, dropout=0.0, batch_first=True)).eval()
    dec = seeded(torch.nn.TransformerDecoderLayer(E_ATT, HEADS, 16, dropout=0.0, batch_first=True)).eval()
    x = rng.normal(size=(2, 4, E_ATT)).astype(np.float32)
    memory = rng.normal(size=(2, 3, E_ATT)).astype(np.float32)
    xt, mt = torch.from_numpy(x), torch.from_numpy(memory)
    with torch.no_grad():
        want_enc = enc(xt).numpy()
        want_dec = dec(xt, mt, tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(4),
                       tgt_is_causal=True).numpy()
    # PyTorch's defaults: post-LN, ReLU
    y, _ = transformer_encoder_block(HEADS, 16, norm_first=False, activation="relu").apply(
        interop.transformer_encoder_layer(enc.state_dict()), {}, jnp.asarray(x))
    assert_close_to_scale(y, want_enc)
    out, _ = transformer_decoder_block(HEADS, 16, norm_first=False, activation="relu").apply(
        interop.transformer_decoder_layer(dec.state_dict()), {},
        {"inputs": jnp.asarray(x), "context": jnp.asarray(memory)})
    assert_close_to_scale(out["inputs"], want_dec)


def test_attention_layers_that_have_no_twin_are_refused():
    tm = seeded(torch.nn.MultiheadAttention(E_ATT, HEADS, add_bias_kv=True))
    with pytest.raises(ValueError, match="add_bias_kv=True .* has no fnnet twin"):
        interop.multi_head_attention(tm.state_dict())
    with pytest.raises(KeyError, match="multi_head_attention: state_dict has no entry 'out_proj.weight'"):
        interop.multi_head_attention({"in_proj_weight": np.zeros((3 * E_ATT, E_ATT), np.float32)})
