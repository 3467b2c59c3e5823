"""On 8 simulated CPU devices: the shard_map gradient trap, sharded checkpoints across
mesh shapes, and errors that need more than one device. ``python _worker8_misc.py OUT.npz``
saves arrays to OUT.npz and facts (shardings, error messages) to OUT.npz.json.
"""
import json
import os
import sys

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_debug_key_reuse", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _programs as programs  # noqa: E402
import fnnet.parallel as par  # noqa: E402
from fnnet.train import fit  # noqa: E402

arrays, facts = {}, {}


def shard_map_gradients():
    """Per-device program under shard_map (check_vma on, the default): batch norm with
    axis_name="data" and two ways to get the gradient of replicated params."""
    model = programs.bn_mlp(axis_name="data")
    params, state = model.init(jax.random.key(1), jax.ShapeDtypeStruct((programs.BATCH, 8), jnp.float32))
    x, y = programs.data("mlp")
    loss_fn = programs.setup("mlp")[1]
    mesh = par.make_mesh(8)

    def local_loss(params, state, x, y):
        out, new_state = model.apply(params, state, x, train=True)
        return loss_fn(out, y), new_state

    def correct(params, state, x, y):  # the loss of the global batch, then its gradient
        def global_loss(params):
            loss, new_state = local_loss(params, state, x, y)
            return jax.lax.pmean(loss, "data"), new_state
        return jax.grad(global_loss, has_aux=True)(params)

    def pmap_recipe(params, state, x, y):  # the pmap habit: local gradient, then pmean
        grads, new_state = jax.grad(local_loss, has_aux=True)(params, state, x, y)
        return jax.lax.pmean(grads, "data"), new_state

    for name, f in (("correct", correct), ("pmap_recipe", pmap_recipe)):
        g, s = jax.jit(jax.shard_map(f, mesh=mesh, in_specs=(P(), P(), P("data"), P("data")),
                                     out_specs=(P(), P())))(params, state, x, y)
        arrays.update(programs.flat(g, f"shard_map_{name}_grads"))
        arrays.update(programs.flat(s, f"shard_map_{name}_state"))


def checkpoints(tmp):
    """Train 2 steps data parallel on 8 devices, save; restore fully sharded on 4 devices
    and train step 3; save that; restore tensor parallel on a 2x2 mesh."""
    model, loss_fn, optimizer, params, state, opt_state = programs.setup("mlp")
    x, y = programs.data("mlp")
    key = jax.random.key(7)
    dp = par.data_parallel(par.make_mesh(8))
    step = par.make_sharded_train_step(model, loss_fn, optimizer, dp, params, state, opt_state)
    p, s, o = par.shard_state(dp, params, state, opt_state)
    for i in range(2):
        p, s, o, _ = step(p, s, o, x, y, jax.random.fold_in(key, i))
    tree = {"params": p, "state": s, "opt_state": o, "key": jax.random.fold_in(key, 2)}
    par.save_sharded_checkpoint(os.path.join(tmp, "dp8"), tree)

    fsdp4 = par.fully_sharded(par.make_mesh(4))
    template = {"params": params, "state": state, "opt_state": opt_state, "key": jax.random.key(0)}
    p_sh, s_sh, o_sh = par.train_state_shardings(fsdp4, params, state, opt_state)
    shardings = {"params": p_sh, "state": s_sh, "opt_state": o_sh, "key": par.replicated(fsdp4)}
    r = par.load_sharded_checkpoint(os.path.join(tmp, "dp8"), template, shardings)
    facts["restored_fsdp4"] = {
        "kernel0": [str(r["params"]["0"]["kernel"].sharding.spec),
                    len(r["params"]["0"]["kernel"].sharding.device_set)],
        "mu0": str(r["opt_state"][0].mu["0"]["kernel"].sharding.spec),
        "key_equal": bool(np.array_equal(jax.random.key_data(r["key"]),
                                         jax.random.key_data(jax.random.fold_in(key, 2))))}
    arrays.update(programs.flat(jax.device_get(tree["params"]), "dp8_params"))
    arrays.update(programs.flat(jax.device_get(r["params"]), "fsdp4_params"))
    step4 = par.make_sharded_train_step(model, loss_fn, optimizer, fsdp4, params, state, opt_state)
    p, s, o, loss = step4(r["params"], r["state"], r["opt_state"], x, y, jax.random.fold_in(key, 2))
    arrays["resumed_loss"] = np.asarray(loss)
    arrays.update(programs.flat(jax.device_get(p), "resumed_params"))
    arrays.update(programs.flat(jax.device_get(o), "resumed_opt"))
    par.save_sharded_checkpoint(os.path.join(tmp, "fsdp4"), {"params": p})
    tp = par.tensor_parallel(par.make_mesh(2, 2), [(r"^0/kernel$", P(None, "model"))])
    r2 = par.load_sharded_checkpoint(os.path.join(tmp, "fsdp4"), {"params": params},
                                     {"params": par.param_shardings(tp, params)})
    facts["restored_tp"] = str(r2["params"]["0"]["kernel"].sharding.spec)
    arrays.update(programs.flat(jax.device_get(r2["params"]), "tp4_params"))


