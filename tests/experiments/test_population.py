"""population: ``fnnet run population --devices 2`` (a subprocess, so the devices exist
before JAX starts) on a reduced config. The one-device population is the reference:
the members split over the devices must train to the same dev curves, and the split
run's params must really be sharded over the member axis."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_split_population_trains_like_one_device(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-m", "fnnet.cli", "run", "population", "--devices", "2",
                           "--set", "num_configs=4", "--set", "epochs=2", "--set", "hidden=16",
                           "--out", str(tmp_path), "--experiments", str(ROOT / "experiments")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "population").iterdir()
    result = json.loads((run_dir / "result.json").read_text())
    one, split = result["runs"]["one device"], result["runs"]["2 devices"]
    assert one["member_axis_sharding"] == "one device"
    assert split["member_axis_sharding"] == "P('data',)"
    assert len(one["final_dev_accuracy"]) == 4
    for a, b in zip(one["final_dev_accuracy"], split["final_dev_accuracy"]):
        assert abs(a - b) < 0.02
    assert split["best_index"] == one["best_index"]
    assert result["max_abs_difference"] < 0.02 and result["configs_agreeing"] == 4
    assert (run_dir / "population.png").stat().st_size > 0
