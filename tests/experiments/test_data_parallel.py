"""data_parallel: ``fnnet run data_parallel --devices 2`` (a subprocess, so the two
simulated CPU devices exist before JAX starts) trains the one-device, data-parallel and
fully sharded runs of a reduced config. The one-device run is the reference: the
first epoch's losses must agree to float32 rounding, and the collective bytes read from
the compiled data-parallel step must be the gradient bytes (the params' float32 size,
counted here from the parameter count) plus the batch-norm sums."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _cli_run import run_cli  # noqa: E402


def test_sharded_runs_equal_the_one_device_run(tmp_path):
    run_dir, result = run_cli(tmp_path, "data_parallel", "--devices", "2", "--set", "epochs=1",
                              "--set", "timing_steps=1", "--set", "image_size=8")
    runs = result["runs"]
    assert set(runs) == {"one device", "data parallel, 2 devices", "fully sharded, 2 devices"}
    one = runs["one device"]
    assert one["collective_bytes"] == {}
    for name in ("data parallel, 2 devices", "fully sharded, 2 devices"):
        r = runs[name]
        assert abs(r["train_loss"][0] - one["train_loss"][0]) <= 1e-4 * one["train_loss"][0], name
        assert r["max_param_deviation"] < 1e-3, name
        reduce = r["collective_bytes"]["all-reduce"]
        assert result["param_bytes"] <= reduce <= 1.05 * result["param_bytes"], (name, reduce)
    assert set(runs["data parallel, 2 devices"]["collective_bytes"]) == {"all-reduce"}
    assert runs["fully sharded, 2 devices"]["collective_bytes"].get("all-gather", 0) > 0
    assert (run_dir / "data_parallel.png").stat().st_size > 0
