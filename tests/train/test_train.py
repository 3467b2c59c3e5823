"""fnnet.train: the step against a hand-written update, the fit loop, early stopping,
checkpoints (atomic, bit-identical resume) and the stop on a non-finite loss."""
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import losses, nn, optim, train


def problem(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)
    return x, y


def model():
    return nn.serial(nn.dense(8), nn.relu, nn.dense(2))


def mse_logits(out, y):
    return jnp.mean((out[:, 1] - out[:, 0] - (2.0 * y - 1.0)) ** 2)


def test_train_step_equals_hand_written_sgd():
    x, y = problem()
    m = model()
    params, state = m.init(jax.random.key(0), x)
    step = train.make_train_step(m, mse_logits, optim.sgd(0.1))
    new_params, _, _, loss = step(params, state, optim.sgd(0.1).init(params), x, y, jax.random.key(1))

    def objective(p):
        h = np.maximum(x @ p["0"]["kernel"] + p["0"]["bias"], 0)
        out = h @ p["2"]["kernel"] + p["2"]["bias"]
        return np.mean((out[:, 1] - out[:, 0] - (2.0 * y - 1.0)) ** 2)

    # Reference gradient by central differences in float64 NumPy.
    ref = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    leaves, treedef = jax.tree.flatten(ref)
    expected = []
    for i, leaf in enumerate(leaves):
        g = np.zeros_like(leaf)
        for idx in np.ndindex(leaf.shape):
            for sign in (1, -1):
                moved = [l.copy() for l in leaves]
                moved[i][idx] += sign * 1e-6
                g[idx] += sign * objective(jax.tree.unflatten(treedef, moved)) / 2e-6
        expected.append(leaf - 0.1 * g)
    np.testing.assert_allclose(float(loss), objective(ref), rtol=1e-5)
    chex.assert_trees_all_close(new_params, jax.tree.unflatten(treedef, expected), atol=1e-4)


def test_train_step_compiles_once():
    x, y = problem()
    m = model()
    params, state = m.init(jax.random.key(0), x)
    opt = optim.sgd(0.1)
    step = chex.assert_max_traces(train.make_train_step(m, mse_logits, opt).__wrapped__, n=1)
    step = jax.jit(step)
    opt_state = opt.init(params)
    for i in range(3):
        params, state, opt_state, _ = step(params, state, opt_state, x, y, jax.random.key(i))


def test_penalty_is_added_to_the_objective_not_the_reported_loss():
    x, y = problem()
    m = model()
    params, state = m.init(jax.random.key(0), x)
    opt = optim.sgd(0.1)
    plain = train.make_train_step(m, mse_logits, opt)
    penalised = train.make_train_step(m, mse_logits, opt, penalty=lambda p: 0.5 * sum(jnp.sum(w ** 2) for w in jax.tree.leaves(p)))
    p1, _, _, l1 = plain(params, state, opt.init(params), x, y, jax.random.key(1))
    p2, _, _, l2 = penalised(params, state, opt.init(params), x, y, jax.random.key(1))
    assert float(l1) == float(l2)
    # d/dw of 0.5 ||w||^2 is w: the penalised step shrinks every weight by lr * w more.
    chex.assert_trees_all_close(p2, jax.tree.map(lambda a, b: a - 0.1 * b, p1, params), atol=1e-6)


def test_fit_learns_and_reports_history():
    x, y = problem(256)
    m = model()
    params, state = m.init(jax.random.key(0), x)
    acc = lambda out, yy: jnp.mean(jnp.argmax(out, -1) == yy)
    result = train.fit(m, losses.softmax_cross_entropy_with_integer_labels, optim.sgd(0.2), params, state,
                       (x, y), key=jax.random.key(3), epochs=8, batch_size=32, dev_data=(x[:64], y[:64]),
                       metrics={"accuracy": acc})
    assert [h["epoch"] for h in result.history] == list(range(1, 9))
    assert set(result.history[0]) == {"epoch", "train_loss", "dev_loss", "dev_accuracy", "train_accuracy"}
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
    assert result.history[-1]["dev_accuracy"] > 0.9
    # dev metrics equal a direct evaluation of the returned params
    out, _ = m.apply(result.params, result.state, jnp.asarray(x[:64]))
    np.testing.assert_allclose(result.history[-1]["dev_accuracy"], float(acc(out, y[:64])), rtol=1e-6)


