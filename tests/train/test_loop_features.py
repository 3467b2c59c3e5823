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


def reference_sgd(x, y, key, lr, batch_size, total_steps, drop_last, hook=None, start=0.0, shuffle=True,
                  maes=None):
    """SGD on ``y ~ x w + b`` written out: epoch e's order is
    ``permutation(fold_in(key, 2e), n)`` (``0 .. n-1`` without ``shuffle``); each step's
    mean absolute error before its update is appended to ``maes`` if given; the hook's key is
    ``fold_in(fold_in(fold_in(key, 2e + 1), i), HOOK_STREAM)``; weights start at ``start``.
    Returns (w, b, losses)."""
    n = len(x)
    per_epoch = n // batch_size if drop_last else -(-n // batch_size)
    w, b = np.full(3, start), start
    out = []
    for t in range(total_steps):
        e, i = divmod(t, per_epoch)
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, 2 * e), n)) if shuffle else np.arange(n)
        idx = perm[i * batch_size:(i + 1) * batch_size]
        xb, yb = x[idx], y[idx]
        if hook is not None:
            k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, 2 * e + 1), i),
                                   train.HOOK_STREAM)
            xb, yb = (np.asarray(a) for a in hook(jnp.asarray(xb), jnp.asarray(yb), k))
        r = xb @ w + b - yb
        out.append(np.mean(r ** 2))
        if maes is not None:
            maes.append(np.mean(np.abs(r)))
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


@pytest.mark.parametrize("compile_epochs", [False, True])
def test_in_order_batches_across_epochs_match_the_written_out_loop(compile_epochs, x64):
    """shuffle=False: step t takes batch t mod S in data order; with compile_epochs the
    periods (7 steps, S = 4) run as one scan across epoch boundaries."""
    x, y = linear_problem()
    key = jax.random.key(5)

    def hook(xb, yb, k):  # the step keys still follow the documented stream
        return xb + 0.1 * jax.random.normal(k, xb.shape, xb.dtype), yb

    m = linear_model()
    params, state = m.init(jax.random.key(0), x)
    result = train.fit(m, mse, optim.sgd(0.05), params, state, (x, y), key=key, steps=15, batch_size=5,
                       eval_every=7, shuffle=False, batch_hook=hook, compile_epochs=compile_epochs,
                       progress=False)
    w, b, ref_losses = reference_sgd(x, y, key, 0.05, 5, 15, False, hook=hook, shuffle=False)
    np.testing.assert_allclose(result.params["kernel"][:, 0], w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.params["bias"][0], b, rtol=1e-12, atol=1e-12)
    assert [h["step"] for h in result.history] == [7, 14, 15]
    for h, block in zip(result.history, (ref_losses[:7], ref_losses[7:14], ref_losses[14:])):
        np.testing.assert_allclose(h["train_loss"], block.mean(), rtol=1e-12)


def test_eval_at_start_and_train_metrics(x64):
    """The entry before the first step holds the initial params' loss on the whole
    training set and the dev loss, both in closed form; train_metrics=False skips the
    training-set metrics."""
    x, y = linear_problem()
    x_dev, y_dev = linear_problem(n=8, seed=1)
    m = linear_model()
    params, state = m.init(jax.random.key(0), x)
    params = {"kernel": jnp.full((3, 1), 0.5), "bias": jnp.full((1,), -0.25)}
    mae = lambda out, t: jnp.mean(jnp.abs(out[:, 0] - t))  # noqa: E731
    result = train.fit(m, mse, optim.sgd(0.05), params, state, (x, y), key=jax.random.key(1), epochs=2,
                       batch_size=10, dev_data=(x_dev, y_dev), metrics={"mae": mae}, eval_at_start=True,
                       progress=False)
    pred, pred_dev = x @ np.full(3, 0.5) - 0.25, x_dev @ np.full(3, 0.5) - 0.25
    # evaluated numbers come back as float32 (make_eval_step), hence rtol 1e-6
    first = result.history[0]
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    assert set(first) == set(result.history[1]) == {"epoch", "train_loss", "dev_loss", "dev_mae", "train_mae"}
    np.testing.assert_allclose(first["train_loss"], np.mean((pred - y) ** 2), rtol=1e-6)
    np.testing.assert_allclose(first["dev_loss"], np.mean((pred_dev - y_dev) ** 2), rtol=1e-6)
    np.testing.assert_allclose(first["train_mae"], np.mean(np.abs(pred - y)), rtol=1e-6)
    quiet = train.fit(m, mse, optim.sgd(0.05), params, state, (x, y), key=jax.random.key(1), epochs=2,
                      batch_size=10, dev_data=(x_dev, y_dev), metrics={"mae": mae}, train_metrics=False,
                      progress=False)
    assert set(quiet.history[0]) == {"epoch", "train_loss", "dev_loss", "dev_mae"}
    np.testing.assert_allclose(quiet.history[-1]["dev_mae"], result.history[-1]["dev_mae"], rtol=1e-6)
    pop = train.fit_population(m, mse, optim.sgd(0.05), jax.tree.map(lambda a: a[None], params), {},
                               (x, y), keys=jax.random.split(jax.random.key(2), 1), epochs=1, batch_size=10,
                               dev_data=(x_dev, y_dev), eval_at_start=True, progress=False)
    np.testing.assert_allclose(pop.history[0]["train_loss"][0], np.mean((pred - y) ** 2), rtol=1e-6)
    np.testing.assert_allclose(pop.history[0]["dev_loss"][0], np.mean((pred_dev - y_dev) ** 2), rtol=1e-6)


