"""``fit`` and ``fnnet run`` over two real processes on localhost (two CPU devices each,
joined through ``jax.distributed``), against the same training on one device in one
process.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = Path(HERE).resolve().parents[1]
sys.path.insert(0, HERE)
import _programs as programs  # noqa: E402
from test_multiprocess import run_two_processes  # noqa: E402


def _env():
    return {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}


def test_fit_fully_sharded_over_two_processes_with_checkpoint_and_resume(tmp_path):
    from fnnet.train import fit

    out = str(tmp_path / "fit")
    run_two_processes("_worker_fit_mp.py", out)
    got = dict(np.load(out + ".npz"))

    # the reference: the same three epochs in this process, on one device, in one call
    model, loss_fn, optimizer, params, state, _ = programs.setup("mlp")
    (x, y), dev = programs.fit_data()
    want = fit(model, loss_fn, optimizer, params, state, (x, y), key=jax.random.key(3),
               batch_size=programs.BATCH, dev_data=dev, metrics={"accuracy": programs.accuracy}, epochs=3,
               progress=False)
    np.testing.assert_allclose(got["train_loss"], [h["train_loss"] for h in want.history], rtol=1e-6)
    np.testing.assert_allclose(got["dev_loss"], [h["dev_loss"] for h in want.history], rtol=1e-6)
    for name, leaf in programs.flat(want.params, "params").items():
        err = np.linalg.norm(got[name] - leaf) / np.linalg.norm(leaf)
        assert err <= 1e-6, f"{name}: relative error {err:.2e}"
    # process 0 wrote the checkpoint from the gathered shards (no temporary files left);
    # one process on one device resumes from it: nothing left to train, the same history
    assert sorted(os.listdir(tmp_path)) == ["fit.ckpt.npz", "fit.npz"]
    resumed = fit(model, loss_fn, optimizer, params, state, (x, y), key=jax.random.key(3),
                  batch_size=programs.BATCH, dev_data=dev, metrics={"accuracy": programs.accuracy}, epochs=3,
                  checkpoint=out + ".ckpt.npz", resume=True, progress=False)
    np.testing.assert_array_equal([h["train_loss"] for h in resumed.history], got["train_loss"])
    for name, leaf in programs.flat(resumed.params, "params").items():
        np.testing.assert_array_equal(leaf, got[name])


def test_fnnet_run_launches_two_processes(tmp_path):
    done = subprocess.run([sys.executable, "-m", "fnnet.cli", "run", "population", "--processes", "2",
                           "--devices", "4", "--set", "num_configs=8", "--set", "epochs=2",
                           "--out", str(tmp_path), "--experiments", str(ROOT / "experiments")],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (run_dir,) = (tmp_path / "population").iterdir()  # one folder: process 0 keeps the record
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "completed" and status["processes"] == 2
    result = json.loads((run_dir / "result.json").read_text())
    one, split = result["runs"]["one device"], result["runs"]["4 devices"]
    assert split["member_axis_sharding"] in ("P('data',)", "PartitionSpec('data',)")
    # the members split over both processes' devices train like the population on one device
    np.testing.assert_allclose(split["final_dev_accuracy"], one["final_dev_accuracy"], atol=1e-6)
    assert result["configs_agreeing"] == 8


def test_processes_option_errors(tmp_path):
    for args, text in ((["--processes", "2", "--distributed"], "give one"),
                       (["--processes", "0"], "expected --processes >= 1, got 0"),
                       (["--processes", "2", "--devices", "3"], "expected --devices divisible by --processes 2, got 3")):
        done = subprocess.run([sys.executable, "-m", "fnnet.cli", "run", "population", *args,
                               "--out", str(tmp_path)], capture_output=True, text=True, env=_env(), timeout=120)
        assert done.returncode == 2 and text in done.stderr, done.stderr
    assert not (tmp_path / "population").exists()


def test_launch_processes_refuses_a_count_below_one():
    import pytest
    from fnnet.cli import launch_processes
    with pytest.raises(ValueError, match="expected a process count >= 1, got 0"):
        launch_processes(0, ["run", "population"])
