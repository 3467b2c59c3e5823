"""fnnet.train.in_order: the MNIST-1D in-order protocol through fit_population against a
NumPy loop written here, the seed summary, and PyTorch's default init bound against
torch's own layers."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import losses, metrics, nn, optim, train
from fnnet.train.in_order import seed_summary, torch_default_init


def _numpy_softmax_regression(w, b, x, y, x_test, y_test, batch_size, lr, updates, evaluate_after):
    """Softmax regression with plain SGD, batches in file order (``bix = t * batch_size %
    n``), ``updates`` steps; after each count of updates in ``evaluate_after``: the test
    loss and the test accuracy. Returns (w, b, batch losses, test losses, test accuracies)."""
    def loss_and_grads(w, b, xb, yb):
        z = xb @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        loss = -np.mean(np.log(p[np.arange(len(yb)), yb]))
        dz = p.copy()
        dz[np.arange(len(yb)), yb] -= 1
        dz /= len(yb)
        return loss, xb.T @ dz, dz.sum(0)

    n, batch_losses, test_losses, test_accuracies = x.shape[0], [], [], []
    for t in range(updates + 1):
        if t in evaluate_after:
            test_losses.append(loss_and_grads(w, b, x_test, y_test)[0])
            test_accuracies.append(np.mean(np.argmax(x_test @ w + b, 1) == y_test))
        if t == updates:
            break
        s = (t * batch_size) % n
        loss, gw, gb = loss_and_grads(w, b, x[s:s + batch_size], y[s:s + batch_size])
        batch_losses.append(loss)
        w, b = w - lr * gw, b - lr * gb
    return w, b, np.array(batch_losses), np.array(test_losses), np.array(test_accuracies)


def test_in_order_protocol_through_fit_population_matches_numpy_loop(x64):
    """Two seeds, batches in order, the authors' steps 0..6 (7 updates), a test before the
    first step and after every 3 updates: fit_population(shuffle=False, steps=7,
    eval_every=3, eval_at_start=True) is the written-out loop for each seed."""
    rng = np.random.default_rng(2)
    x, x_test = rng.normal(size=(12, 4)), rng.normal(size=(9, 4))
    y, y_test = rng.integers(0, 3, 12), rng.integers(0, 3, 9)
    model, seeds = nn.dense(3, dtype=jnp.float64), jnp.asarray([5, 7])
    params, state = jax.vmap(lambda s: model.init(jax.random.key(s), jnp.asarray(x[:1])))(seeds)
    result = train.fit_population(model, losses.softmax_cross_entropy_with_integer_labels, optim.sgd(0.3),
                                  params, state, (x, y), keys=jax.vmap(jax.random.key)(seeds), batch_size=4,
                                  steps=7, eval_every=3, shuffle=False, dev_data=(x_test, y_test),
                                  metrics={"accuracy": metrics.accuracy}, train_metrics=False,
                                  eval_at_start=True, progress=False)
    assert [h["step"] for h in result.history] == [0, 3, 6, 7]
    for i, seed in enumerate((5, 7)):
        p, _ = model.init(jax.random.key(seed), jnp.asarray(x[:1]))
        w, b, batch_losses, test_losses, test_accuracies = _numpy_softmax_regression(
            np.asarray(p["kernel"]), np.asarray(p["bias"]), x, y, x_test, y_test, batch_size=4, lr=0.3,
            updates=7, evaluate_after=(0, 3, 6, 7))
        np.testing.assert_allclose(result.params["kernel"][i], w, rtol=1e-12)
        np.testing.assert_allclose(result.params["bias"][i], b, rtol=1e-12)
        # evaluated numbers come back as float32 (make_eval_step)
        np.testing.assert_allclose([h["dev_loss"][i] for h in result.history], test_losses, rtol=1e-6)
        np.testing.assert_allclose([h["dev_accuracy"][i] for h in result.history], test_accuracies, rtol=1e-6)
        np.testing.assert_allclose([h["train_loss"][i] for h in result.history[1:]],
                                   [batch_losses[:3].mean(), batch_losses[3:6].mean(), batch_losses[6]],
                                   rtol=1e-12)


def test_seed_summary():
    history = [{"step": 0, "epoch": 0, "train_loss": [2.0, 2.5], "dev_accuracy": [0.1, 0.2]},
               {"step": 250, "epoch": 7, "train_loss": [1.0, 1.5], "dev_accuracy": [0.5, 0.4]},
               {"step": 500, "epoch": 13, "train_loss": [0.5, 0.25], "dev_accuracy": [0.7, 0.9]}]
    summary, rows = seed_summary(history, "cnn")
    assert summary == pytest.approx({"cnn_test_accuracy": 70.0, "cnn_mean_test_accuracy": 80.0,
                                     "cnn_std_test_accuracy": 10.0})
    assert rows[1] == pytest.approx({"step": 250, "cnn_test_accuracy": 50.0, "cnn_mean_test_accuracy": 45.0,
                                     "cnn_train_loss": 1.0})
    assert [r["step"] for r in rows] == [0, 250, 500]
    flipped = [dict(h, train_loss=h["train_loss"][::-1], dev_accuracy=h["dev_accuracy"][::-1]) for h in history]
    _, merged = seed_summary(flipped, "mlp", rows)
    assert merged[2] == pytest.approx({"step": 500, "cnn_test_accuracy": 70.0, "cnn_mean_test_accuracy": 80.0,
                                       "cnn_train_loss": 0.5, "mlp_test_accuracy": 90.0,
                                       "mlp_mean_test_accuracy": 80.0, "mlp_train_loss": 0.25})


@pytest.mark.parametrize("layer,shape,fan_in", [(nn.dense(30), (4, 200), 200),
                                                (nn.conv(25, 3, stride=2, padding=1), (2, 20, 25), 75),
                                                (nn.conv(16, (5, 5)), (1, 12, 12, 6), 150)])
def test_torch_default_init_bound(layer, shape, fan_in):
    params, state = torch_default_init(layer).init(jax.random.key(0), jax.ShapeDtypeStruct(shape, jnp.float32))
    ref, _ = layer.init(jax.random.key(0), jax.ShapeDtypeStruct(shape, jnp.float32))
    assert state == {}
    bound = 1 / math.sqrt(fan_in)
    for name in ("kernel", "bias"):
        a = np.asarray(params[name])
        assert a.shape == ref[name].shape and a.dtype == ref[name].dtype
        assert np.all(np.abs(a) <= bound)
    k = np.asarray(params["kernel"])
    assert np.abs(k).max() > 0.95 * bound                           # uniform up to the bound
    np.testing.assert_allclose(k.std(), bound / math.sqrt(3), rtol=0.1)
    assert np.abs(np.asarray(params["bias"])).max() > 0.3 * bound   # not zeros, the same bound


def test_torch_default_init_bound_is_pytorchs():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for module, fan_in in [(torch.nn.Conv1d(25, 25, 3), 75), (torch.nn.Linear(125, 10), 125),
                           (torch.nn.Conv2d(6, 16, 5), 150)]:
        bound = 1 / math.sqrt(fan_in)
        w = module.weight.detach().numpy()
        b = module.bias.detach().numpy()
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
        assert np.abs(b).max() <= bound


def test_torch_default_init_rejects_other_layers():
    with pytest.raises(ValueError, match="torch_default_init"):
        torch_default_init(nn.layer_norm()).init(jax.random.key(0), jnp.zeros((2, 3)))