@pytest.mark.filterwarnings("ignore:fit. the training loss grew")
def test_on_nonfinite_stop_records_the_period_and_keeps_the_last_finite_variables(x64):
    """SGD at lr 1 on inputs of size 1e30 diverges: with on_nonfinite="stop" the history ends
    with the non-finite period and the variables are the written-out loop's after the
    last finite period."""
    x, y = linear_problem()
    x = x * 1e30  # the first update makes the weights ~1e30; the loss overflows a few steps on
    key = jax.random.key(6)
    m = linear_model()
    params, state = m.init(jax.random.key(0), x)
    with pytest.raises(FloatingPointError):
        train.fit(m, mse, optim.sgd(1.0), params, state, (x, y), key=key, steps=12, batch_size=5,
                  eval_every=2, progress=False)
    result = train.fit(m, mse, optim.sgd(1.0), params, state, (x, y), key=key, steps=12, batch_size=5,
                       eval_every=2, on_nonfinite="stop", progress=False)
    with np.errstate(all="ignore"):
        w, b, ref_losses = reference_sgd(x, y, key, 1.0, 5, 12, False)
    bad = int(np.argmax(~np.isfinite(ref_losses)))  # the first step with a non-finite loss
    assert result.diverged and len(result.history) == bad // 2 + 1
    assert not np.isfinite(result.history[-1]["train_loss"])
    assert all(np.isfinite(h["train_loss"]) for h in result.history[:-1])
    last = 2 * (bad // 2)  # the steps of the last finite period
    w_last, b_last, _ = reference_sgd(x, y, key, 1.0, 5, last, False)
    np.testing.assert_allclose(result.params["kernel"][:, 0], w_last, rtol=1e-12)
    np.testing.assert_allclose(result.params["bias"][0], b_last, rtol=1e-12)
    with pytest.raises(ValueError, match="on_nonfinite 'raise' or 'stop', got 'skip'"):
        train.fit(m, mse, optim.sgd(1.0), params, state, (x, y), key=key, steps=2, batch_size=5,
                  on_nonfinite="skip", progress=False)


def test_population_on_nonfinite_continue_leaves_the_other_members_alone(x64):
    """A member starting from an infinite weight goes nan; with on_nonfinite="continue"
    member 0 still equals the written-out loop."""
    x, y = linear_problem()
    m = linear_model()
    key_data = jax.random.key_data(jax.random.split(jax.random.key(9), 2))
    params = {"kernel": jnp.zeros((2, 3, 1)).at[1, 0, 0].set(jnp.inf), "bias": jnp.zeros((2, 1))}
    args = (m, mse, optim.sgd(0.05), params, {}, (x, y))
    with pytest.raises(FloatingPointError, match="member 1"):
        train.fit_population(*args, keys=jax.random.wrap_key_data(key_data), steps=4, batch_size=6,
                             progress=False)
    result = train.fit_population(*args, keys=jax.random.wrap_key_data(key_data), steps=4, batch_size=6,
                                  on_nonfinite="continue", progress=False)
    w, b, ref_losses = reference_sgd(x, y, jax.random.wrap_key_data(key_data[0]), 0.05, 6, 4, False)
    np.testing.assert_allclose(result.params["kernel"][0, :, 0], w, rtol=1e-12)
    np.testing.assert_allclose(result.history[0]["train_loss"][0], ref_losses.mean(), rtol=1e-12)
    assert not np.isfinite(result.history[0]["train_loss"][1])


@pytest.mark.parametrize("compile_epochs", [False, True])
def test_batch_metrics_average_each_steps_value_over_the_period(compile_epochs, x64):
    """batch_mae is the mean over the period of each step's mean absolute error on its
    batch before the update, as in the written-out loop."""
    x, y = linear_problem()
    key = jax.random.key(10)
    m = linear_model()
    params, state = m.init(jax.random.key(0), x)
    mae = lambda out, t: jnp.mean(jnp.abs(out[:, 0] - t))  # noqa: E731
    result = train.fit(m, mse, optim.sgd(0.05), params, state, (x, y), key=key, steps=10, batch_size=6,
                       eval_every=4, batch_metrics={"mae": mae}, compile_epochs=compile_epochs,
                       progress=False)
    maes = []
    reference_sgd(x, y, key, 0.05, 6, 10, False, maes=maes)
    assert [h["step"] for h in result.history] == [4, 8, 10]
    for h, block in zip(result.history, (maes[:4], maes[4:8], maes[8:])):
        np.testing.assert_allclose(h["batch_mae"], np.mean(block), rtol=1e-12)
    keys = jax.random.split(jax.random.key(11), 2)
    pop = train.fit_population(m, mse, optim.sgd(0.05), jax.tree.map(lambda a: jnp.stack([a, a]), params),
                               {}, (x, y), keys=keys, steps=10, batch_size=6, eval_every=4,
                               batch_metrics={"mae": mae}, progress=False)
    for member in range(2):
        maes = []
        reference_sgd(x, y, keys[member], 0.05, 6, 10, False, maes=maes)
        np.testing.assert_allclose(pop.history[0]["batch_mae"][member], np.mean(maes[:4]), rtol=1e-12)
    with pytest.raises(ValueError, match="eval_at_start has no batches"):
        train.fit(m, mse, optim.sgd(0.05), params, state, (x, y), key=key, steps=2, batch_size=6,
                  batch_metrics={"mae": mae}, eval_at_start=True, progress=False)


def two_part_inputs(x):
    """The inputs as a pytree: ``(first two features, {"rest": last feature})``."""
    return (x[:, :2], {"rest": x[:, 2:]})


def two_part_model():
    """The linear model on a pytree input, joining its parts first."""
    inner = linear_model()
    join = lambda x: jnp.concatenate([x[0], x[1]["rest"]], axis=1)  # noqa: E731
    return nn.Module(lambda key, x: inner.init(key, join(x)),
                     lambda params, state, x, *, key=None, train=False: inner.apply(params, state, join(x)),
                     name="two_part_linear")


@pytest.mark.parametrize("compile_epochs,shuffle", [(False, True), (True, True), (True, False)])
def test_pytree_inputs_and_targets_match_the_written_out_loop(compile_epochs, shuffle, x64):
    x, y = linear_problem()
    key = jax.random.key(5)
    params, state = linear_model().init(jax.random.key(0), x)
    loss = lambda out, target: mse(out, target["value"])  # noqa: E731
    result = train.fit(two_part_model(), loss, optim.sgd(0.05), params, state, (two_part_inputs(x), {"value": y}),
                       key=key, steps=9, batch_size=6, eval_every=3, shuffle=shuffle,
                       compile_epochs=compile_epochs, dev_data=(two_part_inputs(x[:7]), {"value": y[:7]}),
                       progress=False)
    w, b, ref_losses = reference_sgd(x, y, key, 0.05, 6, 9, False, shuffle=shuffle)
    np.testing.assert_allclose(result.params["kernel"][:, 0], w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.params["bias"][0], b, rtol=1e-12, atol=1e-12)
    for h, block in zip(result.history, (ref_losses[:3], ref_losses[3:6], ref_losses[6:])):
        np.testing.assert_allclose(h["train_loss"], block.mean(), rtol=1e-12)
    r = x[:7] @ w + b - y[:7]  # evaluation metrics are float32 (make_eval_step)
    np.testing.assert_allclose(result.history[-1]["dev_loss"], np.mean(r ** 2), rtol=1e-6)


def test_pytree_inputs_in_a_population_match_the_written_out_loop(x64):
    x, y = linear_problem()
    keys = jax.random.split(jax.random.key(6), 2)
    params, state = jax.vmap(lambda k: linear_model().init(k, x))(jax.random.split(jax.random.key(0), 2))
    result = train.fit_population(two_part_model(), mse, optim.sgd(0.05), params, state, (two_part_inputs(x), y),
                                  keys=keys, epochs=2, batch_size=6, progress=False)
    for m in range(2):
        w, b, _ = reference_sgd(x, y, keys[m], 0.05, 6, 8, False)
        np.testing.assert_allclose(result.params["kernel"][m, :, 0], w, rtol=1e-12, atol=1e-12)


def test_pytree_inputs_with_different_lengths_are_named():
    x, y = linear_problem()
    params, state = linear_model().init(jax.random.key(0), x)
    bad = (x[:, :2], {"rest": x[:-1, 2:]})
    with pytest.raises(ValueError, match=r"train_data inputs must have the same number of examples, got "
                                         r"input\[0\] \(20, 2\), input\[1\]\['rest'\] \(19, 1\)"):
        train.fit(two_part_model(), mse, optim.sgd(0.05), params, state, (bad, y), key=jax.random.key(1),
                  epochs=1, batch_size=5, progress=False)
    with pytest.raises(TypeError, match="expected train_data as a pair"):
        train.fit(two_part_model(), mse, optim.sgd(0.05), params, state, (x, y, y), key=jax.random.key(1),
                  epochs=1, batch_size=5, progress=False)
