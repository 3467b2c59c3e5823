"""The protocol itself: apply_updates, chain, masks, clipping and global norm against
NumPy, interoperability with optax, errors, and a step that compiles once."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnnet import optim


def tree(rng):
    return {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32),
            "b": jnp.asarray(rng.normal(size=(2,)), jnp.float32),
            "nested": [jnp.asarray(rng.normal(size=(4,)), jnp.float32)]}


def test_apply_updates_adds_and_keeps_dtype(rng):
    params = {"a": jnp.ones(3, jnp.bfloat16), "b": jnp.zeros((2,), jnp.float32)}
    updates = {"a": jnp.full(3, 0.5, jnp.float32), "b": jnp.asarray([1.0, -2.0], jnp.float32)}
    out = optim.apply_updates(params, updates)
    assert out["a"].dtype == jnp.bfloat16 and out["b"].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out["a"], np.float32), 1.5)
    np.testing.assert_allclose(np.asarray(out["b"]), [1.0, -2.0])


def test_global_norm_and_clipping_against_numpy(rng):
    g = tree(rng)
    flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)])
    norm = np.sqrt(np.sum(flat ** 2))
    assert float(optim.global_norm(g)) == pytest.approx(norm, rel=1e-6)
    for max_norm in (0.5 * norm, 2 * norm):
        clipped, _ = optim.clip_by_global_norm(max_norm).update(g, optim.EmptyState())
        factor = min(1.0, max_norm / norm)
        for c, x in zip(jax.tree.leaves(clipped), jax.tree.leaves(g)):
            np.testing.assert_allclose(np.asarray(c), np.asarray(x) * factor, rtol=1e-6)
    clipped, _ = optim.clip(0.3).update(g, optim.EmptyState())
    for c, x in zip(jax.tree.leaves(clipped), jax.tree.leaves(g)):
        np.testing.assert_array_equal(np.asarray(c), np.minimum(np.maximum(np.asarray(x), -0.3), 0.3))


def test_sgd_momentum_against_numpy_loop(rng):
    """The heavy-ball recursion m = g + mu m, w -= lr m (and Nesterov's g + mu m) by hand."""
    w0 = rng.normal(size=5)
    a = rng.uniform(0.5, 2.0, size=5)
    for nesterov in (False, True):
        opt = optim.sgd(0.1, momentum=0.9, nesterov=nesterov)
        w = jnp.asarray(w0)
        state, update = opt.init(w), jax.jit(opt.update)
        w_ref, m = w0.copy(), np.zeros(5)
        for _ in range(30):
            u, state = update(jnp.asarray(a) * w, state, w)
            w = optim.apply_updates(w, u)
            g = a * w_ref
            m = g + 0.9 * m
            w_ref = w_ref - 0.1 * (g + 0.9 * m if nesterov else m)
        np.testing.assert_allclose(np.asarray(w), w_ref, rtol=1e-10)


def test_adam_against_numpy_loop(rng):
    """Kingma & Ba (2015), Algorithm 1, written out in NumPy."""
    w0, a = rng.normal(size=4), rng.uniform(0.5, 2.0, size=4)
    opt = optim.adam(0.05)
    w = jnp.asarray(w0)
    state, update = opt.init(w), jax.jit(opt.update)
    w_ref, m, v = w0.copy(), np.zeros(4), np.zeros(4)
    for t in range(1, 41):
        u, state = update(jnp.asarray(a) * w, state, w)
        w = optim.apply_updates(w, u)
        g = a * w_ref
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g ** 2
        w_ref = w_ref - 0.05 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(np.asarray(w), w_ref, rtol=1e-9)


@pytest.fixture(autouse=True)
def _float64_for_numpy_loops(request):
    if request.node.name.startswith(("test_sgd_momentum", "test_adam_against")):
        with jax.enable_x64(True):
            yield
    else:
        yield


def test_chain_state_is_a_tuple_and_mixes_with_optax(rng):
    params = tree(rng)
    opt = optim.chain(optax.clip(1.0), optim.scale_by_adam(), optim.scale(-0.1))
    state = opt.init(params)
    assert isinstance(state, tuple) and len(state) == 3
    assert isinstance(state[1], optim.ScaleByAdamState)
    assert jax.tree.structure(state[1].mu) == jax.tree.structure(params)
    updates, state = opt.update(params, state, params)
    assert jax.tree.structure(updates) == jax.tree.structure(params)
    # optax's chain takes fnnet pieces and optax.apply_updates takes fnnet updates
    opt2 = optax.chain(optim.clip(1.0), optax.scale_by_adam(), optax.scale(-0.1))
    updates2, _ = opt2.update(params, opt2.init(params), params)
    chex.assert_trees_all_close(updates, updates2, rtol=1e-6)


def test_chain_passes_extra_args_only_to_transforms_that_take_them(rng):
    params = tree(rng)
    seen = {}

    def update(updates, state, params=None, **extra):
        seen.update(extra)
        return updates, state

    needs_value = optim.GradientTransformation(lambda p: (), update)
    opt = optim.chain(optim.sgd(0.1), needs_value)
    opt.update(params, opt.init(params), params, value=jnp.asarray(2.0))
    assert float(seen["value"]) == 2.0


def test_masked_weight_decay_touches_only_selected_leaves(rng):
    params = tree(rng)
    zeros = jax.tree.map(jnp.zeros_like, params)
    mask_fn = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)  # noqa: E731
    prefix = {"w": True, "b": False, "nested": False}
    for mask in (mask_fn, prefix):
        opt = optim.add_decayed_weights(0.5, mask=mask)
        out, _ = opt.update(zeros, opt.init(params), params)
        np.testing.assert_allclose(np.asarray(out["w"]), 0.5 * np.asarray(params["w"]))
        np.testing.assert_array_equal(np.asarray(out["b"]), 0.0)
        np.testing.assert_array_equal(np.asarray(out["nested"][0]), 0.0)


