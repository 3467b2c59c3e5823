"""fnnet.train.in_order: the in-order scanned loop against a NumPy loop written here,
and PyTorch's default init bound against torch's own layers."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import nn, optim
from fnnet.train.in_order import classify_seeds_in_order, fit_in_order, seed_summary, torch_default_init


def _numpy_sgd(w, x, y, batch_size, lr, eval_steps, eval_every):
    """Least squares with plain SGD, batches in order, steps < 0 skipped."""
    n = x.shape[0]
    losses, evals = [], []
    for last in eval_steps:
        block = []
        for t in range(last - eval_every + 1, last + 1):
            if t < 0:
                block.append(0.0)
                continue
            s = (t * batch_size) % n
            xb, yb = x[s:s + batch_size], y[s:s + batch_size]
            r = xb @ w - yb
            block.append(np.mean(r ** 2))
            w = w - lr * 2 * xb.T @ r / batch_size
        losses.append(block)
        evals.append(np.mean((x @ w - y) ** 2))
    return w, np.array(losses), np.array(evals)


@pytest.mark.parametrize("eval_steps", [(0, 4, 8, 12), (3, 7, 11)])
def test_fit_in_order_matches_numpy_loop(x64, eval_steps):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=12)
    w0 = rng.normal(size=3)

    def loss_fn(w, xb, yb):
        return jnp.mean((xb @ w - yb) ** 2)

    def evaluate(w):
        return {"mse": jnp.mean((x @ w - y) ** 2)}

    w, curves = jax.jit(lambda w: fit_in_order(loss_fn, optim.sgd(0.05), w, jnp.asarray(x), jnp.asarray(y),
                                               batch_size=4, eval_steps=eval_steps, eval_every=4,
                                               evaluate=evaluate))(jnp.asarray(w0))
    w_ref, losses_ref, evals_ref = _numpy_sgd(w0, x, y, 4, 0.05, eval_steps, 4)
    np.testing.assert_allclose(np.asarray(w), w_ref, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(curves["batch_loss"]), losses_ref, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(curves["eval"]["mse"]), evals_ref, rtol=1e-12)
    assert curves["batch_loss"].shape == (len(eval_steps), 4)


def test_fit_in_order_vmaps_over_seeds():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(8, 2)), jnp.float32)
    y = jnp.sum(x, axis=1)
    loss_fn = lambda w, xb, yb: jnp.mean((xb @ w - yb) ** 2)  # noqa: E731
    run = lambda w: fit_in_order(loss_fn, optim.adam(1e-2), w, x, y, batch_size=4,  # noqa: E731
                                 eval_steps=(1, 3), eval_every=2, evaluate=lambda w: jnp.sum(w))
    w0 = jnp.asarray([[0.0, 0.0], [1.0, -1.0]])
    batched, _ = jax.jit(jax.vmap(run))(w0)
    for i in range(2):
        single, _ = jax.jit(run)(w0[i])
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(single), rtol=1e-6)


def test_fit_in_order_errors():
    x, y = jnp.zeros((10, 2)), jnp.zeros((10,))
    kw = dict(evaluate=lambda w: w, eval_every=2)
    with pytest.raises(ValueError, match="multiple of the batch"):
        fit_in_order(lambda *a: 0.0, optim.sgd(0.1), jnp.zeros(2), x, y, batch_size=4, eval_steps=(1,), **kw)
    with pytest.raises(ValueError, match="apart"):
        fit_in_order(lambda *a: 0.0, optim.sgd(0.1), jnp.zeros(2), x, y, batch_size=5, eval_steps=(1, 2), **kw)



def _numpy_softmax_regression(w, b, x, y, x_test, y_test, batch_size, lr, steps, eval_every):
    """Softmax regression with plain SGD, batches in order, evaluated after steps
    0, eval_every, ..., steps: (batch loss of each evaluated step, test loss, test acc %)."""
    def loss_and_grads(w, b, xb, yb):
        z = xb @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        loss = -np.mean(np.log(p[np.arange(len(yb)), yb]))
        dz = p.copy()
        dz[np.arange(len(yb)), yb] -= 1
        dz /= len(yb)
        return loss, xb.T @ dz, dz.sum(0)

    n, curves = x.shape[0], {"train_loss": [], "test_loss": [], "test_accuracy": []}
    for t in range(steps + 1):
        s = (t * batch_size) % n
        loss, gw, gb = loss_and_grads(w, b, x[s:s + batch_size], y[s:s + batch_size])
        w, b = w - lr * gw, b - lr * gb
        if t % eval_every == 0:
            test_loss = loss_and_grads(w, b, x_test, y_test)[0]
            curves["train_loss"].append(loss)
            curves["test_loss"].append(test_loss)
            curves["test_accuracy"].append(100 * np.mean(np.argmax(x_test @ w + b, 1) == y_test))
    return {k: np.array(v) for k, v in curves.items()}


def test_classify_seeds_in_order_matches_numpy_loop(x64):
    rng = np.random.default_rng(2)
    x, x_test = rng.normal(size=(12, 4)), rng.normal(size=(9, 4))
    y, y_test = rng.integers(0, 3, 12), rng.integers(0, 3, 9)
    model, seeds = nn.dense(3, dtype=jnp.float64), [5, 7]
    n_params, curves = classify_seeds_in_order(
        model, optim.sgd(0.3), seeds, (jnp.asarray(x), jnp.asarray(y)), (jnp.asarray(x_test), jnp.asarray(y_test)),
        batch_size=4, steps=6, eval_every=3)
    assert n_params == 4 * 3 + 3
    for i, seed in enumerate(seeds):
        p, _ = model.init(jax.random.key(seed), jnp.asarray(x[:1]))
        ref = _numpy_softmax_regression(np.asarray(p["kernel"]), np.asarray(p["bias"]), x, y, x_test, y_test,
                                        batch_size=4, lr=0.3, steps=6, eval_every=3)
        for name, values in ref.items():
            assert curves[name].shape == (2, 3)
            rtol = 1e-6 if name == "test_accuracy" else 1e-10  # accuracy is a float32 mean
            np.testing.assert_allclose(curves[name][i], values, rtol=rtol, err_msg=name)
    with pytest.raises(ValueError, match="multiple of eval_every"):
        classify_seeds_in_order(model, optim.sgd(0.3), seeds, (x, y), (x_test, y_test),
                                batch_size=4, steps=7, eval_every=3)


def test_seed_summary():
    curves = {"test_accuracy": np.array([[10.0, 50.0, 70.0], [20.0, 40.0, 90.0]]),
              "train_loss": np.array([[2.0, 1.0, 0.5], [2.5, 1.5, 0.25]])}
    summary, rows = seed_summary(curves, "cnn", eval_every=250)
    assert summary == {"cnn_test_accuracy": 70.0, "cnn_mean_test_accuracy": 80.0, "cnn_std_test_accuracy": 10.0}
    assert rows[1] == {"step": 250, "cnn_test_accuracy": 50.0, "cnn_mean_test_accuracy": 45.0,
                       "cnn_train_loss": 1.0}
    assert [r["step"] for r in rows] == [0, 250, 500]
    _, merged = seed_summary({k: v[::-1] for k, v in curves.items()}, "mlp", 250, rows)
    assert merged[2] == {"step": 500, "cnn_test_accuracy": 70.0, "cnn_mean_test_accuracy": 80.0,
                         "cnn_train_loss": 0.5, "mlp_test_accuracy": 90.0, "mlp_mean_test_accuracy": 80.0,
                         "mlp_train_loss": 0.25}


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
