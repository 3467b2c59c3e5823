"""Recurrent cells and their scans against NumPy loops written here; masking against
each sequence run alone at its own length; float64 gradient checks through the scan."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax.flatten_util import ravel_pytree

from fnnet import functional as F


def sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def np_rnn(p, h, x, act="tanh"):
    a = x @ p["w_ih"] + p["b_ih"] + h @ p["w_hh"] + p["b_hh"]
    h = np.tanh(a) if act == "tanh" else np.maximum(a, 0)
    return h, h


def np_gru(p, h, x, reset_after=True):
    H = h.shape[-1]
    Wi, Wh, bi, bh = p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"]
    r = sig(x @ Wi[:, :H] + bi[:H] + h @ Wh[:, :H] + bh[:H])
    z = sig(x @ Wi[:, H:2 * H] + bi[H:2 * H] + h @ Wh[:, H:2 * H] + bh[H:2 * H])
    if reset_after:
        n = np.tanh(x @ Wi[:, 2 * H:] + bi[2 * H:] + r * (h @ Wh[:, 2 * H:] + bh[2 * H:]))
    else:
        n = np.tanh(x @ Wi[:, 2 * H:] + bi[2 * H:] + (r * h) @ Wh[:, 2 * H:] + bh[2 * H:])
    h = (1 - z) * n + z * h
    return h, h


def np_lstm(p, carry, x):
    h, c = carry
    H = h.shape[-1]
    g = x @ p["w_ih"] + p["b_ih"] + h @ p["w_hh"] + p["b_hh"]
    pi, pf, po = (p["w_peephole"] if "w_peephole" in p else np.zeros((3, H)))
    i = sig(g[:, :H] + pi * c)
    f = sig(g[:, H:2 * H] + pf * c)
    gg = np.tanh(g[:, 2 * H:3 * H])
    c = f * c + i * gg
    o = sig(g[:, 3 * H:] + po * c)
    h = o * np.tanh(c)
    return (h, c), h


def np_run(step, p, carry, xs):
    """Plain loop over batch-major xs (N, T, F)."""
    ys = []
    for t in range(xs.shape[1]):
        carry, y = step(p, carry, xs[:, t])
        ys.append(y)
    return carry, np.stack(ys, axis=1)


def make_params(rng, F_in, H, G, peephole=False, dtype=np.float32):
    p = {"w_ih": rng.normal(size=(F_in, G * H)) * 0.5, "w_hh": rng.normal(size=(H, G * H)) * 0.5,
         "b_ih": rng.normal(size=(G * H,)) * 0.3, "b_hh": rng.normal(size=(G * H,)) * 0.3}
    if peephole:
        p["w_peephole"] = rng.normal(size=(3, H)) * 0.5
    return {k: v.astype(dtype) for k, v in p.items()}


N, T, FIN, H = 3, 6, 4, 5

CASES = [
    ("rnn_tanh", 1, functools.partial(F.rnn_cell, activation="tanh"),
     functools.partial(F.rnn_sequence, activation="tanh"), functools.partial(np_rnn, act="tanh"), False),
    ("rnn_relu", 1, functools.partial(F.rnn_cell, activation="relu"),
     functools.partial(F.rnn_sequence, activation="relu"), functools.partial(np_rnn, act="relu"), False),
    ("gru", 3, F.gru_cell, F.gru_sequence, np_gru, False),
    ("gru_cho", 3, functools.partial(F.gru_cell, reset_after=False),
     functools.partial(F.gru_sequence, reset_after=False), functools.partial(np_gru, reset_after=False), False),
    ("lstm", 4, F.lstm_cell, F.lstm_sequence, np_lstm, False),
    ("lstm_peephole", 4, F.lstm_cell, F.lstm_sequence, np_lstm, True),
]


def carry0(name, rng, dtype=np.float32):
    if name.startswith("lstm"):
        return (rng.normal(size=(N, H)).astype(dtype), rng.normal(size=(N, H)).astype(dtype))
    return rng.normal(size=(N, H)).astype(dtype)


@pytest.mark.parametrize("name,G,cell,seq,ref,peep", CASES, ids=[c[0] for c in CASES])
def test_cell_and_sequence_match_numpy(name, G, cell, seq, ref, peep, rng):
    p = make_params(rng, FIN, H, G, peep)
    xs = rng.normal(size=(N, T, FIN)).astype(np.float32)
    c0 = carry0(name, rng)
    want_c, want_y = np_run(ref, p, c0, xs)
    jp = jax.tree.map(jnp.asarray, p)
    # one step
    c1, y1 = cell(jp, c0, xs[:, 0])
    rc1, ry1 = ref(p, c0, xs[:, 0])
    np.testing.assert_allclose(y1, ry1, rtol=1e-5, atol=1e-5)
    # generic scan and the hoisted sequence kernel
    outs = [F.scan(cell, jp, c0, xs), seq(jp, c0, xs), seq(jp, c0, xs, implementation="scan")]
    for got_c, got_y in outs:
        np.testing.assert_allclose(got_y, want_y, rtol=1e-5, atol=1e-5)
        for a, b in zip(jax.tree.leaves(got_c), jax.tree.leaves(want_c)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # reverse = the loop over the flipped sequence
    rev_c, rev_y = np_run(ref, p, c0, xs[:, ::-1])
    got_c, got_y = seq(jp, c0, xs, reverse=True)
    np.testing.assert_allclose(got_y, rev_y[:, ::-1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name,G,cell,seq,ref,peep", [CASES[0], CASES[1], CASES[2], CASES[4]],
                         ids=["rnn_tanh", "rnn_relu", "gru", "lstm"])
def test_masking_equals_each_sequence_alone(name, G, cell, seq, ref, peep, reverse, rng):
    p = make_params(rng, FIN, H, G, peep)
    xs = rng.normal(size=(N, T, FIN)).astype(np.float32)
    lengths = np.array([T, 2, 4], np.int32)
    c0 = carry0(name, rng)
    jp = jax.tree.map(jnp.asarray, p)
    for got_c, got_y in (seq(jp, c0, xs, lengths=jnp.asarray(lengths), reverse=reverse),
                         seq(jp, c0, xs, lengths=jnp.asarray(lengths), reverse=reverse, implementation="scan"),
                         F.scan(cell, jp, c0, xs, lengths=jnp.asarray(lengths), reverse=reverse)):
        for n, L in enumerate(lengths):
            x_n = xs[n:n + 1, :L]
            c_n = jax.tree.map(lambda a: a[n:n + 1], c0)
            if reverse:
                want_c, want_y = np_run(ref, p, c_n, x_n[:, ::-1])
                want_y = want_y[:, ::-1]
            else:
                want_c, want_y = np_run(ref, p, c_n, x_n)
            np.testing.assert_allclose(got_y[n, :L], want_y[0], rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(got_y[n, L:], 0.0)
            for a, b in zip(jax.tree.leaves(got_c), jax.tree.leaves(want_c)):
                np.testing.assert_allclose(a[n], b[0], rtol=1e-5, atol=1e-5)


def test_truncated_bptt_chunks_equal_one_pass(rng):
    p = jax.tree.map(jnp.asarray, make_params(rng, FIN, H, 4))
    xs = rng.normal(size=(N, T, FIN)).astype(np.float32)
    c0 = carry0("lstm", rng)
    c_full, y_full = F.lstm_sequence(p, c0, xs)
    c_a, y_a = F.lstm_sequence(p, c0, xs[:, :2])
    c_b, y_b = F.lstm_sequence(p, jax.lax.stop_gradient(c_a), xs[:, 2:])
    np.testing.assert_allclose(np.concatenate([y_a, y_b], 1), y_full, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(c_b[1], c_full[1], rtol=1e-6, atol=1e-6)


def test_scan_gives_each_step_its_own_key(rng):
    def noisy(params, carry, x, *, key):
        eps = jax.random.normal(key, x.shape[:1] + (1,))
        return carry, eps
    key = jax.random.key(0)
    _, ys = F.scan(noisy, {}, jnp.zeros((2,)), jnp.zeros((2, 4, 1)), key=key)
    want = np.stack([jax.random.normal(jax.random.fold_in(key, t), (2, 1)) for t in range(4)], axis=1)
    np.testing.assert_allclose(ys, want)


def test_helpers_against_numpy():
    xs = np.arange(2 * 4, dtype=np.float32).reshape(2, 4, 1)
    lengths = np.array([3, 4])
    got = F.reverse_padded(jnp.asarray(xs), jnp.asarray(lengths))
    np.testing.assert_array_equal(got[0, :, 0], [2, 1, 0, 3])
    np.testing.assert_array_equal(got[1, :, 0], [7, 6, 5, 4])
    np.testing.assert_array_equal(F.last_valid(jnp.asarray(xs), jnp.asarray(lengths))[:, 0], [2, 7])
    np.testing.assert_array_equal(F.sequence_mask(jnp.asarray(lengths), 4), [[1, 1, 1, 0], [1, 1, 1, 1]])


@pytest.mark.parametrize("name,G,seq,peep,lengths,reverse", [
    ("gru", 3, F.gru_sequence, False, (3, 2), True),                  # fused backward, masked
    ("gru", 3, functools.partial(F.gru_sequence, implementation="scan"), False, None, False),
    ("gru_cho", 3, functools.partial(F.gru_sequence, reset_after=False), False, (3, 2), False),
    ("rnn", 1, F.rnn_sequence, False, None, True),                    # fused backward
    ("rnn", 1, F.rnn_sequence, False, (3, 1), True),                  # fused backward, masked
    ("rnn", 1, functools.partial(F.rnn_sequence, activation="relu"), False, (2, 3), False),
    ("lstm", 4, F.lstm_sequence, False, (3, 1), False),               # fused backward, masked
    ("lstm", 4, F.lstm_sequence, False, None, True),                  # fused backward
    ("lstm", 4, F.lstm_sequence, True, (3, 1), True),                 # peepholes: autodiff of the scan
])
def test_gradients_through_the_scan_float64(name, G, seq, peep, lengths, reverse, x64, rng):
    p = make_params(rng, 3, 2, G, peep, dtype=np.float64)
    xs = rng.normal(size=(2, 3, 3))
    h0 = rng.normal(size=(2, 2))
    c0 = (h0, 0.5 * h0) if name == "lstm" else h0
    tree = {"params": jax.tree.map(jnp.asarray, p), "xs": jnp.asarray(xs), "c0": jax.tree.map(jnp.asarray, c0)}
    L = None if lengths is None else jnp.asarray(lengths)
    w = jnp.asarray(rng.normal(size=(2, 3, 2)))

    def f(t):
        c, ys = seq(t["params"], t["c0"], t["xs"], lengths=L, reverse=reverse)
        return jnp.sum(ys * w) + jnp.sum(jax.tree.leaves(c)[0] ** 2)

    assert central_difference_error(f, tree) < 1e-7


def central_difference_error(f, tree, eps=1e-6):
    """||g - g_fd|| / (||g|| + ||g_fd||), one coordinate at a time (a jitted f, so cheap)."""
    v, unravel = ravel_pytree(tree)
    h = jax.jit(lambda u: f(unravel(u)))
    g = np.asarray(jax.grad(lambda u: f(unravel(u)))(v))
    v = np.asarray(v)
    fd = np.empty_like(v)
    for i in range(v.size):
        e = np.zeros_like(v)
        e[i] = eps
        fd[i] = (float(h(v + e)) - float(h(v - e))) / (2 * eps)
    return np.linalg.norm(g - fd) / (np.linalg.norm(g) + np.linalg.norm(fd))


def test_rnn_recurrence_on_an_embedding_lookup(x64, rng):
    """The recurrence alone (inputs projected by a row lookup) against a NumPy loop, its
    masking against each sequence alone, and its gradients against central differences."""
    V, T_, H_ = 7, 6, 4
    emb, w_hh = rng.normal(size=(V, H_)), rng.normal(size=(H_, H_)) * 0.5
    tokens = rng.integers(0, V, (2, T_))
    h0 = rng.normal(size=(2, H_))
    h, want = h0.copy(), []
    for t in range(T_):
        h = np.tanh(emb[tokens[:, t]] + h @ w_hh)
        want.append(h)
    h_T, hs = F.rnn_recurrence(jnp.asarray(w_hh), jnp.asarray(h0), jnp.asarray(emb)[tokens])
    np.testing.assert_allclose(hs, np.stack(want, 1), rtol=1e-12)
    np.testing.assert_allclose(h_T, want[-1], rtol=1e-12)
    lengths = jnp.asarray([T_, 2])
    h_T, hs = F.rnn_recurrence(jnp.asarray(w_hh), jnp.asarray(h0), jnp.asarray(emb)[tokens], lengths=lengths)
    np.testing.assert_allclose(h_T[1], want[1][1], rtol=1e-12)
    np.testing.assert_array_equal(hs[1, 2:], 0.0)
    target = jnp.asarray(rng.normal(size=(2, T_, H_)))
    tree = {"emb": jnp.asarray(emb), "w_hh": jnp.asarray(w_hh), "h0": jnp.asarray(h0)}

    def f(t):
        h_T, hs = F.rnn_recurrence(t["w_hh"], t["h0"], t["emb"][tokens], lengths=lengths)
        return jnp.sum((hs - target) ** 2) + jnp.sum(h_T ** 3)

    assert central_difference_error(f, tree) < 1e-7
    # one unbatched sequence: the same states
    h_T, hs = F.rnn_recurrence(jnp.asarray(w_hh), jnp.asarray(h0[0]), jnp.asarray(emb)[tokens[0]])
    np.testing.assert_allclose(hs, np.stack(want, 1)[0], rtol=1e-12)
    assert central_difference_error(
        lambda t: jnp.sum(F.rnn_recurrence(t["w_hh"], t["h0"][0], t["emb"][tokens[0]])[1] * target[0]), tree) < 1e-7
    with pytest.raises(ValueError, match=r"rnn_recurrence: expected .* xp \(2, T, 4\); got"):
        F.rnn_recurrence(jnp.asarray(w_hh), jnp.asarray(h0), jnp.zeros((2, T_, 3)))
    with pytest.raises(ValueError, match="lengths need a batch"):
        F.rnn_recurrence(jnp.asarray(w_hh), jnp.asarray(h0[0]), jnp.zeros((T_, H_)), lengths=lengths)
    with pytest.raises(ValueError, match="rnn_recurrence: expected activation"):
        F.rnn_recurrence(jnp.asarray(w_hh), jnp.asarray(h0), jnp.asarray(emb)[tokens], activation="gelu")


def test_errors_name_the_kernel(rng):
    p = jax.tree.map(jnp.asarray, make_params(rng, FIN, H, 4))
    with pytest.raises(ValueError, match="lstm_cell: expected input with last axis 4"):
        F.lstm_cell(p, (jnp.zeros((1, H)),) * 2, jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match="gru_cell: expected w_hh"):
        F.gru_cell(p, jnp.zeros((1, H)), jnp.zeros((1, FIN)))
    with pytest.raises(ValueError, match=r"lstm_sequence: expected a batch-major input sequence \(N, T, F\)"):
        F.lstm_sequence(p, (jnp.zeros((1, H)),) * 2, jnp.zeros((5, FIN)))
    for seq, carry in ((F.lstm_sequence, (jnp.zeros((2, H)), jnp.zeros((2, H + 1)))),
                       (F.gru_sequence, jnp.zeros((3, H))), (F.rnn_sequence, jnp.zeros((2, H - 1)))):
        G = 4 if seq is F.lstm_sequence else 3 if seq is F.gru_sequence else 1
        q = jax.tree.map(jnp.asarray, make_params(rng, FIN, H, G))
        with pytest.raises(ValueError, match=r"_sequence: expected an initial state of shape \(2, 5\)"):
            seq(q, carry, jnp.zeros((2, 3, FIN)))
    with pytest.raises(ValueError, match="expected lengths of shape"):
        F.lstm_sequence(p, (jnp.zeros((2, H)),) * 2, jnp.zeros((2, 3, FIN)), lengths=jnp.array([1, 2, 3]))


def test_carry_structure_and_integer_arguments(rng):
    p4 = jax.tree.map(jnp.asarray, make_params(rng, FIN, H, 4))
    p1 = jax.tree.map(jnp.asarray, make_params(rng, FIN, H, 1))
    h = jnp.zeros((2, H))
    xs = jnp.asarray(rng.normal(size=(2, 3, FIN)))
    with pytest.raises(ValueError, match=r"lstm_sequence: expected carry as a pair \(h, c\) of arrays, "
                                         r"got an array of shape \(2, 5\)"):
        F.lstm_sequence(p4, h, xs)
    with pytest.raises(ValueError, match=r"lstm_cell: expected carry as a pair \(h, c\) of arrays, got a tuple of 3"):
        F.lstm_cell(p4, (h, h, h), xs[:, 0])
    with pytest.raises(ValueError, match=r"rnn_sequence: expected carry as one array h, got a tuple of 2"):
        F.rnn_sequence(p1, (h, h), xs)
    with pytest.raises(ValueError, match=r"rnn_recurrence: expected h0 as one array h, got a list of 1"):
        F.rnn_recurrence(jnp.zeros((H, H)), [h], jnp.zeros((2, 3, H)))
    # NumPy integers work where Python ints do; floats and bools are refused
    want = F.lstm_sequence(p4, (h, h), xs, unroll=2)
    got = F.lstm_sequence(p4, [h, h], xs, unroll=np.int64(2))
    np.testing.assert_array_equal(got[1], want[1])
    for bad in (2.0, True):
        with pytest.raises(TypeError, match="gru_sequence: expected unroll as an int"):
            F.gru_sequence(jax.tree.map(jnp.asarray, make_params(rng, FIN, H, 3)), h, xs, unroll=bad)
    with pytest.raises(ValueError, match="scan: expected unroll as a positive int, got 0"):
        F.scan(F.rnn_cell, p1, h, xs, unroll=np.int32(0))
