"""fit's budget, evaluation periods, batch hook, compiled epochs and guards, against a
hand-written SGD loop that follows the documented key stream."""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import losses, nn, optim, train


def linear_problem(n=20, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=n)
    return x, y


def mse(out, y):
    return jnp.mean((out[:, 0] - y) ** 2)


def reference_sgd(x, y, key, lr, batch_size, total_steps, drop_last, hook=None, start=0.0):
    """SGD on ``y ~ x w + b`` written out: epoch e's order is
    ``permutation(fold_in(key, 2e), n)``; the hook's key is
    ``fold_in(fold_in(fold_in(key, 2e + 1), i), HOOK_STREAM)``; weights start at ``start``.
    Returns (w, b, losses)."""
    n = len(x)
    per_epoch = n // batch_size if drop_last else -(-n // batch_size)
    w, b = np.full(3, start), start
    out = []
    for t in range(total_steps):
        e, i = divmod(t, per_epoch)
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, 2 * e), n))
        idx = perm[i * batch_size:(i + 1) * batch_size]
        xb, yb = x[idx], y[idx]
        if hook is not None:
            k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, 2 * e + 1), i),
                                   train.HOOK_STREAM)
            xb, yb = (np.asarray(a) for a in hook(jnp.asarray(xb), jnp.asarray(yb), k))
        r = xb @ w + b - yb
        out.append(np.mean(r ** 2))
        w, b = w - lr * 2 * xb.T @ r / len(r), b - lr * 2 * np.mean(r)
    return w, b, np.array(out)


def linear_model():
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)  # float64 under the x64 fixture
    return nn.dense(1, kernel_init=lambda k, s, d: jnp.zeros(s, d), dtype=dtype)


