"""Data parallel, fully sharded and tensor parallel training on 8 simulated CPU devices
equals the single-device run: losses, first-step gradients, and params, batch-norm
state and Adam state after 3 steps, with batch norm and dropout in the models.

The sharded runs happen in a subprocess (``_worker8.py``) with ``jax_num_cpu_devices=8``;
the reference is ``jax.jit(make_train_step(...))`` in this process on one device.
Tolerance: losses to 1e-6 relative each, every other leaf to 1e-6 relative in norm
(``|a - b| / |b|``): a sharded sum adds its partial sums in another order, so single
entries near zero differ by float32 rounding (about 1e-8 absolute).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _programs as programs  # noqa: E402

CASES = ["data_parallel/mlp", "data_parallel/conv", "fully_sharded/mlp", "tensor_parallel/mlp",
         "tensor_parallel/attention"]


def run_worker(script, out, timeout=600):
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    done = subprocess.run([sys.executable, os.path.join(HERE, script), str(out)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    out = tmp_path_factory.mktemp("parallel") / "runs.npz"
    run_worker("_worker8.py", out)
    with open(str(out) + ".json") as f:
        meta = json.load(f)
    return dict(np.load(out)), meta


def test_worker_ran_on_8_devices(sharded):
    assert sharded[1]["devices"] == 8


@pytest.mark.parametrize("case", CASES)
def test_sharded_run_equals_single_device(sharded, case):
    arrays, _ = sharded
    reference = programs.run(case.split("/")[1])
    got = {k.split("|", 1)[1]: v for k, v in arrays.items() if k.startswith(case + "|")}
    assert sorted(got) == sorted(reference)
    np.testing.assert_allclose(got["losses"], reference["losses"], rtol=1e-6)
    assert reference["losses"][-1] < reference["losses"][0]  # it trains
    for name, want in reference.items():
        if name == "losses" or want.size == 0:
            continue
        err = np.linalg.norm(got[name] - want) / max(np.linalg.norm(want), 1e-30)
        assert err <= 1e-6, f"{case} {name}: relative error {err:.2e}"


def _sharded_axes(specs, prefix):
    return {k: v for k, v in specs.items() if k.startswith(prefix) and v != "P()"}


def test_policies_place_leaves_as_documented(sharded):
    specs = sharded[1]["specs"]
    assert not _sharded_axes(specs["data_parallel/mlp"], "")
    fsdp = specs["fully_sharded/mlp"]
    # largest axis divisible by 8: dense 8->16 kernel (8, 16) on axis 1 (16 > 8)
    assert fsdp["params['0']['kernel']"] == "P(None, 'data')"
    assert fsdp["params['3']['kernel']"] == "P('data',)"  # (16, 16): first
    assert fsdp["params['6']['bias']"] == "P()"  # 4 rows do not divide over 8
    assert fsdp["opt[0].mu['0']['kernel']"] == fsdp["opt[0].nu['0']['kernel']"] == "P(None, 'data')"
    assert fsdp["opt[0].count"] == "P()"
    tp = specs["tensor_parallel/mlp"]
    assert tp["params['0']['kernel']"] == "P(None, 'model')"
    assert tp["params['0']['bias']"] == "P('model',)"
    assert tp["params['3']['kernel']"] == "P('model', None)"
    assert tp["opt[0].mu['3']['kernel']"] == "P('model', None)"
    att = specs["tensor_parallel/attention"]
    for name in ("query", "key", "value"):
        assert att[f"params['1']['{name}']['kernel']"] == "P(None, 'model')"
    assert att["params['1']['out']['kernel']"] == "P('model', None)"
    assert att["params['0']['kernel']"] == "P()"
