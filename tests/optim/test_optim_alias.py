"""Every fnnet optimizer, clipping transform and building block beside its optax twin.

Both run 200 steps under one ``jax.jit`` (a ``lax.scan``) on a random nested pytree,
minimising a quadratic with per-element curvature plus a fixed random gradient
noise per step, in float32 and float64. The parameter trajectories must agree at
every step (relative error ||w_fnnet - w_optax|| / ||w_optax|| below 1e-5 in float32,
1e-12 in float64), and so must the final optimizer states.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnnet import optim

STEPS = 200
TOL = {"float32": 1e-5, "float64": 1e-12}


def random_tree(rng, dtype):
    """A nested pytree (dicts, a list, a tuple) with leaves of rank 0 to 3."""
    def a(*shape):
        return jnp.asarray(rng.normal(size=shape), dtype)
    return {"dense": {"kernel": a(4, 3), "bias": a(3)},
            "blocks": [({"w": a(2, 2, 2)},)],
            "scalar": a()}


def problem(dtype, seed=0):
    """Initial params, targets, curvatures and a (STEPS, ...) noise tree."""
    rng = np.random.default_rng(seed)
    params = random_tree(rng, dtype)
    target = random_tree(rng, dtype)
    curvature = jax.tree.map(lambda x: jnp.asarray(rng.uniform(0.5, 4.0, x.shape), dtype), params)
    noise = jax.tree.map(lambda x: jnp.asarray(0.3 * rng.normal(size=(STEPS,) + x.shape), dtype), params)
    return params, target, curvature, noise


def trajectory(tx, apply_updates, dtype):
    """Params after each of STEPS updates, flattened to (STEPS, n_params), and the final state."""
    params, target, curvature, noise = problem(dtype)

    def step(carry, noise_t):
        p, s = carry
        g = jax.tree.map(lambda w, t, c, n: c * (w - t) + n, p, target, curvature, noise_t)
        u, s = tx.update(g, s, p)
        p = apply_updates(p, u)
        return (p, s), jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(p)])

    (_, state), path = jax.lax.scan(step, (params, tx.init(params)), noise)
    return path, state


def run_all(dtype):
    """Every case with fnnet and with optax, all in one compiled program (one compile per dtype)."""
    with jax.enable_x64(dtype == "float64"):
        @jax.jit
        def everything():
            return {name: (trajectory(make(optim), optim.apply_updates, dtype),
                           trajectory(make(optax), optax.apply_updates, dtype)) for name, make in CASES}
        return jax.device_get(everything())


def compare(name, ours, theirs, dtype):
    """An error message, or None when the trajectories and final states agree."""
    (path_f, state_f), (path_o, state_o) = ours, theirs
    if path_f.dtype != np.dtype(dtype) or path_o.dtype != np.dtype(dtype):
        return f"{name}: dtypes {path_f.dtype} / {path_o.dtype}, expected {dtype}"
    if not np.all(np.isfinite(path_o)) or np.abs(path_o[-1] - path_o[0]).max() < 1e-3:
        return f"{name}: the optax run is not a useful reference (non-finite or not moving)"
    err = np.linalg.norm(path_f - path_o, axis=1) / np.linalg.norm(path_o, axis=1)
    if not err.max() < TOL[dtype]:
        return f"{name}: relative error {err.max():.2e} at step {err.argmax()}"
    leaves_f, leaves_o = jax.tree.leaves(state_f), jax.tree.leaves(state_o)
    if len(leaves_f) != len(leaves_o):
        return f"{name}: {len(leaves_f)} state leaves, optax has {len(leaves_o)}"
    for i, (lf, lo) in enumerate(zip(leaves_f, leaves_o)):
        if lf.shape != lo.shape or lf.dtype != lo.dtype:
            return f"{name}: state leaf {i} is {lf.dtype}{lf.shape}, optax's {lo.dtype}{lo.shape}"
        scale = max(1.0, float(np.abs(np.asarray(lo, np.float64)).max()))
        if np.abs(np.asarray(lf, np.float64) - np.asarray(lo, np.float64)).max() > 100 * TOL[dtype] * scale:
            return f"{name}: final state leaf {i} differs"
    return None


def decay_mask(params):
    return jax.tree.map(lambda x: x.ndim > 1, params)


def prefix_mask(params):
    return {"dense": {"kernel": True, "bias": False}, "blocks": False, "scalar": True}


# (id, factory of a library) -- each factory builds the same optimizer from fnnet.optim or optax.
CASES = [
    ("sgd", lambda lib: lib.sgd(0.05)),
    ("sgd-momentum", lambda lib: lib.sgd(0.05, momentum=0.9)),
    ("sgd-nesterov", lambda lib: lib.sgd(0.05, momentum=0.9, nesterov=True)),
    ("sgd-schedule", lambda lib: lib.sgd(lib.cosine_decay_schedule(0.1, 150, alpha=0.1), momentum=0.5)),
    ("rmsprop", lambda lib: lib.rmsprop(0.01)),
    ("rmsprop-eps-outside", lambda lib: lib.rmsprop(0.01, decay=0.99, eps=1e-3, eps_in_sqrt=False)),
    ("rmsprop-initial-scale", lambda lib: lib.rmsprop(0.01, initial_scale=1.0)),
    ("rmsprop-centered", lambda lib: lib.rmsprop(0.01, centered=True, eps=1e-4)),
    ("rmsprop-momentum", lambda lib: lib.rmsprop(0.003, momentum=0.9)),
    ("rmsprop-nesterov", lambda lib: lib.rmsprop(0.003, momentum=0.9, nesterov=True)),
    ("rmsprop-bias-correction", lambda lib: lib.rmsprop(0.01, bias_correction=True)),
    ("rmsprop-centered-eps-outside", lambda lib: lib.rmsprop(0.01, centered=True, eps_in_sqrt=False, eps=1e-4)),
    ("rmsprop-centered-all", lambda lib: lib.rmsprop(
        lib.exponential_decay(0.01, 50, 0.5), centered=True, bias_correction=True, momentum=0.5,
        nesterov=True, eps=1e-4)),
    ("adam", lambda lib: lib.adam(0.01)),
    ("adam-args", lambda lib: lib.adam(0.02, b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-8)),
    ("adam-nesterov", lambda lib: lib.adam(0.01, nesterov=True)),
    ("adam-schedule", lambda lib: lib.adam(lib.warmup_cosine_decay_schedule(0.0, 0.05, 20, 200, 1e-3))),
    ("adam-mu-dtype", lambda lib: lib.adam(0.01, mu_dtype=jnp.float32)),
    ("nadam", lambda lib: lib.nadam(0.01)),
    ("adamw", lambda lib: lib.adamw(0.01)),
    ("adamw-mask-fn", lambda lib: lib.adamw(0.01, weight_decay=0.1, mask=decay_mask)),
    ("adamw-mask-tree", lambda lib: lib.adamw(0.01, weight_decay=0.1, mask=prefix_mask)),
    ("adamw-nesterov-schedule", lambda lib: lib.adamw(
        0.01, weight_decay=lib.linear_schedule(0.2, 0.0, 100), nesterov=True)),
    ("nadamw", lambda lib: lib.nadamw(0.01, weight_decay=0.05)),
    ("adamax", lambda lib: lib.adamax(0.01)),
    ("adamax-args", lambda lib: lib.adamax(0.02, b1=0.5, b2=0.9, eps=1e-4)),
    ("adagrad", lambda lib: lib.adagrad(0.1)),
    ("adagrad-paper", lambda lib: lib.adagrad(0.1, initial_accumulator_value=0.0, eps=1e-10)),
    ("adadelta", lambda lib: lib.adadelta(1.0)),
    ("adadelta-no-lr", lambda lib: lib.adadelta()),
    ("adadelta-args", lambda lib: lib.adadelta(2.0, rho=0.95, eps=1e-4, weight_decay=0.01,
                                               weight_decay_mask=decay_mask)),
    # clipping and building blocks
    ("clip", lambda lib: lib.chain(lib.clip(0.2), lib.sgd(0.05, momentum=0.9))),
    ("clip-by-global-norm", lambda lib: lib.chain(lib.clip_by_global_norm(1.0), lib.adam(0.02))),
    ("blocks", lambda lib: lib.chain(lib.add_decayed_weights(0.01, mask=decay_mask),
                                     lib.scale_by_schedule(lib.piecewise_constant_schedule(1.0, {50: 0.5})),
                                     lib.scale(-0.05))),
    # an optax transform in a fnnet chain against a fnnet transform in an optax chain
    ("mixed-chain", lambda lib: (
        optim.chain(optax.clip_by_global_norm(2.0), optim.scale_by_adam(), optax.scale(-0.01)) if lib is optim
        else optax.chain(optim.clip_by_global_norm(2.0), optax.scale_by_adam(), optim.scale(-0.01)))),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matches_optax(dtype):
    results = run_all(dtype)
    failures = [msg for name, (ours, theirs) in results.items() if (msg := compare(name, ours, theirs, dtype))]
    assert not failures, "\n".join(failures)


def test_defaults_match_optax():
    """Same keyword arguments and defaults as optax, name by name."""
    import inspect
    for name in ["sgd", "rmsprop", "adam", "nadam", "adamw", "nadamw", "adamax", "adagrad", "adadelta",
                 "trace", "scale_by_adam", "scale_by_rms", "scale_by_stddev", "scale_by_rss",
                 "scale_by_adamax", "scale_by_adadelta", "add_decayed_weights", "clip", "clip_by_global_norm",
                 "scale", "scale_by_schedule"]:
        ours = inspect.signature(getattr(optim, name)).parameters
        theirs = inspect.signature(getattr(optax, name)).parameters
        assert list(ours) == list(theirs), name
        for arg in ours:
            assert ours[arg].default == theirs[arg].default, (name, arg)
            assert ours[arg].kind == theirs[arg].kind, (name, arg)
