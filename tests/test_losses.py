"""fnnet.losses against float64 NumPy references (and optax / PyTorch as second references)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnnet import gradcheck, losses

N, K = 6, 4


# ------------------------------------------------------------------ NumPy references

def np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def np_bce_logits(z, y):
    # log(1 + e^t) = logaddexp(0, t), exact in float64 for any t
    return np.mean(y * np.logaddexp(0.0, -z) + (1 - y) * np.logaddexp(0.0, z))


def np_multiclass_hinge_sum(s, y, margin=1.0):
    total = 0.0
    for n in range(s.shape[0]):
        for j in range(s.shape[1]):
            if j != y[n]:
                total += max(0.0, s[n, j] - s[n, y[n]] + margin)
    return total / s.shape[0]


def np_huber(p, t, delta):
    out = []
    for r in (p - t).ravel():
        out.append(0.5 * r * r if abs(r) <= delta else delta * (abs(r) - 0.5 * delta))
    return np.mean(out)


@pytest.fixture
def data(rng):
    z = rng.normal(size=(N, K)) * 3
    y_int = rng.integers(0, K, size=N)
    soft = rng.random(size=(N, K))
    soft /= soft.sum(-1, keepdims=True)
    return z, y_int, soft


# ------------------------------------------------------------------------ values

def test_binary_cross_entropy_with_logits(x64, rng):
    z = rng.normal(size=(N, 3)) * 4
    y = rng.random(size=(N, 3))
    naive = np.mean(-(y * np.log(np_sigmoid(z)) + (1 - y) * np.log(1 - np_sigmoid(z))))
    got = losses.binary_cross_entropy_with_logits(jnp.asarray(z), jnp.asarray(y))
    np.testing.assert_allclose(got, naive, rtol=1e-12)
    np.testing.assert_allclose(got, np.mean(optax.sigmoid_binary_cross_entropy(z, y)), rtol=1e-12)


def test_binary_cross_entropy_probs(x64, rng):
    p = rng.random(size=(N,))
    y = (rng.random(size=(N,)) > 0.5).astype(np.float64)
    ref = np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
    np.testing.assert_allclose(losses.binary_cross_entropy(jnp.asarray(p), jnp.asarray(y)), ref,
                               rtol=1e-12)


def test_binary_cross_entropy_clamps_like_torch(x64):
    torch = pytest.importorskip("torch")
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.3])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    ref = torch.nn.functional.binary_cross_entropy(torch.from_numpy(p), torch.from_numpy(y)).item()
    got = losses.binary_cross_entropy(jnp.asarray(p), jnp.asarray(y))
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    g = jax.grad(losses.binary_cross_entropy)(jnp.asarray(p), jnp.asarray(y))
    assert np.all(np.isfinite(g))


def test_softmax_cross_entropy(x64, data):
    z, y_int, soft = data
    ref_soft = np.mean(-(soft * np_log_softmax(z)).sum(-1))
    got = losses.softmax_cross_entropy(jnp.asarray(z), jnp.asarray(soft))
    np.testing.assert_allclose(got, ref_soft, rtol=1e-12)
    np.testing.assert_allclose(got, np.mean(optax.softmax_cross_entropy(z, soft)), rtol=1e-12)
    onehot = np.eye(K)[y_int]
    ref_int = np.mean(-np_log_softmax(z)[np.arange(N), y_int])
    np.testing.assert_allclose(losses.softmax_cross_entropy(jnp.asarray(z), jnp.asarray(onehot)),
                               ref_int, rtol=1e-12)
    got_int = losses.softmax_cross_entropy_with_integer_labels(jnp.asarray(z), jnp.asarray(y_int))
    np.testing.assert_allclose(got_int, ref_int, rtol=1e-12)
    np.testing.assert_allclose(
        got_int, np.mean(optax.softmax_cross_entropy_with_integer_labels(z, y_int)), rtol=1e-12)


def test_softmax_cross_entropy_masked_logits():
    z = jnp.asarray([[0.0, -jnp.inf, 1.0]])
    y = jnp.asarray([[0.5, 0.0, 0.5]])
    ref = -(0.5 * np_log_softmax(np.array([[0.0, 1.0]]))).sum()
    np.testing.assert_allclose(losses.softmax_cross_entropy(z, y), ref, rtol=1e-6)


def test_integer_labels_over_leading_axes(x64, rng):
    z = rng.normal(size=(2, 3, K))
    y = rng.integers(0, K, size=(2, 3))
    ref = np.mean(-np.take_along_axis(np_log_softmax(z), y[..., None], -1))
    got = losses.softmax_cross_entropy_with_integer_labels(jnp.asarray(z), jnp.asarray(y))
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_nll_loss(x64, data):
    torch = pytest.importorskip("torch")
    z, y_int, _ = data
    logp = np_log_softmax(z)
    ref = torch.nn.functional.nll_loss(torch.from_numpy(logp), torch.from_numpy(y_int)).item()
    np.testing.assert_allclose(losses.nll_loss(jnp.asarray(logp), jnp.asarray(y_int)), ref,
                               rtol=1e-12)


def test_regression_losses(x64, rng):
    p, t = rng.normal(size=(N, 3)) * 2, rng.normal(size=(N, 3))
    P, T = jnp.asarray(p), jnp.asarray(t)
    np.testing.assert_allclose(losses.mse(P, T), np.mean((p - t) ** 2), rtol=1e-12)
    np.testing.assert_allclose(losses.mae(P, T), np.mean(np.abs(p - t)), rtol=1e-12)
    for delta in (0.5, 1.0, 2.5):
        np.testing.assert_allclose(losses.huber(P, T, delta), np_huber(p, t, delta), rtol=1e-12)
        np.testing.assert_allclose(losses.huber(P, T, delta),
                                   np.mean(optax.huber_loss(p, t, delta=delta)), rtol=1e-12)


def test_hinge_losses(x64, data, rng):
    torch = pytest.importorskip("torch")
    z, y_int, _ = data
    s = rng.normal(size=(N,))
    ypm = np.where(rng.random(N) > 0.5, 1.0, -1.0)
    ref = np.mean(np.maximum(0.0, 1 - ypm * s))
    np.testing.assert_allclose(losses.hinge(jnp.asarray(s), jnp.asarray(ypm)), ref, rtol=1e-12)
    np.testing.assert_allclose(losses.hinge(jnp.asarray(s), jnp.asarray(ypm)),
                               np.mean(optax.losses.hinge_loss(s, ypm)), rtol=1e-12)
    z = z / 3  # scores near each other so several margins are active
    Z, Y = jnp.asarray(z), jnp.asarray(y_int)
    np.testing.assert_allclose(losses.multiclass_hinge(Z, Y), np_multiclass_hinge_sum(z, y_int),
                               rtol=1e-12)
    mm = torch.nn.functional.multi_margin_loss(torch.from_numpy(z), torch.from_numpy(y_int))
    np.testing.assert_allclose(losses.multiclass_hinge(Z, Y), K * mm.item(), rtol=1e-12)
    np.testing.assert_allclose(losses.multiclass_hinge(Z, Y, margin=0.3),
                               np_multiclass_hinge_sum(z, y_int, 0.3), rtol=1e-12)
    np.testing.assert_allclose(losses.multiclass_hinge(Z, Y, aggregate="max"),
                               np.mean(optax.losses.multiclass_hinge_loss(z, y_int)), rtol=1e-12)


# ---------------------------------------------------------------- extreme logits

@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_stable_at_extreme_logits(scale, rng):
    z64 = np.array([[1.0, -1.0, 0.5, -0.5], [1.0, 0.0, -1.0, 0.3]]) * scale
    y_int = np.array([1, 0])
    onehot = np.eye(4)[y_int]
    ybin = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    z = jnp.asarray(z64, jnp.float32)
    cases = [
        (lambda z: losses.softmax_cross_entropy_with_integer_labels(z, jnp.asarray(y_int)),
         np.mean(-np_log_softmax(z64)[np.arange(2), y_int])),
        (lambda z: losses.softmax_cross_entropy(z, jnp.asarray(onehot, jnp.float32)),
         np.mean(-np_log_softmax(z64)[np.arange(2), y_int])),
        (lambda z: losses.binary_cross_entropy_with_logits(z, jnp.asarray(ybin, jnp.float32)),
         np_bce_logits(z64, ybin)),
        (lambda z: losses.nll_loss(jax.nn.log_softmax(z), jnp.asarray(y_int)),
         np.mean(-np_log_softmax(z64)[np.arange(2), y_int])),
        (lambda z: losses.multiclass_hinge(z, jnp.asarray(y_int)),
         np_multiclass_hinge_sum(z64, y_int)),
    ]
    for fn, ref in cases:
        val, grad = jax.value_and_grad(fn)(z)
        assert np.isfinite(val) and np.all(np.isfinite(grad))
        np.testing.assert_allclose(val, ref, rtol=1e-6, atol=1e-6)
        assert np.max(np.abs(grad)) <= (4 - 1) / 2 + 1e-6   # |dL/dz| <= (K - 1) / N


# -------------------------------------------------------------- gradient checks

def test_gradient_checks(x64, data, rng):
    z, y_int, soft = data
    Z = jnp.asarray(z)
    p = jnp.asarray(rng.uniform(0.05, 0.95, size=(N,)))
    ybin = jnp.asarray(rng.random(size=(N,)))
    pred, target = jnp.asarray(rng.normal(size=(N, 2))), jnp.asarray(rng.normal(size=(N, 2)))
    ypm = jnp.asarray(np.where(rng.random(N) > 0.5, 1.0, -1.0))
    s = jnp.asarray(rng.normal(size=(N,)) * 3)
    fns = {
        "bce": (lambda q: losses.binary_cross_entropy(q, ybin), p),
        "bce_logits": (lambda q: losses.binary_cross_entropy_with_logits(q, ybin), s),
        "softmax_ce": (lambda q: losses.softmax_cross_entropy(q, jnp.asarray(soft)), Z),
        "softmax_ce_int": (lambda q: losses.softmax_cross_entropy_with_integer_labels(
            q, jnp.asarray(y_int)), Z),
        "nll": (lambda q: losses.nll_loss(jax.nn.log_softmax(q), jnp.asarray(y_int)), Z),
        "mse": (lambda q: losses.mse(q, target), pred),
        "mae": (lambda q: losses.mae(q, target), pred),
        "huber": (lambda q: losses.huber(q, target, 0.7), pred),
        "hinge": (lambda q: losses.hinge(q, ypm), s),
        "multiclass_hinge": (lambda q: losses.multiclass_hinge(q, jnp.asarray(y_int)), Z / 3),
        "multiclass_hinge_max": (lambda q: losses.multiclass_hinge(
            q, jnp.asarray(y_int), aggregate="max"), Z / 3),
        "l1": (lambda q: losses.l1_penalty({"kernel": q}), pred),
        "l2": (lambda q: losses.l2_penalty({"kernel": q}), pred),
    }
    for name, (fn, arg) in fns.items():
        d = gradcheck.relative_difference(fn, arg)
        assert d < 1e-7, (name, d)


# ------------------------------------------------------------------- bad input

def test_shape_mismatch_raises_naming_loss_and_shapes():
    a, b = jnp.zeros((5, 1)), jnp.zeros((5,))
    for fn in (losses.mse, losses.mae, losses.huber, losses.binary_cross_entropy,
               losses.binary_cross_entropy_with_logits, losses.softmax_cross_entropy):
        with pytest.raises(ValueError, match=rf"{fn.__name__}.*\(5, 1\).*\(5,\)"):
            fn(a, b)
    with pytest.raises(ValueError, match=r"hinge.*\(5, 1\).*\(5,\)"):
        losses.hinge(a, jnp.ones((5,)))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy_with_integer_labels.*\(5, 3\)"):
        losses.softmax_cross_entropy_with_integer_labels(jnp.zeros((5, 3)), jnp.zeros((4,), int))
    with pytest.raises(ValueError, match=r"nll_loss.*\(5, 3\).*\(5, 1\)"):
        losses.nll_loss(jnp.zeros((5, 3)), jnp.zeros((5, 1), int))


def test_integer_labels_out_of_range_raise():
    z = jnp.zeros((3, 4))
    for fn in (losses.softmax_cross_entropy_with_integer_labels, losses.nll_loss,
               losses.multiclass_hinge):
        for bad in ([0, 4, 1], [0, -1, 1]):
            with pytest.raises(ValueError, match=rf"{fn.__name__}.*\[0, 4\)"):
                fn(z, jnp.asarray(bad))
    with pytest.raises(TypeError, match="integer"):
        losses.softmax_cross_entropy_with_integer_labels(z, jnp.zeros((3,)))


def test_out_of_range_under_jit_gives_nan():
    f = jax.jit(losses.softmax_cross_entropy_with_integer_labels)
    assert np.isnan(f(jnp.zeros((2, 3)), jnp.asarray([0, 7])))
    assert np.isfinite(f(jnp.zeros((2, 3)), jnp.asarray([0, 2])))


def test_hinge_rejects_01_labels():
    with pytest.raises(ValueError, match="-1 or \\+1"):
        losses.hinge(jnp.zeros(3), jnp.asarray([0.0, 1.0, 1.0]))


def test_rejects_integer_predictions():
    with pytest.raises(TypeError, match="mse.*floating"):
        losses.mse(jnp.zeros(3, int), jnp.zeros(3))


# -------------------------------------------------------------------- penalties

def _params(rng):
    return {"0": {"kernel": jnp.asarray(rng.normal(size=(3, 2))), "bias": jnp.asarray(rng.normal(size=2))},
            "bn": {"scale": jnp.asarray(rng.normal(size=2)), "bias": jnp.asarray(rng.normal(size=2))},
            "lstm": {"w_ih": jnp.asarray(rng.normal(size=(2, 4))), "b_ih": jnp.asarray(rng.normal(size=4))}}


def test_penalties_default_mask(x64, rng):
    p = _params(rng)
    w = [np.asarray(p["0"]["kernel"]), np.asarray(p["lstm"]["w_ih"])]
    np.testing.assert_allclose(losses.l2_penalty(p), 0.5 * sum((a ** 2).sum() for a in w), rtol=1e-12)
    np.testing.assert_allclose(losses.l1_penalty(p, coefficient=0.1),
                               0.1 * sum(np.abs(a).sum() for a in w), rtol=1e-12)
    g = jax.grad(lambda q: losses.l2_penalty(q, coefficient=0.3))(p)
    np.testing.assert_allclose(g["0"]["kernel"], 0.3 * w[0], rtol=1e-12)
    np.testing.assert_array_equal(g["0"]["bias"], 0.0)
    np.testing.assert_array_equal(g["bn"]["scale"], 0.0)


def test_penalties_custom_masks(x64, rng):
    p = _params(rng)
    everything = jax.tree.map(lambda _: True, p)
    total = sum(float((np.asarray(a) ** 2).sum()) for a in jax.tree.leaves(p))
    np.testing.assert_allclose(losses.l2_penalty(p, everything), 0.5 * total, rtol=1e-12)
    only_bn = lambda q: {k: jax.tree.map(lambda _: k == "bn", v) for k, v in q.items()}
    ref = sum(np.abs(np.asarray(a)).sum() for a in jax.tree.leaves(p["bn"]))
    np.testing.assert_allclose(losses.l1_penalty(p, only_bn), ref, rtol=1e-12)
    with pytest.raises(ValueError, match="l2_penalty.*structure"):
        losses.l2_penalty(p, {"0": True})


def test_l2_is_weight_decay_for_sgd(x64, rng):
    # one SGD step on loss + l2_penalty(lambda) == (1 - lr*lambda) w - lr g for penalised leaves
    p = _params(rng)
    x = jnp.asarray(rng.normal(size=(5, 3)))
    data_loss = lambda q: jnp.sum(jnp.tanh(x @ q["0"]["kernel"] + q["0"]["bias"][None, :]) ** 2)
    lr, lam = 0.1, 0.01
    g_total = jax.grad(lambda q: data_loss(q) + losses.l2_penalty(q, coefficient=lam))(p)
    g = jax.grad(data_loss)(p)
    w = p["0"]["kernel"]
    np.testing.assert_allclose(w - lr * g_total["0"]["kernel"],
                               (1 - lr * lam) * w - lr * g["0"]["kernel"], rtol=1e-12)
    np.testing.assert_allclose(p["0"]["bias"] - lr * g_total["0"]["bias"],
                               p["0"]["bias"] - lr * g["0"]["bias"], rtol=1e-12)


def test_integer_cross_entropy_precise_for_close_large_logits():
    # logits 1e4 and 1e4 - 1: the loss log(1 + e^-1) must not lose the ~1e-3 ulp of 1e4
    z = jnp.asarray([[1e4, 1e4 - 1.0], [1e4 - 1.0, 1e4]], jnp.float32)
    got = losses.softmax_cross_entropy_with_integer_labels(z, jnp.asarray([0, 0]))
    ref = 0.5 * (np.log1p(np.exp(-1.0)) + np.log1p(np.exp(1.0)))
    np.testing.assert_allclose(got, ref, rtol=1e-6)


# ------------------------------------------------------------------ sequence losses

def np_sequence_cross_entropy(z, y, real, eps):
    """A loop over the real tokens: -sum_v q_v log softmax(z)_v with q = (1 - eps) onehot + eps / V."""
    total, count = 0.0, 0
    for b in range(z.shape[0]):
        for t in range(z.shape[1]):
            if not real[b, t]:
                continue
            lsm = np_log_softmax(z[b, t])
            q = np.full(z.shape[2], eps / z.shape[2])
            q[y[b, t]] += 1.0 - eps
            total += -np.sum(q * lsm)
            count += 1
    return total / max(count, 1)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_sequence_cross_entropy_against_numpy_loop(x64, rng, eps):
    z = rng.normal(size=(3, 5, K)) * 3
    lengths = np.array([5, 2, 0])
    real = np.arange(5)[None, :] < lengths[:, None]
    y = np.where(real, rng.integers(0, K, size=(3, 5)), -100)          # padding holds an invalid id
    ref = np_sequence_cross_entropy(z, y, real, eps)
    got_len = losses.sequence_cross_entropy(jnp.asarray(z), jnp.asarray(y), lengths=jnp.asarray(lengths),
                                            label_smoothing=eps)
    got_mask = losses.sequence_cross_entropy(jnp.asarray(z), jnp.asarray(y), mask=jnp.asarray(real),
                                             label_smoothing=eps)
    np.testing.assert_allclose(got_len, ref, rtol=1e-12)
    np.testing.assert_allclose(got_mask, ref, rtol=1e-12)
    y_full = rng.integers(0, K, size=(3, 5))                           # no mask: every token is real
    np.testing.assert_allclose(losses.sequence_cross_entropy(jnp.asarray(z), jnp.asarray(y_full),
                                                             label_smoothing=eps),
                               np_sequence_cross_entropy(z, y_full, np.ones((3, 5), bool), eps), rtol=1e-12)
    # gradient: finite differences in float64, through the mask
    f = lambda zz: losses.sequence_cross_entropy(zz, jnp.asarray(y), mask=jnp.asarray(real), label_smoothing=eps)
    gradcheck.check_gradients(f, jnp.asarray(z))
    assert float(jnp.abs(jax.grad(f)(jnp.asarray(z))[2]).max()) == 0.0  # padded rows get no gradient


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_sequence_cross_entropy_equals_torch_ignore_index(x64, rng, eps):
    torch = pytest.importorskip("torch")
    z = rng.normal(size=(4, 6, 7)) * 2
    lengths = np.array([6, 3, 1, 4])
    real = np.arange(6)[None, :] < lengths[:, None]
    y = np.where(real, rng.integers(0, 7, size=(4, 6)), -100)
    ref = torch.nn.functional.cross_entropy(torch.from_numpy(z).reshape(-1, 7), torch.from_numpy(y).reshape(-1),
                                            ignore_index=-100, label_smoothing=eps).item()
    got = losses.sequence_cross_entropy(jnp.asarray(z), jnp.asarray(y), lengths=jnp.asarray(lengths),
                                        label_smoothing=eps)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    zt = torch.from_numpy(z).requires_grad_(True)
    torch.nn.functional.cross_entropy(zt.reshape(-1, 7), torch.from_numpy(y).reshape(-1), ignore_index=-100,
                                      label_smoothing=eps).backward()
    g = jax.grad(lambda zz: losses.sequence_cross_entropy(zz, jnp.asarray(y), lengths=jnp.asarray(lengths),
                                                          label_smoothing=eps))(jnp.asarray(z))
    np.testing.assert_allclose(g, zt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_sequence_cross_entropy_bad_input():
    z = jnp.zeros((2, 3, 4))
    y = jnp.zeros((2, 3), jnp.int32)
    with pytest.raises(ValueError, match=r"sequence_cross_entropy: expected labels of shape .*\(2, 3\), got \(2, 2\)"):
        losses.sequence_cross_entropy(z, y[:, :2])
    with pytest.raises(ValueError, match="mask or lengths, not both"):
        losses.sequence_cross_entropy(z, y, mask=jnp.ones((2, 3), bool), lengths=jnp.array([1, 2]))
    with pytest.raises(ValueError, match=r"expected logits of shape \(B, T, V\)"):
        losses.sequence_cross_entropy(z[0], y[0])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        losses.sequence_cross_entropy(z, y.at[0, 0].set(4))
    with pytest.raises(ValueError, match="label_smoothing must be"):
        losses.sequence_cross_entropy(z, y, label_smoothing=1.5)
    # extreme logits stay finite in float32
    big = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 4)) * 1e4, jnp.float32)
    val, grad = jax.value_and_grad(lambda zz: losses.sequence_cross_entropy(zz, y, label_smoothing=0.1))(big)
    assert np.isfinite(float(val)) and np.all(np.isfinite(np.asarray(grad)))
