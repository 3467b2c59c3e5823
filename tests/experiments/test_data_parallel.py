"""data_parallel: ``fnnet run data_parallel --devices 2`` (a subprocess, so the two
simulated CPU devices exist before JAX starts) trains the one-device, data-parallel
and fully sharded runs of a reduced config; they must agree with each other (the
one-device run is the reference), and the fully sharded params must really be split."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sharded_runs_equal_the_one_device_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-m", "fnnet.cli", "run", "data_parallel", "--devices", "2",
                           "--set", "epochs=2", "--set", "hidden=32", "--out", str(tmp_path),
                           "--experiments", str(ROOT / "experiments")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "data_parallel").iterdir()
    result = json.loads((run_dir / "result.json").read_text())
    assert result["devices"] == 2
    runs = result["runs"]
    assert set(runs) == {"one device", "data parallel", "fully sharded"}
    one = runs["one device"]
    assert len(one["train_loss"]) == 2 and one["train_loss"][1] < one["train_loss"][0]
    for name in ("data parallel", "fully sharded"):
        r = runs[name]
        assert abs(r["test_accuracy"] - one["test_accuracy"]) < 0.2, name  # at most one digit flips
        assert r["max_param_deviation"] < 1e-5, name
        for a, b in zip(r["train_loss"], one["train_loss"]):
            assert abs(a - b) <= 1e-5 * b, name
    assert runs["data parallel"]["param_shardings"] == ["P()"]
    assert any("data" in spec for spec in runs["fully sharded"]["param_shardings"])
    assert (run_dir / "data_parallel.png").stat().st_size > 0