@pytest.mark.parametrize("compile_epochs", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_steps_budget_and_eval_every_match_the_written_out_loop(compile_epochs, drop_last, x64):
    x, y = linear_problem()
    key = jax.random.key(3)
    m = linear_model()
    params, state = m.init(jax.random.key(0), x)
    result = train.fit(m, mse, optim.sgd(0.05), params, state, (x, y), key=key, steps=11,
                       batch_size=6, eval_every=4, drop_last=drop_last, compile_epochs=compile_epochs,
                       progress=False)
    w, b, ref_losses = reference_sgd(x, y, key, 0.05, 6, 11, drop_last)
    np.testing.assert_allclose(result.params["kernel"][:, 0], w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.params["bias"][0], b, rtol=1e-12, atol=1e-12)
    per_epoch = 3 if drop_last else 4
    assert [h["step"] for h in result.history] == [4, 8, 11]
    assert [h["epoch"] for h in result.history] == [-(-s // per_epoch) for s in (4, 8, 11)]
    for h, block in zip(result.history, (ref_losses[:4], ref_losses[4:8], ref_losses[8:])):
        np.testing.assert_allclose(h["train_loss"], block.mean(), rtol=1e-12)


def test_batch_hook_runs_inside_the_step_with_its_own_key(x64):
    x, y = linear_problem()
    key = jax.random.key(4)

    def hook(xb, yb, k):  # noise on the inputs, from the hook's key
        return xb + 0.1 * jax.random.normal(k, xb.shape, xb.dtype), yb

    m = linear_model()
    params, state = m.init(jax.random.key(0), x)
    for compile_epochs in (False, True):
        result = train.fit(m, mse, optim.sgd(0.05), params, state, (x, y), key=key, epochs=2,
                           batch_size=5, batch_hook=hook, compile_epochs=compile_epochs, progress=False)
        w, b, _ = reference_sgd(x, y, key, 0.05, 5, 8, False, hook=hook)
        np.testing.assert_allclose(result.params["kernel"][:, 0], w, rtol=1e-12, atol=1e-12)


def test_resume_mid_epoch_with_eval_every_is_bit_identical(tmp_path):
    x, y = linear_problem(40)
    x, y = x.astype(np.float32), y.astype(np.float32)
    m = nn.serial(nn.dense(4), nn.relu, nn.dropout(0.2), nn.dense(1))
    params, state = m.init(jax.random.key(0), x)
    kw = dict(key=jax.random.key(1), batch_size=8, eval_every=3, dev_data=(x[:10], y[:10]),
              progress=False)
    whole = train.fit(m, mse, optim.adam(0.01), params, state, (x, y), steps=14, **kw)
    path = tmp_path / "run.ckpt"
    first = train.fit(m, mse, optim.adam(0.01), params, state, (x, y), steps=7, checkpoint=path, **kw)
    assert [h["step"] for h in first.history] == [3, 6, 7]
    resumed = train.fit(m, mse, optim.adam(0.01), params, state, (x, y), steps=14, checkpoint=path,
                        resume=True, **kw)
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(whole.params)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    # The budget ends a period early at step 7, so the resumed run's periods restart there.
    assert [h["step"] for h in resumed.history] == [3, 6, 7, 9, 12, 14]
    assert [h["step"] for h in whole.history] == [3, 6, 9, 12, 14]


def test_budget_and_argument_errors():
    x, y = linear_problem()
    m = linear_model()
    params, state = m.init(jax.random.key(0), x)
    fit = lambda **kw: train.fit(m, mse, optim.sgd(0.1), params, state, (x, y),
                                 key=jax.random.key(0), batch_size=4, progress=False, **kw)
    with pytest.raises(ValueError, match="exactly one budget, epochs or steps; got epochs=None, steps=None"):
        fit()
    with pytest.raises(ValueError, match="exactly one budget"):
        fit(epochs=1, steps=3)
    with pytest.raises(ValueError, match="expected steps as a positive int, got -5"):
        fit(steps=-5)
    with pytest.raises(ValueError, match="expected eval_every as a positive int"):
        fit(epochs=1, eval_every=0)
    with pytest.raises(ValueError, match="fit: expected batch_size as a positive int, got 2.0"):
        train.fit(m, mse, optim.sgd(0.1), params, state, (x, y), key=jax.random.key(0), batch_size=2.0,
                  epochs=1, progress=False)


def classifier_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    return x, y


def test_data_is_validated_before_the_first_step():
    x, y = classifier_problem()
    m = nn.serial(nn.dense(3))
    params, state = m.init(jax.random.key(0), x)
    ce = losses.softmax_cross_entropy_with_integer_labels
    fit = lambda data, dev=None: train.fit(m, ce, optim.sgd(0.1), params, state, data, dev_data=dev,
                                           key=jax.random.key(0), epochs=1, batch_size=8, progress=False)
    bad_y = y.copy()
    bad_y[17] = 3
    with pytest.raises(ValueError, match=r"train_data label 17 is 3, outside \[0, 3\) for a model giving 3 scores"):
        fit((x, bad_y))
    bad_y[17], bad_y[4] = 1, -1
    with pytest.raises(ValueError, match=r"train_data label 4 is -1"):
        fit((x, bad_y))
    bad_x = x.copy()
    bad_x[9, 2] = np.inf
    with pytest.raises(ValueError, match=r"dev_data input 9 holds a non-finite value \(inf\)"):
        fit((x, y), (bad_x, y))
    with pytest.raises(ValueError, match="train_data has 30 inputs but 29 targets"):
        fit((x, y[:29]))


def test_non_finite_dev_metric_stops_with_a_clear_error():
    x, y = classifier_problem()
    m = nn.serial(nn.dense(2))
    params, state = m.init(jax.random.key(0), x)

    def log_of_mean_label(out, t):  # nan when a dev batch has no positive label
        return jnp.log(jnp.mean(t.astype(jnp.float32)) - 1e-3)

    with pytest.raises(FloatingPointError, match=r"dev_odd became nan at epoch 1 although the training"):
        train.fit(m, losses.softmax_cross_entropy_with_integer_labels, optim.sgd(0.1), params, state,
                  (x, y), dev_data=(x, np.zeros_like(y)), metrics={"odd": log_of_mean_label},
                  key=jax.random.key(0), epochs=2, batch_size=8, progress=False)


def test_a_growing_loss_warns_that_the_learning_rate_is_too_high():
    x, y = linear_problem()
    m = linear_model()
    params, state = m.init(jax.random.key(0), x)
    with pytest.warns(RuntimeWarning, match="the learning rate is likely too high"):
        train.fit(m, mse, optim.sgd(2.0), params, state, (x, y), key=jax.random.key(0), epochs=4,
                  batch_size=20, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train.fit(m, mse, optim.sgd(0.05), params, state, (x, y), key=jax.random.key(0), epochs=3,
                  batch_size=20, progress=False)


def test_log_takes_several_callbacks_and_progress_is_off_when_not_a_terminal(capsys):
    x, y = linear_problem()
    m = linear_model()
    params, state = m.init(jax.random.key(0), x)
    seen_a, seen_b = [], []
    train.fit(m, mse, optim.sgd(0.05), params, state, (x, y), key=jax.random.key(0), epochs=2,
              batch_size=10, log=[seen_a.append, lambda e: seen_b.append(e["epoch"])])
    assert [e["epoch"] for e in seen_a] == seen_b == [1, 2]
    assert "fit:" not in capsys.readouterr().err  # stderr is captured, not a terminal: no bar


def test_population_members_follow_their_own_key_streams(x64):
    """Each member of ``fit_population`` equals the written-out SGD loop with its key."""
    x, y = linear_problem()
    m = linear_model()
    key_data = jax.random.key_data(jax.random.split(jax.random.key(7), 3))
    keys = jax.random.wrap_key_data(key_data)
    params, state = jax.vmap(lambda k: m.init(k, x))(jax.random.split(jax.random.key(8), 3))
    params = jax.tree.map(lambda a: a + jnp.arange(3.0).reshape((3,) + (1,) * (a.ndim - 1)), params)
    result = train.fit_population(m, mse, optim.sgd(0.05), params, state, (x, y), keys=keys, steps=9,
                                  batch_size=6, eval_every=5, progress=False)
    assert [h["step"] for h in result.history] == [5, 9]
    for member in range(3):
        w, b, ref_losses = reference_sgd(x, y, jax.random.wrap_key_data(key_data[member]), 0.05, 6, 9,
                                         False, start=float(member))
        np.testing.assert_allclose(result.params["kernel"][member, :, 0], w, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(result.params["bias"][member, 0], b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(result.history[1]["train_loss"][member], ref_losses[5:].mean(), rtol=1e-12)
    with pytest.raises(ValueError, match=r"lead with the population axis of 2 \(the keys\), got shape \(3, 1\)"):
        train.fit_population(m, mse, optim.sgd(0.05), params, state, (x, y),
                             keys=jax.random.wrap_key_data(key_data[:2]), steps=2,
                             batch_size=6, progress=False)
