"""Emojify v1/v2 and Kim's text CNN against NumPy loops on tiny sizes, padding ignored,
pretrained and frozen embeddings, float64 gradient checks, and bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck
from fnnet.models.text_classifiers import emojify_v1, emojify_v2, padding_lengths, text_cnn

V, C, D = 9, 3, 4
# right padded with 0; row 2 is shorter than the widest filter, row 3 is empty
IDS = np.array([[3, 4, 5, 6, 7, 0],
                [8, 1, 2, 0, 0, 0],
                [5, 0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0, 0],
                [1, 2, 3, 4, 5, 6]], np.int32)
LENGTHS = [5, 3, 1, 0, 6]


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_v1(p, s, ids):
    table = np.asarray(s.get("embedding", p.get("embedding")))
    out = []
    for row, n in zip(ids, LENGTHS):
        avg = table[row[:n]].mean(0) if n else np.zeros(table.shape[1])
        out.append(avg @ np.asarray(p["output"]["kernel"]) + np.asarray(p["output"]["bias"]))
    return np.array(out)


def _np_lstm(layer, xs):
    """PyTorch's LSTM (gates i, f, g, o) over the rows of xs (L, F), one step at a time."""
    w_ih, w_hh, b_ih, b_hh = (np.asarray(layer[k]) for k in ("w_ih", "w_hh", "b_ih", "b_hh"))
    h = np.zeros(w_hh.shape[0])
    c = np.zeros(w_hh.shape[0])
    hs = []
    for x in xs:
        i, f, g, o = np.split(x @ w_ih + b_ih + h @ w_hh + b_hh, 4)
        c = _np_sigmoid(f) * c + _np_sigmoid(i) * np.tanh(g)
        h = _np_sigmoid(o) * np.tanh(c)
        hs.append(h)
    return np.array(hs).reshape(len(xs), len(h)), h


def _np_v2(p, ids, layers):
    table = np.asarray(p["embedding"])
    out = []
    for row, n in zip(ids, LENGTHS):
        xs = table[row[:n]]
        h = np.zeros(p["output"]["kernel"].shape[0])
        for i in range(layers):
            xs, h = _np_lstm(p["lstm"][str(i)] if layers > 1 else p["lstm"], xs)
        out.append(h @ np.asarray(p["output"]["kernel"]) + np.asarray(p["output"]["bias"]))
    return np.array(out)


def _np_cnn(p, ids, widths):
    table = np.asarray(p["embedding"])
    out = []
    for row, n in zip(ids, LENGTHS):
        feats = []
        for i, k in enumerate(widths):
            w, b = np.asarray(p["conv"][str(i)]["kernel"]), np.asarray(p["conv"][str(i)]["bias"])
            sent = np.zeros((max(n, k), table.shape[1]))            # zero padded up to the width
            sent[:n] = table[row[:n]]
            best = np.full(w.shape[2], -np.inf)
            for pos in range(len(sent) - k + 1):
                z = b.copy()
                for j in range(k):
                    z += sent[pos + j] @ w[j]
                best = np.maximum(best, z)
            feats.append(np.maximum(best, 0))
        h = np.concatenate(feats)
        out.append(h @ np.asarray(p["output"]["kernel"]) + np.asarray(p["output"]["bias"]))
    return np.array(out)


def _models(dtype=jnp.float32):
    return {"v1": emojify_v1(V, C, embed_dim=D, dtype=dtype),
            "v2": emojify_v2(V, C, embed_dim=D, hidden=5, dtype=dtype),
            "v2_one_layer": emojify_v2(V, C, embed_dim=D, hidden=3, num_layers=1, dtype=dtype),
            "cnn": text_cnn(V, C, embed_dim=D, widths=(2, 3), filters=3, dtype=dtype)}


def _reference(name, p, s, ids):
    if name == "v1":
        return _np_v1(p, s, ids)
    if name == "cnn":
        return _np_cnn(p, ids, (2, 3))
    return _np_v2(p, ids, 2 if name == "v2" else 1)


def test_padding_lengths():
    np.testing.assert_array_equal(padding_lengths(IDS), LENGTHS)
    np.testing.assert_array_equal(padding_lengths(np.array([[2, 2, 1]]), pad_id=1), [2])


@pytest.mark.parametrize("name", ["v1", "v2", "cnn"])
def test_forward_matches_numpy_and_ignores_padding(name):
    model = _models()[name]
    params, state = model.init(jax.random.key(0), IDS)
    logits, _ = model.apply(params, state, IDS)
    assert logits.shape == (len(IDS), C)
    np.testing.assert_allclose(logits, _reference(name, params, state, IDS), rtol=2e-5, atol=2e-5)
    # under jit the tokens after the first pad are never read, and extra padding changes nothing
    run = jax.jit(lambda p, s, x: model.apply(p, s, x)[0])
    noisy = np.where(IDS == 0, 0, IDS)
    noisy[1, 4], noisy[3, 2], noisy[2, 5] = 7, 3, 8                  # tokens after the first pad
    np.testing.assert_allclose(run(params, state, noisy), logits, rtol=1e-6, atol=1e-6)
    longer = np.concatenate([IDS, np.zeros((len(IDS), 3), np.int32)], axis=1)
    np.testing.assert_allclose(run(params, state, longer), logits, rtol=1e-5, atol=1e-6)
    # a real token after a pad is refused when the ids are concrete
    with pytest.raises(ValueError, match=r"expected right-padded ids .* got ids\[1, 4\] = 7 after a pad"):
        model.apply(params, state, noisy)