def population():
    """fit_population with the members split over 8 devices."""
    policy = par.data_parallel(par.make_mesh(8))
    params = programs.population(lambda *trees: par.shard_population(policy, *trees))
    facts["population_spec"] = str(jax.tree.leaves(params)[0].sharding.spec)
    arrays.update(programs.flat(jax.device_get(params), "population_params"))


def evaluation():
    """make_sharded_eval_step, fully sharded, on the initial MLP."""
    model, loss_fn, _, params, state, _ = programs.setup("mlp")
    x, y = programs.data("mlp")
    policy = par.fully_sharded(par.make_mesh(8))
    evaluate = par.make_sharded_eval_step(model, policy, params, state, loss_fn,
                                          {"accuracy": programs.accuracy})
    result = evaluate(*par.shard_state(policy, params, state, {})[:2], *par.shard_batch(policy, x, y))
    arrays.update({f"eval_{k}": np.asarray(v) for k, v in result.items()})


def fit_with_policies():
    """``fit(..., policy=...)`` for every ``FIT_RUNS`` entry; the params' shardings."""
    specs = {}
    for run_name, (_, policy_name, _) in programs.FIT_RUNS.items():
        mesh = par.make_mesh(2, 4) if policy_name == "tensor_parallel" else par.make_mesh(8)
        flat, result = programs.fitted(run_name, getattr(par, policy_name)(mesh))
        arrays.update({f"{run_name}/{k}": v for k, v in flat.items()})
        specs[run_name] = {par.path_str(p): str(leaf.sharding.spec)
                           for p, leaf in jax.tree_util.tree_flatten_with_path(result.params)[0]}
    facts["fit_specs"] = specs


def collectives():
    """Collective bytes per step of the data-parallel and fully sharded MLP steps."""
    model, loss_fn, optimizer, params, state, opt_state = programs.setup("mlp")
    x, y = programs.data("mlp")
    out = {}
    for policy in (par.data_parallel(par.make_mesh(8)), par.fully_sharded(par.make_mesh(8))):
        step = par.make_sharded_train_step(model, loss_fn, optimizer, policy, params, state, opt_state)
        compiled = step.jitted.lower(params, state, opt_state, x, y, jax.random.key(0)).compile()
        out[policy.name] = par.collective_bytes(compiled)
    facts["collectives"] = out


def errors():
    """Messages of bad input that needs 8 devices; each must come before any compute."""
    model, loss_fn, optimizer, params, state, opt_state = programs.setup("mlp")
    dp = par.data_parallel(par.make_mesh(8))
    x = np.zeros((12, 8), np.float32)
    y = np.zeros((12,), np.int32)
    messages = {}
    key = jax.random.key(0)
    try:
        fit(model, loss_fn, optimizer, params, state, (x, y), key=key, batch_size=4, epochs=1,
            policy=par.make_mesh(8))
    except TypeError as error:
        messages["fit_not_a_policy"] = str(error)
    step = par.make_sharded_train_step(model, loss_fn, optimizer, dp, params, state, opt_state)
    for name, call in (("shard_batch", lambda: par.shard_batch(dp, x, y)),
                       ("step", lambda: step(params, state, opt_state, x, y, jax.random.key(0))),
                       ("process_rows", lambda: par.process_rows(dp, 12)),
                       ("make_mesh_model3", lambda: par.make_mesh(model=3)),
                       ("make_mesh_too_many", lambda: par.make_mesh(4, 4)),
                       ("shard_population", lambda: par.shard_population(dp, np.zeros((12, 3)))),
                       ("fit_batch", lambda: fit(model, loss_fn, optimizer, params, state, (x, y), key=key,
                                                 batch_size=12, epochs=1, policy=dp)),
                       ("fit_last_batch", lambda: fit(model, loss_fn, optimizer, params, state, (x, y),
                                                      key=key, batch_size=8, epochs=1, policy=dp))):
        try:
            call()
            messages[name] = None
        except ValueError as error:
            messages[name] = str(error)
    messages["step_compiled"] = step.jitted._cache_size()
    facts["errors"] = messages


if __name__ == "__main__":
    out = sys.argv[1]
    shard_map_gradients()
    population()
    evaluation()
    try:
        import orbax.checkpoint  # noqa: F401
        facts["orbax"] = True
    except ImportError:  # the optional extra fnnet[parallel]
        facts["orbax"] = False
    if facts["orbax"]:
        checkpoints(os.path.dirname(os.path.abspath(out)))
    fit_with_policies()
    collectives()
    errors()
    np.savez(out, **arrays)
    with open(out + ".json", "w") as f:
        json.dump(facts, f)