def test_vmap_over_hyperparameters(rng):
    """Traced learning rates and momenta work (random search trains many configs at once)."""
    w0 = jnp.asarray(rng.normal(size=3), jnp.float32)

    def final(lr, beta):
        opt = optim.sgd(lr, momentum=beta)
        w, s = w0, opt.init(w0)
        for _ in range(5):
            u, s = opt.update(w, s, w)
            w = optim.apply_updates(w, u)
        return w

    lrs, betas = jnp.asarray([0.1, 0.2]), jnp.asarray([0.0, 0.9])
    batched = jax.vmap(final)(lrs, betas)
    for i in range(2):
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(final(float(lrs[i]), float(betas[i]))),
                                   rtol=1e-6)


def test_step_compiles_once(rng):
    params = tree(rng)
    opt = optim.adamw(optim.exponential_decay(1e-2, 10, 0.5), weight_decay=1e-3)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(p, s):
        g = jax.tree.map(lambda x: 2 * x, p)
        u, s = opt.update(g, s, p)
        return optim.apply_updates(p, u), s

    state = opt.init(params)
    for _ in range(3):
        params, state = step(params, state)
    assert int(state[0].count) == 3


def test_errors_name_the_problem(rng):
    params = tree(rng)
    with pytest.raises(TypeError, match="chain"):
        optim.chain(optim.sgd(0.1), "adam")
    opt = optim.add_decayed_weights(1e-2)
    with pytest.raises(ValueError, match="params"):
        opt.update(params, opt.init(params))
    adam = optim.adam(1e-3)
    with pytest.raises(ValueError, match="init"):
        adam.update(params, (), params)
    with pytest.raises(TypeError, match="schedule"):
        optim.scale_by_schedule(0.1)


def test_saturating_counter():
    top = jnp.asarray(np.iinfo(np.int32).max, jnp.int32)
    assert int(optim.safe_increment(top)) == np.iinfo(np.int32).max
    assert int(optim.safe_increment(jnp.asarray(4, jnp.int32))) == 5


def test_flatten_matches_optax_flatten_and_the_unflattened_transform(rng):
    """Clip + Adagrad on the raveled params: the same steps as optax.flatten of optax's
    pieces, and bitwise the steps of the per-leaf transform (both are elementwise)."""
    params = tree(rng)
    inner = lambda: optim.chain(optim.clip(0.5), optim.adagrad(0.1, initial_accumulator_value=0.0))  # noqa: E731
    fnnet_flat, per_leaf = optim.flatten(inner()), inner()
    reference = optax.flatten(optax.chain(optax.clip(0.5), optax.adagrad(0.1, initial_accumulator_value=0.0)))
    states = [fnnet_flat.init(params), per_leaf.init(params), reference.init(params)]
    assert jax.tree.leaves(states[0])[0].shape == (12,)      # one vector: 6 + 2 + 4 entries
    ps = [params] * 3
    for step in range(20):
        grads = jax.tree.map(lambda x: jnp.sin(3.0 * x + step), ps[0])
        for k, opt in enumerate((fnnet_flat, per_leaf, reference)):
            u, states[k] = opt.update(grads, states[k], ps[k])
            ps[k] = optim.apply_updates(ps[k], u)
    chex.assert_trees_all_equal(ps[0], ps[1])
    chex.assert_trees_all_close(ps[0], ps[2], rtol=1e-6, atol=1e-7)
    assert jax.tree.structure(ps[0]) == jax.tree.structure(params)


def test_flatten_rejects_a_non_transform():
    with pytest.raises(TypeError, match="flatten"):
        optim.flatten(lambda g: g)
