"""The soft-attention captioner against a NumPy loop (CNN and decoder), a float64
gradient check of the whole model, teacher forcing against step-by-step decoding, the
decoders' shapes, and bad input."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck
from fnnet.losses import sequence_cross_entropy
from fnnet.models.captioning import show_attend_tell
from fnnet.models.seq2seq import decoder_inputs
from fnnet.text.beam_search import beam_search, greedy_decode

V, B, T, IMG = 6, 2, 3, (4, 4, 2)
CHANNELS = (3,)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_conv_same(x, kernel, bias, dilation=1):
    """3x3 SAME convolution of one image (H, W, Cin) by nested loops over outputs and taps."""
    h, w, _ = x.shape
    out = np.zeros((h, w, kernel.shape[-1]))
    for i in range(h):
        for j in range(w):
            for o in range(kernel.shape[-1]):
                out[i, j, o] = bias[o]
                for di in range(3):
                    for dj in range(3):
                        r, c = i + (di - 1) * dilation, j + (dj - 1) * dilation
                        if 0 <= r < h and 0 <= c < w:
                            out[i, j, o] += x[r, c] @ kernel[di, dj, :, o]
    return out


def np_pool(x):
    h, w, c = x.shape
    return x.reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))


def np_forward(p, images, inputs, coordinates=True, gate=True, context_layers=0):
    """Per image: the CNN, then the attention decoder word by word. Returns logits, weights."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), p)
    logits = np.zeros(inputs.shape + (V,))
    grid = (IMG[0] // 2 ** len(CHANNELS), IMG[1] // 2 ** len(CHANNELS))
    weights = np.zeros(inputs.shape + (grid[0] * grid[1],))
    for b in range(images.shape[0]):
        f = np.asarray(images[b], np.float64)
        for i in range(len(CHANNELS)):
            conv = p["encoder"][str(3 * i)]
            f = np_pool(np.maximum(np_conv_same(f, conv["kernel"], conv["bias"]), 0))
        for j in range(context_layers):
            conv = p["encoder"][str(3 * len(CHANNELS) + 2 * j)]
            f = np.maximum(np_conv_same(f, conv["kernel"], conv["bias"], dilation=2 ** j), 0)
        ann = []
        for r in range(grid[0]):
            for c in range(grid[1]):
                extra = [-1 + 2 * r / (grid[0] - 1), -1 + 2 * c / (grid[1] - 1)] if coordinates else []
                ann.append(np.concatenate([f[r, c], extra]))
        ann = np.array(ann)
        mean = ann.mean(0)
        h = np.tanh(mean @ p["init_h"]["kernel"] + p["init_h"]["bias"])
        c = np.tanh(mean @ p["init_c"]["kernel"] + p["init_c"]["bias"])
        a = p["attention"]
        for t in range(inputs.shape[1]):
            e = np.array([np.tanh(h @ a["w_query"] + ann[i] @ a["w_key"]) @ a["v"] for i in range(len(ann))])
            alpha = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
            z = alpha @ ann
            if gate:
                z = z * sigmoid(h @ p["gate"]["kernel"] + p["gate"]["bias"])
            emb = p["embedding"][inputs[b, t]]
            d = p["decoder"]
            gates = np.concatenate([emb, z]) @ d["w_ih"] + d["b_ih"] + h @ d["w_hh"] + d["b_hh"]
            gi, gf, gg, go = np.split(gates, 4)
            c = sigmoid(gf) * c + sigmoid(gi) * np.tanh(gg)
            h = sigmoid(go) * np.tanh(c)
            o = p["output"]
            logits[b, t] = (emb + h @ o["w_h"] + z @ o["w_z"]) @ o["kernel"] + o["bias"]
            weights[b, t] = alpha
    return logits, weights


def make_model(**kw):
    return show_attend_tell(V, IMG, start_token=1, channels=CHANNELS, embed_dim=3, hidden=4, attention_dim=3, **kw)


@functools.lru_cache(maxsize=None)
def initial_params(coordinates=True, gate=True, context_layers=0):
    model = make_model(coordinates=coordinates, gate=gate, context_layers=context_layers)
    """Shapes by eval_shape (compiling an init costs seconds), Glorot-scaled normal values, zero biases."""
    params, state = jax.eval_shape(model.module.init, jax.random.key(0),
                                   (jax.ShapeDtypeStruct((B,) + IMG, jnp.float32), jax.ShapeDtypeStruct((B, T), jnp.int32)))
    assert state == {}
    rng = np.random.default_rng(10)
    return jax.tree.map(lambda s: rng.normal(size=s.shape) / np.sqrt(max(s.shape[0], 1)) if len(s.shape) > 1
                        else np.zeros(s.shape), params)


def setup(dtype=jnp.float32, seed=0, **kw):
    model = make_model(**kw)
    rng = np.random.default_rng(seed)
    images = rng.uniform(size=(B,) + IMG).astype(np.float32)
    targets = rng.integers(2, V, (B, T)).astype(np.int32)
    inputs = np.asarray(decoder_inputs(targets, 1))
    # non-zero biases and fresh weights per seed, so the reference checks every term
    params = jax.tree.map(lambda a: jnp.asarray(a + 0.3 * rng.normal(size=a.shape), dtype), initial_params(**kw))
    return model, params, jnp.asarray(images, dtype), inputs, targets


def test_init_shapes():
    p = initial_params()
    shapes = jax.tree.map(np.shape, p)
    assert shapes["encoder"] == {"0": {"kernel": (3, 3, 2, 3), "bias": (3,)}}
    assert shapes["attention"] == {"w_query": (4, 3), "w_key": (5, 3), "v": (3,)}   # D = 3 channels + 2
    assert shapes["decoder"]["w_ih"] == (3 + 5, 16) and shapes["gate"]["kernel"] == (4, 1)
    assert shapes["output"] == {"w_h": (4, 3), "w_z": (5, 3), "kernel": (3, V), "bias": (V,)}
    assert "gate" not in initial_params(gate=False)


@pytest.mark.parametrize("kw", [{}, {"coordinates": False, "gate": False, "context_layers": 2}])
def test_forward_equals_numpy_loop(x64, kw):
    model, params, images, inputs, _ = setup(jnp.float64, **kw)
    logits, weights = jax.jit(model.teacher_forced)(params, images, inputs)
    ref_logits, ref_weights = np_forward(params, np.asarray(images), inputs, **kw)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weights, ref_weights, rtol=1e-10, atol=1e-12)
    if not kw:   # the Module on the (images, inputs) pair gives the same logits
        out, _ = jax.jit(model.module.apply)(params, {}, (images, inputs))
        np.testing.assert_allclose(out, ref_logits, rtol=1e-10, atol=1e-12)


