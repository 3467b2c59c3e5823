"""On 8 simulated CPU devices (one subprocess, ``_worker8_misc.py``):

- the shard_map trap: with shard_map's default checks the gradient of replicated
  params comes back summed over devices, so the pmap recipe (local gradient, then
  ``pmean``) gives 8 times the gradient; the gradient of the ``pmean``-ed loss is right.
  Batch norm with ``axis_name="data"`` gives the global-batch statistics there.
- sharded checkpoints across mesh shapes: 2 steps data parallel on 8 devices, saved,
  restored fully sharded on 4 devices, 1 more step: equals 3 single-device steps;
  then restored tensor parallel on a 2x2 mesh.
- ``fit_population`` with its members split over the devices (``shard_population``)
  equals the single-device population.
- ``make_sharded_eval_step`` gives the NumPy cross-entropy and accuracy of the logits.
- ``fit(..., policy=...)`` (stepwise, compiled epochs; data parallel, fully sharded,
  tensor parallel) equals ``fit`` on one device.
- batch sizes that do not divide over the data axis, and impossible meshes, raise
  before any compute.
References: single-device runs in this process (plain ``jax.grad``, ``make_train_step``).
"""
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _programs as programs  # noqa: E402
from test_equivalence import run_worker  # noqa: E402


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    out = tmp_path_factory.mktemp("eight") / "out.npz"
    run_worker("_worker8_misc.py", out)
    with open(str(out) + ".json") as f:
        return dict(np.load(out)), json.load(f)


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_shard_map_pmean_trap(worker):
    arrays, _ = worker
    model = programs.bn_mlp()
    params, state = model.init(jax.random.key(1), jax.ShapeDtypeStruct((programs.BATCH, 8), jnp.float32))
    x, y = programs.data("mlp")
    loss_fn = programs.setup("mlp")[1]

    def loss(params):
        out, new_state = model.apply(params, state, x, train=True)
        return loss_fn(out, y), new_state

    grads, new_state = jax.grad(loss, has_aux=True)(params)
    checked = 0
    for name, want in programs.flat(grads, "grads").items():
        right = arrays[name.replace("grads", "shard_map_correct_grads", 1)]
        recipe = arrays[name.replace("grads", "shard_map_pmap_recipe_grads", 1)]
        assert rel(right, want) <= 1e-6, name
        assert rel(recipe, 8 * want) <= 1e-6, name  # the trap: summed, not averaged
        checked += 1
    assert checked == 5
    for name, want in programs.flat(new_state, "state").items():  # global-batch statistics
        assert rel(arrays[name.replace("state", "shard_map_correct_state", 1)], want) <= 1e-6, name


def test_population_split_over_devices_trains_like_one_device(worker):
    arrays, facts = worker
    assert facts["population_spec"] == "P('data',)"
    reference = programs.flat(programs.population(), "population_params")
    assert len(reference) == 4
    for name, want in reference.items():
        assert rel(arrays[name], want) <= 1e-6, name


