"""The attention encoder-decoder against a NumPy loop (forward and gradients), float64
gradient checks, and teacher forcing against step-by-step decoding."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck
from fnnet.losses import sequence_cross_entropy
from fnnet.models.seq2seq import attention_seq2seq, decoder_inputs
from fnnet.text.beam_search import beam_search, greedy_decode

VS, VT, S, T, B = 7, 6, 5, 4, 3


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_lstm(p, h, c, x):
    z = x @ p["w_ih"] + p["b_ih"] + h @ p["w_hh"] + p["b_hh"]
    i, f, g, o = np.split(z, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def np_gru(p, h, x):
    xi, xh = x @ p["w_ih"] + p["b_ih"], h @ p["w_hh"] + p["b_hh"]
    r = sigmoid(xi[:, :h.shape[1]] + xh[:, :h.shape[1]])
    z = sigmoid(xi[:, h.shape[1]:2 * h.shape[1]] + xh[:, h.shape[1]:2 * h.shape[1]])
    n = np.tanh(xi[:, 2 * h.shape[1]:] + r * xh[:, 2 * h.shape[1]:])
    return (1 - z) * n + z * h


def np_cell(kind, p, state, x):
    if kind == "lstm":
        return np_lstm(p, *state, x)
    return np_gru(p, state, x)


def np_forward(params, source, inputs, lengths, kind="lstm"):
    """Per example, a loop over time: the bidirectional encoder over the first L source
    tokens, then the attention decoder (zero initial state). Returns logits, weights."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    logits = np.zeros(inputs.shape + (VT,))
    weights = np.zeros(inputs.shape + (S,))
    for b in range(source.shape[0]):
        L = lengths[b]
        emb = p["source_embedding"][source[b]]
        ann = np.zeros((S, 2 * p["encoder"]["forward"]["w_hh"].shape[0]))
        He = ann.shape[1] // 2
        for direction, order, lo in (("forward", range(L), 0), ("backward", range(L - 1, -1, -1), He)):
            state = (np.zeros((1, He)), np.zeros((1, He))) if kind == "lstm" else np.zeros((1, He))
            for s in order:
                state = np_cell(kind, p["encoder"][direction], state, emb[s][None])
                ann[s, lo:lo + He] = (state[0] if kind == "lstm" else state)[0]
        Hd = p["decoder"]["w_hh"].shape[0]
        state = (np.zeros((1, Hd)), np.zeros((1, Hd))) if kind == "lstm" else np.zeros((1, Hd))
        for t in range(inputs.shape[1]):
            h = state[0] if kind == "lstm" else state
            a = p["attention"]
            e = np.array([np.tanh(h[0] @ a["w_query"] + ann[s] @ a["w_key"]) @ a["v"] for s in range(L)])
            alpha = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
            ctx = alpha @ ann[:L]
            x = np.concatenate([p["target_embedding"][inputs[b, t]], ctx])[None]
            state = np_cell(kind, p["decoder"], state, x)
            h = state[0] if kind == "lstm" else state
            logits[b, t] = np.concatenate([h[0], ctx]) @ p["output"]["kernel"] + p["output"]["bias"]
            weights[b, t, :L] = alpha
    return logits, weights


def np_loss(params, source, inputs, targets, lengths, kind="lstm"):
    logits, _ = np_forward(params, source, inputs, lengths, kind)
    z = logits - logits.max(-1, keepdims=True)
    lsm = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.mean(np.take_along_axis(lsm, targets[..., None], -1))


def make_model(kind):
    return attention_seq2seq(VS, VT, S, start_token=0, embed_dim=3, encoder_hidden=4, decoder_hidden=5,
                             attention_dim=3, cell=kind)


@functools.lru_cache(maxsize=None)
def initial_params(kind):
    """One initialisation per cell kind (compiling an init costs seconds), as NumPy arrays."""
    params, state = make_model(kind).module.init(jax.random.key(0), (jnp.zeros((B, S), jnp.int32),
                                                                      jnp.zeros((B, T), jnp.int32)))
    assert state == {}
    return jax.tree.map(np.asarray, params)


def setup(kind="lstm", dtype=jnp.float32, seed=0):
    model = make_model(kind)
    rng = np.random.default_rng(seed)
    source = rng.integers(0, VS, (B, S)).astype(np.int32)
    targets = rng.integers(1, VT, (B, T)).astype(np.int32)
    inputs = np.asarray(decoder_inputs(targets, 0))
    # non-zero biases and fresh weights per seed, so the reference checks every term
    params = jax.tree.map(lambda a: jnp.asarray(a + 0.1 * rng.normal(size=a.shape), dtype), initial_params(kind))
    return model, params, source, inputs, targets


def test_init_shapes():
    p = initial_params("lstm")
    shapes = jax.tree.map(np.shape, p)
    assert shapes["source_embedding"] == (VS, 3) and shapes["target_embedding"] == (VT, 3)
    assert shapes["encoder"]["forward"]["w_ih"] == (3, 16) and shapes["encoder"]["backward"]["w_hh"] == (4, 16)
    assert shapes["attention"] == {"w_query": (5, 3), "w_key": (8, 3), "v": (3,)}
    assert shapes["decoder"]["w_ih"] == (3 + 8, 20) and shapes["output"]["kernel"] == (5 + 8, VT)
    assert np.all(p["output"]["bias"] == 0) and np.all(p["decoder"]["b_hh"] == 0)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_forward_equals_numpy_loop(x64, kind):
    model, params, source, inputs, targets = setup(kind, jnp.float64)
    lengths = np.array([S, 3, 1])
    logits, weights = jax.jit(model.teacher_forced)(params, source, inputs, source_lengths=jnp.asarray(lengths))
    ref_logits, ref_weights = np_forward(params, source, inputs, lengths, kind)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weights, ref_weights, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(weights).sum(-1), 1.0, rtol=1e-12)
    # the Module on the packed input [source ; decoder inputs] gives the same logits (full lengths)
    out, _ = jax.jit(model.module.apply)(params, {}, (source, inputs))
    np.testing.assert_allclose(out, np_forward(params, source, inputs, np.full(B, S), kind)[0],
                               rtol=1e-10, atol=1e-12)