def test_gradient_check_float64(x64):
    """Central differences over every parameter (CNN, attention, gate, LSTM, deep output)."""
    model, params, images, inputs, targets = setup(jnp.float64, seed=1)

    @jax.jit
    def loss(p):
        logits, weights = model.teacher_forced(p, images, inputs)
        doubly_stochastic = jnp.sum((1.0 - jnp.sum(weights, axis=1)) ** 2)
        return sequence_cross_entropy(logits, jnp.asarray(targets)) + 0.1 * doubly_stochastic

    gradcheck.check_gradients(loss, params, tol=1e-7)


def test_teacher_forcing_equals_step_by_step_and_decoders():
    model, params, images, inputs, _ = setup(seed=3)
    teacher_forced = jax.jit(model.teacher_forced)
    logits, weights = teacher_forced(params, images, inputs)
    step, carry, start = model.decoder(params, images)
    np.testing.assert_array_equal(start, inputs[:, 0])
    decode_step = jax.jit(model.decode_step)
    for t in range(T):
        carry, logits_t, weights_t = decode_step(params, carry, jnp.asarray(inputs[:, t]))
        np.testing.assert_allclose(logits[:, t], logits_t, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(weights[:, t], weights_t, rtol=1e-5, atol=1e-6)

    @jax.jit
    def decode(p, x):
        step, carry, start = model.decoder(p, x)
        return (greedy_decode(step, carry, start, max_len=T, end_token=0),
                beam_search(step, carry, start, beam_width=3, max_len=T, end_token=0))

    g, b = decode(params, images)
    assert g.sequences.shape == (B, T) and b.sequences.shape == (B, 3, T) and b.scores.shape == (B, 3)
    # greedy fed back through teacher forcing reproduces its own argmaxes (up to its end)
    tf_logits, _ = teacher_forced(params, images, decoder_inputs(g.sequences, 1))
    live = np.arange(T)[None, :] < np.asarray(g.lengths)[:, None]
    np.testing.assert_array_equal(np.where(live, jnp.argmax(tf_logits, -1), 0), np.where(live, g.sequences, 0))
    assert np.all(np.asarray(b.log_probs[:, 0]) >= np.asarray(g.log_probs) - 1e-5)


def test_bad_input_raises():
    model, params, images, inputs, _ = setup()
    with pytest.raises(ValueError, match="images and decoder inputs must have one batch size, got 2 and 1"):
        model.teacher_forced(params, images, inputs[:1])
    with pytest.raises(ValueError, match=r"expected float images \(B, 4, 4, 2\), got float32 \(2, 4, 4, 3\)"):
        model.teacher_forced(params, jnp.zeros((2, 4, 4, 3)), inputs)
    with pytest.raises(ValueError, match=r"expected x = \(images, decoder inputs\), got ArrayImpl"):
        model.module.apply(params, {}, jnp.zeros((B, 32)))
    with pytest.raises(ValueError, match=r"expected x = \(images \(B, 4, 4, 2\), decoder inputs \(B, T\)\), "
                                         r"got shapes \(2, 4, 4, 2\) and \(1, 3\)"):
        model.module.init(jax.random.key(0), (images, inputs[:1]))
    with pytest.raises(ValueError, match=r"start_token must be an int in \[0, 6\), got 6"):
        show_attend_tell(V, IMG, start_token=6)
    with pytest.raises(ValueError, match=r"divisible by 2\^3 = 8 .* got \(12, 12\)"):
        show_attend_tell(V, (12, 12, 3), start_token=0, channels=(4, 4, 4))
    with pytest.raises(ValueError, match=r"expected decoder inputs as integer ids \(B, T\), got float32"):
        model.module.apply(params, {}, (images, inputs.astype(np.float32)))