def test_sharded_eval_step_equals_numpy(worker):
    arrays, _ = worker
    model, _, _, params, state, _ = programs.setup("mlp")
    x, y = programs.data("mlp")
    logits = np.asarray(model.apply(params, state, x, train=False)[0], np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    np.testing.assert_allclose(arrays["eval_loss"], -log_probs[np.arange(len(y)), y].mean(), rtol=1e-6)
    np.testing.assert_allclose(arrays["eval_accuracy"], (logits.argmax(-1) == y).mean(), rtol=1e-6)


def test_checkpoint_restores_across_mesh_shapes_and_policies(worker):
    pytest.importorskip("orbax.checkpoint")
    arrays, facts = worker
    for name in programs.flat(programs.setup("mlp")[3], "").keys():
        np.testing.assert_array_equal(arrays["fsdp4_params" + name], arrays["dp8_params" + name])
        np.testing.assert_array_equal(arrays["tp4_params" + name], arrays["resumed_params" + name])
    assert facts["restored_fsdp4"] == {"kernel0": ["P(None, 'data')", 4], "mu0": "P(None, 'data')",
                                       "key_equal": True}
    assert facts["restored_tp"] == "P(None, 'model')"
    reference = programs.run("mlp")  # 3 steps on one device
    np.testing.assert_allclose(arrays["resumed_loss"], reference["losses"][2], rtol=1e-6)
    for name, want in reference.items():
        if name.startswith(("params", "opt")) and want.size:
            got = arrays["resumed_" + name]
            assert rel(got, want) <= 1e-6 or np.array_equal(got, want), name


def test_indivisible_batch_and_bad_meshes_raise_before_compute(worker):
    errors = worker[1]["errors"]
    assert errors["shard_batch"].startswith("shard_batch: expected a batch size divisible by the 8 "
                                            "devices of the mesh's data axis, got the batch of shape (12, 8)")
    assert errors["step"].startswith("make_sharded_train_step: expected a batch size divisible by the 8")
    assert errors["process_rows"] == ("process_rows: expected a global batch size divisible by the 8 "
                                      "devices of the mesh's data axis, got 12")
    assert errors["make_mesh_model3"] == "make_mesh: expected a device count divisible by model=3, got 8 devices"
    assert errors["make_mesh_too_many"].startswith("make_mesh: expected data * model = 4 * 4 = 16 devices")
    assert errors["shard_population"] == ("shard_population: expected a member count divisible by "
                                          "the 8 devices of the mesh's data axis, got a leaf of shape (12, 3)")
    assert errors["step_compiled"] == 0  # the bad batch never reached jit


@pytest.mark.parametrize("run_name", sorted(programs.FIT_RUNS))
def test_fit_with_a_policy_trains_like_one_device(worker, run_name):
    """fit(..., policy=) on 8 devices (stepwise, compiled epochs, the unshuffled span
    program; data parallel, fully sharded, tensor parallel on 2x4) equals fit on one
    device: history to 1e-6 relative, every variable to 1e-6 relative in norm."""
    arrays, facts = worker
    want, _ = programs.fitted(run_name)
    assert len(want) >= 20
    for name, reference in want.items():
        got = arrays[f"{run_name}/{name}"]
        if name.startswith("history"):
            np.testing.assert_allclose(got, reference, rtol=1e-6, err_msg=name)
        elif reference.size:
            assert rel(got, reference) <= 1e-6 or np.array_equal(got, reference), name
    specs = facts["fit_specs"][run_name]
    policy = programs.FIT_RUNS[run_name][1]
    expected = {"data_parallel": {"P()"}, "fully_sharded": {"P()", "P(None, 'data')", "P('data',)"},
                "tensor_parallel": {"P()", "P(None, 'model')", "P('model',)", "P('model', None)"}}[policy]
    assert set(specs.values()) <= expected, specs
    if policy != "data_parallel":  # the variables stay where the policy put them
        assert len(set(specs.values())) > 1, specs


def test_fit_rejects_batches_that_do_not_divide_and_non_policies(worker):
    errors = worker[1]["errors"]
    assert errors["fit_batch"] == ("fit: expected a batch_size divisible by the 8 devices of the "
                                   "mesh's data axis, got 12")
    assert errors["fit_last_batch"] == ("fit: the last batch of an epoch has 12 % 8 = 4 examples, not "
                                        "divisible by the 8 devices of the mesh's data axis; pass "
                                        "drop_last=True or another batch_size")
    assert errors["fit_not_a_policy"].startswith("fit: expected a sharding policy as policy")
    assert errors["fit_not_a_policy"].endswith("got Mesh")


def test_collective_bytes_of_the_data_parallel_step(worker):
    """Data parallel all-reduces the gradients once per step: at least the float32 bytes
    of the params, and no more than that plus the batch norm's sums over the global
    batch (of its 16 features: mean and mean square forward, two sums backward) and the
    loss; the fully sharded step gathers the sharded weights."""
    facts = worker[1]["collectives"]
    params = programs.setup("mlp")[3]
    param_bytes = 4 * sum(int(np.prod(np.shape(p))) for p in jax.tree.leaves(params))
    dp = facts["data_parallel"]
    assert set(dp) == {"all-reduce"}, dp
    assert param_bytes <= dp["all-reduce"] <= param_bytes + 4 * (4 * 16 + 1), (dp, param_bytes)
    assert facts["fully_sharded"].get("all-gather", 0) > 0, facts["fully_sharded"]
