"""Recurrent Cells and Modules: shapes, params trees, carries, lengths, bidirectional and
deep stacks, all checked against NumPy loops written here."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import nn


def sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def np_lstm_seq(p, xs, h=None, c=None):
    """Naive LSTM over batch-major xs; returns (ys, (h, c))."""
    N, T, _ = xs.shape
    H = p["w_hh"].shape[0]
    h = np.zeros((N, H)) if h is None else h
    c = np.zeros((N, H)) if c is None else c
    ys = np.zeros((N, T, H))
    for t in range(T):
        g = xs[:, t] @ p["w_ih"] + p["b_ih"] + h @ p["w_hh"] + p["b_hh"]
        i, f, gg, o = sig(g[:, :H]), sig(g[:, H:2 * H]), np.tanh(g[:, 2 * H:3 * H]), sig(g[:, 3 * H:])
        c = f * c + i * gg
        h = o * np.tanh(c)
        ys[:, t] = h
    return ys, (h, c)


def np_gru_seq(p, xs):
    N, T, _ = xs.shape
    H = p["w_hh"].shape[0]
    h = np.zeros((N, H))
    ys = np.zeros((N, T, H))
    for t in range(T):
        gi = xs[:, t] @ p["w_ih"] + p["b_ih"]
        gh = h @ p["w_hh"] + p["b_hh"]
        r, z = sig(gi[:, :H] + gh[:, :H]), sig(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        h = (1 - z) * n + z * h
        ys[:, t] = h
    return ys


def npy(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


@pytest.fixture
def xs(rng):
    return rng.normal(size=(3, 5, 4)).astype(np.float32)


def test_cell_one_step_and_init(xs):
    cell = nn.lstm_cell(6, peephole=True, forget_bias=1.0)
    p = cell.init(jax.random.key(0), jax.ShapeDtypeStruct((3, 4), jnp.float32))
    assert {k: v.shape for k, v in p.items()} == {"w_ih": (4, 24), "w_hh": (6, 24), "b_ih": (24,),
                                                 "b_hh": (24,), "w_peephole": (3, 6)}
    np.testing.assert_array_equal(p["b_ih"][6:12], 1.0)
    np.testing.assert_array_equal(p["b_ih"][:6], 0.0)
    # each (h, h) block of w_hh is orthogonal
    for g in range(4):
        blk = np.asarray(p["w_hh"][:, 6 * g:6 * (g + 1)])
        np.testing.assert_allclose(blk.T @ blk, np.eye(6), atol=1e-5)
    carry = cell.initial_carry(p, xs[:, 0])
    assert jax.tree.map(jnp.shape, carry) == ((3, 6), (3, 6))
    (h, c), y = cell.apply(p, carry, xs[:, 0])
    q = npy(p)
    g = xs[:, 0] @ q["w_ih"] + q["b_ih"] + q["b_hh"]
    i, f, gg = sig(g[:, :6]), sig(g[:, 6:12]), np.tanh(g[:, 12:18])
    c_ref = i * gg
    h_ref = sig(g[:, 18:] + q["w_peephole"][2] * c_ref) * np.tanh(c_ref)
    np.testing.assert_allclose(y, h_ref, rtol=1e-5, atol=1e-6)


def test_rnn_module_many_to_many_and_carry(xs):
    model = nn.rnn(nn.lstm_cell(6), return_carry=True)
    params, state = model.init(jax.random.key(1), jax.ShapeDtypeStruct(xs.shape, jnp.float32))
    assert state == {}
    (ys, (h, c)), _ = jax.jit(model.apply)(params, state, xs)
    want, (wh, wc) = np_lstm_seq(npy(params), xs)
    np.testing.assert_allclose(ys, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c, wc, rtol=1e-5, atol=1e-5)
    # truncated BPTT: two chunks carrying the state equal one pass
    (y1, c1), _ = model.apply(params, state, xs[:, :2])
    (y2, c2), _ = model.apply(params, state, {"inputs": xs[:, 2:], "initial_carry": c1})
    np.testing.assert_allclose(np.concatenate([y1, y2], 1), want, rtol=1e-5, atol=1e-5)


def test_lengths_many_to_one_and_dict_passthrough(xs):
    lengths = np.array([5, 2, 3], np.int32)
    model = nn.rnn(nn.lstm_cell(6), return_sequences=False)
    params, _ = model.init(jax.random.key(2), xs)
    y, _ = model.apply(params, {}, {"inputs": xs, "lengths": lengths})
    q = npy(params)
    for n, L in enumerate(lengths):
        want, _ = np_lstm_seq(q, xs[n:n + 1, :L])
        np.testing.assert_allclose(y[n], want[0, -1], rtol=1e-5, atol=1e-5)
    # a deep serial stack keeps the lengths from layer to layer
    deep = nn.serial(nn.rnn(nn.gru_cell(6)), nn.rnn(nn.gru_cell(3)))
    p2, s2 = deep.init(jax.random.key(3), xs)     # serial.init takes an array example
    out, _ = deep.apply(p2, s2, {"inputs": xs, "lengths": lengths})
    assert set(out) == {"inputs", "lengths"} and out["inputs"].shape == (3, 5, 3)
    for n, L in enumerate(lengths):
        want = np_gru_seq(npy(p2["1"]), np_gru_seq(npy(p2["0"]), xs[n:n + 1, :L]))
        np.testing.assert_allclose(out["inputs"][n, :L], want[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(out["inputs"][n, L:], 0.0)


def test_bidirectional_and_deep_lstm_match_numpy(xs):
    model = nn.lstm(6, num_layers=2, bidirectional=True, return_carry=True)
    params, _ = model.init(jax.random.key(4), xs)
    assert set(params) == {"0", "1"} and set(params["1"]) == {"forward", "backward"}
    assert params["1"]["forward"]["w_ih"].shape == (12, 24)
    (ys, carry), _ = model.apply(params, {}, xs)
    q = npy(params)
    inp = xs.astype(np.float64)
    for layer in ("0", "1"):
        f, (hf, _) = np_lstm_seq(q[layer]["forward"], inp)
        b, (hb, _) = np_lstm_seq(q[layer]["backward"], inp[:, ::-1])
        inp = np.concatenate([f, b[:, ::-1]], axis=-1)
    np.testing.assert_allclose(ys, inp, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(carry[1][1][0], hb, rtol=1e-4, atol=1e-5)
    # serial of rnns has the same params tree as num_layers=2 (unidirectional)
    a, _ = nn.lstm(6, num_layers=2).init(jax.random.key(5), xs)
    b, sb = nn.serial(nn.rnn(nn.lstm_cell(6)), nn.rnn(nn.lstm_cell(6))).init(jax.random.key(5), xs)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    ya, _ = nn.lstm(6, num_layers=2).apply(a, {}, xs)
    yb, _ = nn.serial(nn.rnn(nn.lstm_cell(6)), nn.rnn(nn.lstm_cell(6))).apply(a, sb, xs)
    np.testing.assert_allclose(ya, yb, rtol=1e-6, atol=1e-6)


def test_dropout_between_layers_needs_a_key_and_is_off_in_eval(xs):
    model = nn.gru(6, num_layers=2, dropout=0.5)
    params, _ = model.init(jax.random.key(6), xs)
    with pytest.raises(ValueError, match="gru: train=True needs a random key"):
        model.apply(params, {}, xs, train=True)
    y_eval, _ = model.apply(params, {}, xs)
    y_plain, _ = nn.gru(6, num_layers=2).apply(params, {}, xs)
    np.testing.assert_allclose(y_eval, y_plain)
    y_train, _ = model.apply(params, {}, xs, key=jax.random.key(7), train=True)
    assert not np.allclose(y_train, y_eval)


def test_user_cell_gets_a_key_per_step(xs):
    def init(key, x_t):
        return {}

    def apply(params, carry, x_t, *, key=None):
        return carry + 1, jax.random.uniform(key, x_t.shape[:1] + (1,))

    cell = nn.Cell(init, apply, lambda p, x_t: jnp.zeros(x_t.shape[:1]))
    model = nn.rnn(cell, return_carry=True)
    params, _ = model.init(jax.random.key(0), xs)
    (ys, carry), _ = model.apply(params, {}, xs, key=jax.random.key(8))
    np.testing.assert_array_equal(carry, 5.0)
    assert len(np.unique(np.asarray(ys))) == ys.size    # a different draw at every step


def test_errors():
    with pytest.raises(ValueError, match="lstm_cell: expected hidden size as a positive int"):
        nn.lstm_cell(0)
    model = nn.rnn(nn.gru_cell(3))
    with pytest.raises(ValueError, match=r"rnn\(gru_cell\): expected a batch-major input sequence"):
        model.init(jax.random.key(0), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="got keys"):
        model.init(jax.random.key(0), {"inputs": jnp.zeros((2, 3, 1)), "length": 3})
    with pytest.raises(TypeError, match="expected a Cell"):
        nn.rnn(nn.dense(3))


def test_initial_carry_structure_is_checked():
    xs = jnp.zeros((2, 3, 4))
    h = jnp.zeros((2, 5))
    cases = [(nn.lstm(5), h, r"lstm: expected initial_carry structured like the carry of lstm_cell, "
                             r"a pair \(h, c\), a tuple of 2 \(an array of shape \(2, 5\), .*got an array of shape \(2, 5\)"),
             (nn.gru(5), (h, h), r"gru: expected initial_carry .* an array of shape \(2, 5\); got a tuple of 2"),
             (nn.simple_rnn(5), (h,), r"simple_rnn: expected initial_carry .*; got a tuple of 1"),
             (nn.lstm(5, bidirectional=True), (h, h),
              r"lstm: expected initial_carry structured like the carry of lstm_cell"),
             (nn.gru(5, bidirectional=True), h, r"gru: expected initial_carry of a bidirectional layer as a pair "
                                                r"\(forward, backward\), got an array")]
    for model, carry, message in cases:
        params, _ = model.init(jax.random.key(0), xs)
        with pytest.raises(ValueError, match=message):
            model.apply(params, {}, {"inputs": xs, "initial_carry": carry})
    # the right structure runs, and gives the same as no initial carry (zeros)
    model = nn.lstm(5)
    params, _ = model.init(jax.random.key(0), xs)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 4)), jnp.float32)
    np.testing.assert_array_equal(model.apply(params, {}, {"inputs": x, "initial_carry": (h, h)})[0],
                                  model.apply(params, {}, x)[0])


def test_numpy_integers_accepted_floats_and_bools_refused():
    xs = jnp.zeros((2, 3, 4))
    a = nn.lstm(np.int64(5), num_layers=np.int32(2), unroll=np.int64(2))
    b = nn.lstm(5, num_layers=2, unroll=2)
    pa, _ = a.init(jax.random.key(0), xs)
    pb, _ = b.init(jax.random.key(0), xs)
    jax.tree.map(np.testing.assert_array_equal, pa, pb)
    assert pa["1"]["w_hh"].shape == (5, 20)
    assert nn.gru_cell(np.uint8(3)).init(jax.random.key(0), jnp.zeros((1, 2)))["w_hh"].shape == (3, 9)
    for make, message in ((lambda: nn.lstm(5.0), r"lstm_cell: expected hidden size as an int, got 5.0 of type float"),
                          (lambda: nn.gru_cell(True), "gru_cell: expected hidden size as an int, got the bool"),
                          (lambda: nn.simple_rnn(4, num_layers=2.0), "simple_rnn: expected num_layers as an int"),
                          (lambda: nn.rnn(nn.lstm_cell(3), unroll=1.5), r"expected unroll as an int, got 1.5")):
        with pytest.raises(TypeError, match=message):
            make()
    with pytest.raises(ValueError, match="lstm: expected num_layers as a positive int, got 0"):
        nn.lstm(3, num_layers=np.int64(0))
