"""population: ``fnnet run population --devices 2`` (a subprocess, so the devices exist
before JAX starts) on a reduced config. The one-device population is the reference:
the members split over the devices must train to the same dev curves, and the split
run's params must really be sharded over the member axis."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _cli_run import run_cli  # noqa: E402


def test_split_population_trains_like_one_device(tmp_path):
    run_dir, result = run_cli(tmp_path, "population", "--devices", "2", "--set", "num_configs=4",
                              "--set", "epochs=2", "--set", "hidden=16")
    one, split = result["runs"]["one device"], result["runs"]["2 devices"]
    assert one["member_axis_sharding"] == "one device"
    assert split["member_axis_sharding"] == "P('data',)"
    assert len(one["final_dev_accuracy"]) == 4
    for a, b in zip(one["final_dev_accuracy"], split["final_dev_accuracy"]):
        assert abs(a - b) < 0.02
    assert split["best_index"] == one["best_index"]
    assert result["max_abs_difference"] < 0.02 and result["configs_agreeing"] == 4
    assert (run_dir / "population.png").stat().st_size > 0