def test_dropout_in_training_only():
    model = _models()["cnn"]
    params, state = model.init(jax.random.key(0), IDS)
    for name in ("cnn", "v2"):                      # refused before any compute
        with pytest.raises(ValueError, match="train=True needs a random key"):
            _models()[name].apply(params if name == "cnn" else {}, state, IDS, train=True)
    run = jax.jit(lambda p, k, train: model.apply(p, state, IDS, key=k, train=train)[0], static_argnums=2)
    a, b = run(params, jax.random.key(1), True), run(params, jax.random.key(2), True)
    e, e2 = run(params, jax.random.key(1), False), run(params, jax.random.key(2), False)
    assert not np.allclose(a, b) and not np.allclose(a, e)
    np.testing.assert_array_equal(e, e2)                              # evaluation draws nothing


def test_pretrained_and_frozen_embeddings(rng):
    vectors = rng.normal(size=(V, 6)).astype(np.float32)
    # (the three models build their table with one helper)
    trainable = text_cnn(V, C, widths=(2,), filters=2, embeddings=vectors)
    frozen = text_cnn(V, C, widths=(2,), filters=2, embeddings=vectors, freeze_embeddings=True)
    params, state = trainable.init(jax.random.key(0), IDS)
    np.testing.assert_array_equal(params["embedding"], vectors)
    assert state == {}
    fp, fs = frozen.init(jax.random.key(0), IDS)
    assert "embedding" not in fp and set(fp) == set(params) - {"embedding"}
    np.testing.assert_array_equal(fs["embedding"], vectors)
    # the frozen table gives the same logits as the trainable copy, and no gradient reaches it
    y = jnp.array([0, 1, 2, 0, 1])

    def loss(p, s, model):
        logits, _ = model.apply(p, s, IDS)
        return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, y[:, None], 1)[:, 0])

    value_and_grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), static_argnums=2)
    frozen_loss, frozen_grads = value_and_grads(fp, fs, frozen)
    trainable_loss, trainable_grads = value_and_grads(params, {}, trainable)
    np.testing.assert_allclose(frozen_loss, trainable_loss, rtol=1e-6)
    np.testing.assert_array_equal(frozen_grads[1]["embedding"], 0.0)
    assert np.any(np.asarray(trainable_grads[0]["embedding"]) != 0)


def test_frozen_table_unchanged_by_fit(rng):
    from fnnet import losses, optim, train
    vectors = rng.normal(size=(V, 4)).astype(np.float32)
    model = emojify_v1(V, C, embeddings=vectors, freeze_embeddings=True)
    params, state = model.init(jax.random.key(0), IDS)
    y = np.array([0, 1, 2, 0, 1])
    result = train.fit(model, losses.softmax_cross_entropy_with_integer_labels, optim.adam(0.1), params, state, (IDS, y),
                       key=jax.random.key(1), batch_size=5, steps=5, progress=False)
    np.testing.assert_array_equal(result.state["embedding"], vectors)
    assert not np.allclose(result.params["output"]["kernel"], params["output"]["kernel"])
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


@pytest.mark.parametrize("name", ["v1", "v2_one_layer", "cnn"])
def test_gradients_float64(x64, name):
    model = _models(jnp.float64)[name]
    params, state = model.init(jax.random.key(3), IDS)
    assert params["output"]["kernel"].dtype == jnp.float64
    # off the kinks: zero biases put relu(max) of the empty sentence exactly at 0
    leaves, tree = jax.tree.flatten(params)
    noise = [jax.random.normal(jax.random.key(10 + i), a.shape, a.dtype) * 0.1 for i, a in enumerate(leaves)]
    params = jax.tree.unflatten(tree, [a + n for a, n in zip(leaves, noise)])
    y = jnp.array([0, 1, 2, 0, 1])

    @jax.jit
    def loss(p):
        logits, _ = model.apply(p, state, IDS)
        return jnp.sum(jnp.sin(logits) * jax.nn.one_hot(y, C, dtype=logits.dtype))

    gradcheck.check_gradients(loss, params)


def test_bad_inputs_raise():
    model = emojify_v1(V, C, embed_dim=D)
    params, state = model.init(jax.random.key(0), IDS)
    with pytest.raises(TypeError, match="expected integer token ids"):
        model.apply(params, state, IDS.astype(np.float32))
    with pytest.raises(ValueError, match=r"expected token ids of shape \(N, T\), got shape \(6,\)"):
        model.apply(params, state, IDS[0])
    with pytest.raises(ValueError, match=r"ids in \[0, 9\)"):
        model.apply(params, state, np.array([[9, 1]], np.int32))
    cnn = text_cnn(V, C, embed_dim=D, filters=2)
    with pytest.raises(ValueError, match=r"at least 5 positions .* got ids of shape \(2, 4\)"):
        cnn.init(jax.random.key(0), jnp.ones((2, 4), jnp.int32))
    with pytest.raises(ValueError, match=r"expected embeddings of shape \(9, 4\).*got shape \(8, 4\)"):
        emojify_v1(V, C, embed_dim=4, embeddings=np.zeros((8, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        emojify_v1(V, C, embeddings=np.full((V, 4), np.nan))
    with pytest.raises(ValueError, match="freeze_embeddings=True needs embeddings="):
        emojify_v2(V, C, freeze_embeddings=True)
    with pytest.raises(ValueError, match=r"expected pad_id in \[0, 9\), got 9"):
        text_cnn(V, C, pad_id=9)
    with pytest.raises(ValueError, match=r"expected dropout in \[0, 1\), got 1.0"):
        emojify_v2(V, C, dropout=1.0)
    with pytest.raises(ValueError, match="expected widths as a non-empty sequence"):
        text_cnn(V, C, widths=())
    with pytest.raises(ValueError, match="expected each width as a positive int, got 0"):
        text_cnn(V, C, widths=(3, 0))
    with pytest.raises(ValueError, match="expected num_classes as a positive int, got 0"):
        emojify_v1(V, 0)
