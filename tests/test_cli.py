"""fnnet.cli: list, run (overrides, run directory contents, plots), and its errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fnnet import cli

REPO = Path(__file__).resolve().parents[1]

EXPERIMENT = '''
"""toy: a quadratic minimised by gradient descent."""
import dataclasses

@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    lr: float = 0.1
    steps: int = 5
    verbose: bool = False
    sizes: tuple = (1, 2)

def run(config):
    w, history = 3.0 + config.seed, []
    for i in range(config.steps):
        w -= config.lr * 2 * w
        history.append({"step": i, "train_loss": w * w, "w": w})
    return {"final_w": w, "sizes": list(config.sizes), "verbose": config.verbose, "history": history}
'''


@pytest.fixture
def exp_dir(tmp_path):
    d = tmp_path / "experiments"
    d.mkdir()
    (d / "toy.py").write_text(EXPERIMENT)
    (d / "_private.py").write_text("")
    return d


def test_list(exp_dir, capsys):
    assert cli.main(["list", "--experiments", str(exp_dir)]) == 0
    out = capsys.readouterr().out
    assert "toy" in out and "a quadratic minimised" in out and "_private" not in out


def test_run_writes_the_run_directory(exp_dir, tmp_path, capsys):
    out_root = tmp_path / "runs"
    code = cli.main(["run", "toy", "--experiments", str(exp_dir), "--out", str(out_root), "--seed", "2",
                     "--set", "lr=0.25", "--set", "steps=3", "--set", "verbose=true", "--set", "sizes=[4, 5]"])
    assert code == 0
    (run_dir,) = (out_root / "toy").iterdir()
    assert run_dir.name.endswith("seed2")
    config = json.loads((run_dir / "config.json").read_text())
    assert config == {"seed": 2, "lr": 0.25, "steps": 3, "verbose": True, "sizes": [4, 5]}
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["step"] for l in lines] == [0, 1, 2]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["final_w"] == pytest.approx(5.0 * 0.5 ** 3) and result["sizes"] == [4, 5]
    versions = json.loads((run_dir / "versions.json").read_text())
    assert versions["jax"] and "git_revision" in versions
    assert (run_dir / "curves.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "final_w" in printed and "curves.png" in printed


def test_run_is_reproducible_bit_for_bit(tmp_path):
    # A real experiment (shuffled mini-batches, dropout, SGD), shrunk to one epoch, run
    # twice through the command line in fresh processes: the same files, byte for byte.
    # result.json's wall_time_s is the one entry allowed to differ.
    args = ["run", "mlp_digits", "--seed", "0", "--set", "epochs=1", "--set", "hidden=[16]",
            "--set", "shift_augment=false"]
    runs = []
    for out in ("a", "b"):
        subprocess.run([sys.executable, "-m", "fnnet.cli", *args, "--out", str(tmp_path / out)],
                       check=True, capture_output=True, cwd=REPO)
        (run_dir,) = (tmp_path / out / "mlp_digits").iterdir()
        runs.append(run_dir)
    a, b = runs
    for name in ("config.json", "metrics.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    timed = lambda d: [l for l in (d / "result.json").read_bytes().splitlines()
                       if not l.strip().startswith(b'"wall_time_s"')]
    assert timed(a) == timed(b)
    result = json.loads((a / "result.json").read_text())
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["n_test"] == 899
    assert len((a / "metrics.jsonl").read_bytes().splitlines()) >= 1


@pytest.mark.parametrize("args, message", [
    (["run", "nope"], "no experiment 'nope'"),
    (["run", "toy", "--set", "lrr=1"], "field=value with a field of"),
    (["run", "toy", "--set", "steps=two"], "cannot read --set steps=two as a int"),
    (["run", "toy", "--set", "verbose=maybe"], "as a bool"),
])
def test_run_errors(exp_dir, tmp_path, args, message):
    with pytest.raises(SystemExit, match=message):
        cli.main(args + ["--experiments", str(exp_dir), "--out", str(tmp_path)])


def test_repository_experiments_all_have_config_and_run():
    found = cli.find_experiments()
    assert "mlp_digits" in found
    for name in found:
        module = cli.load_experiment(name)
        module.Config()  # every field has a default
