"""Run the programs of ``_programs`` sharded over 8 simulated CPU devices and save the
results: ``python _worker8.py OUT.npz``. Started by test_equivalence.py in a
subprocess, since the test process has already set up one CPU device.
"""
import json
import os
import sys

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_debug_key_reuse", True)

import numpy as np  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _programs as programs  # noqa: E402
import fnnet.parallel as par  # noqa: E402

MLP_RULES = [(r"^0/kernel$", P(None, "model")), (r"^0/bias$", P("model")),
             (r"^3/kernel$", P("model", None))]

CASES = {
    "data_parallel/mlp": (lambda: par.data_parallel(par.make_mesh(8)), "mlp"),
    "data_parallel/conv": (lambda: par.data_parallel(par.make_mesh(8)), "conv"),
    "fully_sharded/mlp": (lambda: par.fully_sharded(par.make_mesh(8)), "mlp"),
    "tensor_parallel/mlp": (lambda: par.tensor_parallel(par.make_mesh(2, 4), MLP_RULES), "mlp"),
    "tensor_parallel/attention": (lambda: par.tensor_parallel(par.make_mesh(2, 4)), "attention"),
}


def sharded_run(policy, name):
    model, loss_fn, optimizer, params, state, opt_state = programs.setup(name)
    step = par.make_sharded_train_step(model, loss_fn, optimizer, policy, params, state, opt_state)
    p_sh, s_sh, o_sh, b_sh, r_sh = step.shardings
    grad_fn = jax.jit(jax.grad(programs.objective(model, loss_fn)),
                      in_shardings=(p_sh, s_sh, b_sh, b_sh, r_sh), out_shardings=p_sh)

    def place(params, state, opt_state, x, y):
        return (*par.shard_state(policy, params, state, opt_state), *par.shard_batch(policy, x, y))

    specs = {}

    def recording_step(*args):
        out = step(*args)
        for prefix, tree in (("params", out[0]), ("opt", out[2])):
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
                specs[prefix + jax.tree_util.keystr(path)] = str(leaf.sharding.spec)
        return out

    result = programs.run(name, recording_step, grad_fn, place)
    return result, specs


def main(out):
    arrays, specs = {}, {}
    for case, (make_policy, name) in CASES.items():
        result, case_specs = sharded_run(make_policy(), name)
        arrays.update({f"{case}|{k}": v for k, v in result.items()})
        specs[case] = case_specs
    np.savez(out, **arrays)
    with open(out + ".json", "w") as f:
        json.dump({"specs": specs, "devices": jax.device_count()}, f)


if __name__ == "__main__":
    main(sys.argv[1])