def test_evaluate_batches_weight_by_size():
    x, y = problem(50)
    m = model()
    params, state = m.init(jax.random.key(0), x)
    ev = train.make_eval_step(m, mse_logits)
    whole = train.evaluate(ev, params, state, jnp.asarray(x), jnp.asarray(y), batch_size=50)
    chunked = train.evaluate(ev, params, state, jnp.asarray(x), jnp.asarray(y), batch_size=16)
    np.testing.assert_allclose(whole["loss"], chunked["loss"], rtol=1e-5)


def test_resume_from_checkpoint_is_bit_identical(tmp_path):
    x, y = problem(96)
    m = model()
    params, state = m.init(jax.random.key(0), x)
    opt = optim.sgd(0.1, momentum=0.9)
    kw = dict(key=jax.random.key(7), batch_size=16)
    full = train.fit(m, mse_logits, opt, params, state, (x, y), epochs=4, **kw)
    path = tmp_path / "run.ckpt"
    train.fit(m, mse_logits, opt, params, state, (x, y), epochs=2, checkpoint=path, **kw)
    resumed = train.fit(m, mse_logits, opt, params, state, (x, y), epochs=4, checkpoint=path, resume=True, **kw)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]  # the checkpoint's epochs, then the new ones
    chex.assert_trees_all_equal(full.params, resumed.params)
    chex.assert_trees_all_equal(full.opt_state, resumed.opt_state)
    assert full.history == resumed.history


def test_checkpoint_roundtrip_with_key_and_namedtuple(tmp_path):
    opt = optim.adam(1e-3)
    params = {"w": jnp.arange(6.0).reshape(2, 3)}
    tree = {"params": params, "opt": opt.init(params), "key": jax.random.key(4), "step": np.asarray(3)}
    path = tmp_path / "c.npz"
    train.save_checkpoint(path, tree)
    assert os.listdir(tmp_path) == ["c.npz"]  # no temporary file left behind
    back = train.load_checkpoint(path, tree)
    chex.assert_trees_all_equal(back["params"], params)
    assert type(back["opt"]) is type(tree["opt"])
    np.testing.assert_array_equal(jax.random.key_data(back["key"]), jax.random.key_data(tree["key"]))
    with pytest.raises(ValueError, match="template expects"):
        train.load_checkpoint(path, {**tree, "params": {"w": jnp.zeros((3, 3))}})


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    x, y = problem(64)
    x[40] = 1e30  # finite, but the batch holding example 40 overflows the loss (no shuffling)
    m = model()
    params, state = m.init(jax.random.key(0), x)
    path = tmp_path / "ck.npz"
    good_x, good_y = x[:32], y[:32]
    train.fit(m, mse_logits, optim.sgd(0.01), params, state, (good_x, good_y), key=jax.random.key(0),
              epochs=1, batch_size=16, shuffle=False, checkpoint=path)
    before = open(path, "rb").read()
    with pytest.raises(FloatingPointError, match=r"became (nan|inf) at step 2 \(epoch 1, batch 2\)"):
        train.fit(m, mse_logits, optim.sgd(0.01), params, state, (x, y), key=jax.random.key(0),
                  epochs=3, batch_size=16, shuffle=False, checkpoint=path)
    assert open(path, "rb").read() == before


def test_early_stopping_restores_best():
    x, y = problem(64)
    m = model()
    params, state = m.init(jax.random.key(0), x)
    # A dev set with flipped labels: its loss rises as training fits the train set.
    es = train.EarlyStopping(monitor="dev_loss", patience=2)
    result = train.fit(m, mse_logits, optim.sgd(0.05), params, state, (x, y), key=jax.random.key(1),
                       epochs=50, batch_size=16, dev_data=(x, 1 - y), early_stopping=es)
    dev = [h["dev_loss"] for h in result.history]
    assert result.stopped_early and len(dev) == result.best_epoch + 3
    assert result.best_epoch == int(np.argmin(dev)) + 1
    ev = train.make_eval_step(m, mse_logits)
    np.testing.assert_allclose(train.evaluate(ev, result.params, result.state, jnp.asarray(x), jnp.asarray(1 - y))["loss"],
                               min(dev), rtol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        train.EarlyStopping(mode="up")


def test_fit_input_errors():
    x, y = problem(10)
    m = model()
    params, state = m.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="10 inputs but 9 targets"):
        train.fit(m, mse_logits, optim.sgd(0.1), params, state, (x, y[:9]), key=jax.random.key(0), epochs=1, batch_size=4)
    with pytest.raises(TypeError, match="expected a fnnet Module"):
        train.make_train_step(lambda p, x: x, mse_logits, optim.sgd(0.1))