def test_gradient_equals_numpy_finite_differences(x64):
    """jax.grad of the mean cross-entropy against central differences of the NumPy loop
    on a few coordinates of every leaf."""
    model, params, source, inputs, targets = setup("lstm", jnp.float64, seed=1)
    lengths = np.array([S, 4, 2])

    @jax.jit
    def loss(p):
        logits, _ = model.teacher_forced(p, source, inputs, source_lengths=jnp.asarray(lengths))
        return sequence_cross_entropy(logits, jnp.asarray(targets))

    np.testing.assert_allclose(loss(params), np_loss(params, source, inputs, targets, lengths), rtol=1e-12)
    grads = jax.grad(loss)(params)
    rng = np.random.default_rng(0)
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    for i, (path, leaf) in enumerate(flat):
        leaf = np.asarray(leaf)
        for _ in range(2):
            idx = tuple(int(rng.integers(0, n)) for n in leaf.shape)
            if path[0].key == "source_embedding":
                idx = (int(source[0, 0]),) + idx[1:]          # a row that is read
            if path[0].key == "target_embedding":
                idx = (int(inputs[0, 1]),) + idx[1:]
            vals = []
            for sign in (1, -1):
                bumped = leaf.copy()
                bumped[idx] += sign * 1e-6
                leaves = [np.asarray(l) for _, l in flat]
                leaves[i] = bumped
                vals.append(np_loss(jax.tree_util.tree_unflatten(treedef, leaves), source, inputs, targets,
                                    lengths))
            fd = (vals[0] - vals[1]) / 2e-6
            g = np.asarray(jax.tree_util.tree_flatten(grads)[0][i])[idx]
            np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-9, err_msg=jax.tree_util.keystr(path))


def test_gradient_check_float64(x64):
    """Central differences over every parameter of the LSTM model (the GRU's decoder is
    the same code; its forward pass is checked against NumPy above)."""
    model, params, source, inputs, targets = setup("lstm", jnp.float64, seed=2)

    @jax.jit
    def loss(p):
        logits, weights = model.teacher_forced(p, source, inputs, source_lengths=jnp.array([S, 2, 4]))
        return sequence_cross_entropy(logits, jnp.asarray(targets)) + jnp.sum(weights[..., 1] ** 2)

    gradcheck.check_gradients(loss, params, tol=1e-7)


def test_teacher_forcing_equals_step_by_step():
    model, params, source, inputs, targets = setup("lstm", jnp.float32, seed=3)
    logits, weights = jax.jit(model.teacher_forced)(params, source, inputs)
    step, carry, start = model.decoder(params, source)
    np.testing.assert_array_equal(start, inputs[:, 0])
    decode_step = jax.jit(model.decode_step)
    for t in range(T):
        carry, logits_t, weights_t = decode_step(params, carry, jnp.asarray(inputs[:, t]))
        np.testing.assert_allclose(logits[:, t], logits_t, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(weights[:, t], weights_t, rtol=1e-5, atol=1e-6)
    # greedy decoding fed back through teacher forcing reproduces its own argmaxes
    g = jax.jit(lambda p, s: greedy_decode(*model.decoder(p, s), max_len=T))(params, source)
    tf_logits, _ = jax.jit(model.teacher_forced)(params, source, decoder_inputs(g.sequences, 0))
    np.testing.assert_array_equal(jnp.argmax(tf_logits, -1), g.sequences)
    b = jax.jit(lambda p, s: beam_search(*model.decoder(p, s), beam_width=3, max_len=T))(params, source)
    assert np.all(np.asarray(b.log_probs[:, 0]) >= np.asarray(g.log_probs) - 1e-5)


def test_bad_input_raises():
    model, params, source, inputs, _ = setup()
    with pytest.raises(ValueError, match="source and decoder inputs must have one batch size, got 3 and 2"):
        model.teacher_forced(params, source, inputs[:2])
    with pytest.raises(ValueError, match=r"expected x = \(source, decoder inputs\), got ArrayImpl"):
        model.module.apply(params, {}, jnp.zeros((B, S), jnp.int32))
    with pytest.raises(ValueError, match=r"expected x = \(source \(B, 5\), decoder inputs \(B, T\)\), got shapes "
                                         r"\(3, 4\) and \(3, 4\)"):
        model.module.apply(params, {}, (source[:, :4], inputs))
    with pytest.raises(ValueError, match=r"start_token must be an int in \[0, 6\), got 6"):
        attention_seq2seq(VS, VT, S, start_token=6)
    with pytest.raises(ValueError, match="expected cell 'lstm' or 'gru'"):
        attention_seq2seq(VS, VT, S, start_token=0, cell="rnn")
    with pytest.raises(ValueError, match=r"source_lengths of shape \(3,\)"):
        model.teacher_forced(params, source, inputs, source_lengths=jnp.array([1, 2]))
