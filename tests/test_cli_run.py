"""fnnet.cli run: --help with the Config's fields, --set of tuples and optionals, Configs
that validate themselves, strict-JSON results, the run folder's status, and list."""
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fnnet import cli

REPO = Path(__file__).resolve().parents[1]

TOY = '''
"""toy: a quadratic minimised by gradient descent,
with every kind of value in its result.

More text that the summary leaves out.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
from typing import Optional

import jax.numpy as jnp
import numpy as np

from fnnet.train.config import check_config, require

CPU_SECONDS = 12


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                        # starting point offset
    steps: int = 3                       # gradient steps
    lr: float = 0.25                     # step size
    dropout: float = 0.0                 # a rate, in [0, 1)
    verbose: bool = False                # say more
    hidden: tuple[int, ...] = (8, 4)     # widths of the layers
    rates: tuple[float, ...] = (0.5,)    # rates, one run each
    names: tuple[str, ...] = ("a",)      # names of things
    pairs: tuple[tuple[str, float], ...] = (  # (optimizer,
        ("sgd", 0.1),)                        # rate) pairs
    limit: Optional[int] = None          # optional cap
    mode: str = "ok"                     # ok, fail_run, fail_plot or unwritable

    def __post_init__(self):
        check_config(self, positive=("steps", "lr", "hidden", "rates", "limit"), ranges={"dropout": "[0, 1)"},
                     choices={"mode": ("ok", "fail_run", "fail_plot", "unwritable")})
        require(self, "limit", self.limit is None or self.limit >= self.steps, f">= steps ({self.steps})")


class Unprintable:
    def __str__(self):
        raise RuntimeError("no str for this object")

    def __repr__(self):
        return "Unprintable()"


def run(config):
    seen = [json.load(open(p))["status"]
            for p in glob.glob(os.path.join(os.environ.get("TOY_OUT", "."), "toy", "*", "status.json"))]
    if config.mode == "fail_run":
        raise RuntimeError("boom in run")
    w, history = 3.0 + config.seed, []
    for i in range(config.steps):
        w -= config.lr * 2 * w
        history.append({"step": i, "train_loss": jnp.float32(w * w), "w": np.float64(w), "gap": float("nan")})
    out = {"final_w": jnp.asarray(w), "matrix": jnp.arange(4).reshape(2, 2), "count": np.int64(7),
           "flag": np.bool_(True), "mixed": (1, 2.5, "x"),
           "nested": {1: {"a": (np.float32(0.5),)}, "b": [jnp.ones(2)]},
           "nan": float("nan"), "inf": np.inf, "neg_inf": -math_inf(), "values": jnp.array([1.0, np.nan, np.inf]),
           "half": jnp.asarray(1.5, jnp.bfloat16), "seen_status": seen, "mode": config.mode, "history": history}
    if config.mode == "unwritable":
        out["odd"] = Unprintable()
    return out


def math_inf():
    return float("inf")


def plot(result, out_dir):
    if result["mode"] == "fail_plot":
        raise ValueError("plot broke")
    path = os.path.join(out_dir, "toy_plot.txt")
    with open(path, "w") as f:
        f.write("a plot")
    return [path]
'''

BARE = '''"""bare: no CPU time recorded."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0


def run(config):
    return {"seed": config.seed}
'''


@pytest.fixture
def exp_dir(tmp_path):
    d = tmp_path / "experiments"
    d.mkdir()
    (d / "toy.py").write_text(TOY)
    (d / "bare.py").write_text(BARE)
    return d


@pytest.fixture
def toy(exp_dir):
    return cli.load_experiment("toy", str(exp_dir))


def strict_json(text):
    """json.loads that refuses NaN and Infinity (not JSON)."""
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def run_toy(exp_dir, out, *args):
    return cli.main(["run", "toy", "--experiments", str(exp_dir), "--out", str(out), *args])


def only_run_dir(out):
    (run_dir,) = (Path(out) / "toy").iterdir()
    return run_dir


# ----------------------------------------------------------------------------- --help

def test_help_lists_the_config_fields(exp_dir, capsys):
    assert cli.main(["run", "toy", "--help", "--experiments", str(exp_dir)]) == 0
    out = capsys.readouterr().out
    assert "usage: fnnet run NAME" in out
    assert "toy: a quadratic minimised by gradient descent, with every kind of value in its result." in out
    assert "More text" not in out
    assert "typical CPU time of the default run: ~12 s" in out
    lines = out.splitlines()
    for head, doc in [("seed: int = 0", "starting point offset"),
                      ("hidden: tuple[int, ...] = (8, 4)", "widths of the layers"),
                      ("rates: tuple[float, ...] = (0.5,)", "rates, one run each"),
                      ("pairs: tuple[tuple[str, float], ...] = (('sgd', 0.1),)", "(optimizer, rate) pairs"),
                      ("limit: Optional[int] = None", "optional cap"),
                      ("verbose: bool = False", "say more"),
                      ("mode: str = 'ok'", "ok, fail_run, fail_plot or unwritable")]:
        i = lines.index("  " + head)
        assert lines[i + 1].strip() == doc


def test_help_of_a_real_experiment(capsys):
    assert cli.main(["run", "mlp_digits", "--help"]) == 0
    out = capsys.readouterr().out
    assert "mlp_digits: a two-hidden-layer ReLU MLP with softmax on the 8x8 digits." in out
    assert "  hidden: tuple[int, ...] = (512, 512)" in out and "widths of the hidden layers" in out
    assert "  dropout: float = 0.3" in out and "  shift_augment: bool = True" in out
    assert "~16 s" in out
    assert "finished" not in out  # help runs nothing


def test_every_real_config_field_has_a_doc():
    for name in cli.find_experiments():
        module = cli.load_experiment(name)
        docs = cli.config_docs(module)
        missing = [f.name for f in dataclasses.fields(module.Config) if not docs.get(f.name)]
        assert not missing, f"{name}: fields without a trailing # doc: {missing}"


def test_run_help_without_a_name(capsys):
    assert cli.main(["run", "--help"]) == 0
    assert "usage: fnnet run NAME" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["run"])


# ----------------------------------------------------------------------------- --set

@pytest.mark.parametrize("item, field, expected", [
    ("hidden=64,32", "hidden", (64, 32)),
    ("hidden=64", "hidden", (64,)),
    ("hidden= 64 , 32 ", "hidden", (64, 32)),
    ("hidden=[64, 32]", "hidden", (64, 32)),
    ("hidden=[]", "hidden", ()),
    ("rates=0.5,1", "rates", (0.5, 1.0)),
    ("rates=[2]", "rates", (2.0,)),
    ("names=adam,sgd", "names", ("adam", "sgd")),
    ("pairs=[[\"adam\", 0.001], [\"sgd\", 1]]", "pairs", (("adam", 0.001), ("sgd", 1.0))),
    ("limit=none", "limit", None),
    ("limit=7", "limit", 7),
    ("verbose=yes", "verbose", True),
    ("lr=1e-2", "lr", 0.01),
])
def test_set_reads_the_annotated_type(toy, item, field, expected):
    config = cli.make_config(toy, None, [item])
    value = getattr(config, field)
    assert value == expected
    # element types from the annotation: ints stay ints, floats become floats
    flat = lambda v: [x for e in v for x in (flat(e) if isinstance(e, tuple) else [e])]  # noqa: E731
    if isinstance(expected, tuple):
        assert [type(x) for x in flat(value)] == [type(x) for x in flat(expected)]
    else:
        assert type(value) is type(expected)


@pytest.mark.parametrize("item, message", [
    ("hidden=6x4", r"cannot read --set hidden=6x4 as a tuple\[int, \.\.\.\]: '6x4' is not an int"),
    ("hidden=[1.5]", r"1\.5 is not an int"),
    ("hidden=[64", r"is not valid JSON"),
    ("pairs=adam,0.1", r"give it as JSON"),
    ("limit=lots", r"as a Optional\[int\]: 'lots' is not an int"),
    ("steps=-5", r"^fnnet: toy: Config: expected steps > 0, got -5$"),
    ("hidden=64,0", r"expected every element of hidden > 0, got \(64, 0\)"),
    ("dropout=1", r"expected dropout in \[0, 1\), got 1\.0"),
    ("lr=nan", r"expected lr > 0, got nan"),
    ("mode=fast", r"expected mode one of 'ok', 'fail_run', 'fail_plot', 'unwritable'; got 'fast'"),
    ("limit=2", r"expected limit >= steps \(3\), got 2"),
])
def test_set_errors_are_one_line_before_any_run(exp_dir, tmp_path, item, message):
    out = tmp_path / "runs"
    with pytest.raises(SystemExit, match=message) as info:
        run_toy(exp_dir, out, "--set", item)
    assert "\n" not in str(info.value.code)
    assert not out.exists()  # no run folder for a config that was never valid


def test_a_seed_or_field_given_twice_is_an_error(exp_dir, tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"the seed is given twice \(--seed 2 and --set seed=1\)"):
        run_toy(exp_dir, tmp_path, "--seed", "2", "--set", "seed=1")
    with pytest.raises(SystemExit, match="--set steps is given twice"):
        run_toy(exp_dir, tmp_path, "--set", "steps=2", "--set", "steps=4")
    with pytest.raises(SystemExit) as info:
        run_toy(exp_dir, tmp_path, "--seed", "1", "--seed", "2")
    assert info.value.code == 2 and "--seed is given twice" in capsys.readouterr().err
    assert not (tmp_path / "toy").exists()


def test_devices_needs_a_devices_field_and_is_given_once(exp_dir, tmp_path):
    with pytest.raises(SystemExit, match=r"^fnnet: toy: its Config has no devices field \(it runs on one device\)$"):
        run_toy(exp_dir, tmp_path, "--devices", "2")
    module = cli.load_experiment("data_parallel")
    assert cli.make_config(module, devices=2).devices == 2
    with pytest.raises(SystemExit, match=r"the devices is given twice \(--devices 2 and --set devices=4\)"):
        cli.make_config(module, overrides=["devices=4"], devices=2)
    with pytest.raises(SystemExit, match="expected batch_size divisible by devices = 3, got 64"):
        cli.make_config(module, devices=3)
    assert not (tmp_path / "toy").exists()


def test_provide_devices_refuses_more_devices_than_exist_once_jax_started():
    import jax
    jax.numpy.zeros(1).block_until_ready()  # the backend has started: nothing can be added
    cli.provide_devices(jax.device_count())
    with pytest.raises(SystemExit, match=f"expected {jax.device_count() + 1} devices, found {jax.device_count()}"):
        cli.provide_devices(jax.device_count() + 1)


# ----------------------------------------------------------------------------- results and status

def test_results_are_strict_json_and_the_status_completed(exp_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TOY_OUT", str(tmp_path))
    assert run_toy(exp_dir, tmp_path, "--set", "steps=2") == 0
    run_dir = only_run_dir(tmp_path)
    result = strict_json((run_dir / "result.json").read_text())
    w1 = 3.0 - 0.25 * 2 * 3.0
    w2 = w1 - 0.25 * 2 * w1
    assert result["final_w"] == w2 and isinstance(result["final_w"], float)
    assert result["matrix"] == [[0, 1], [2, 3]]
    assert result["count"] == 7 and result["flag"] is True and result["mixed"] == [1, 2.5, "x"]
    assert result["nested"] == {"1": {"a": [0.5]}, "b": [[1.0, 1.0]]}
    assert (result["nan"], result["inf"], result["neg_inf"]) == ("nan", "inf", "-inf")
    assert result["values"] == [1.0, "nan", "inf"] and result["half"] == 1.5
    assert [float(s) for s in ("inf", "-inf")] == [math.inf, -math.inf] and math.isnan(float(result["nan"]))
    assert result["seen_status"] == ["running"]  # what run() saw of its own folder
    assert "history" not in result and result["wall_time_s"] >= 0
    metrics = [strict_json(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 1]
    assert [m["train_loss"] for m in metrics] == [float(np.float32(w1 * w1)), float(np.float32(w2 * w2))]
    assert [m["w"] for m in metrics] == [w1, w2] and [m["gap"] for m in metrics] == ["nan", "nan"]
    status = strict_json((run_dir / "status.json").read_text())
    assert status["status"] == "completed" and status["errors"] == [] and status["experiment"] == "toy"
    assert sorted(Path(p).name for p in status["plots"]) == ["curves.png", "toy_plot.txt"]
    assert (run_dir / "curves.png").stat().st_size > 1000 and not (run_dir / "error.txt").exists()
    assert strict_json((run_dir / "config.json").read_text())["pairs"] == [["sgd", 0.1]]
    printed = capsys.readouterr().out
    assert printed.startswith(f"toy: running (typical CPU time ~12 s); results in {run_dir}\n")
    assert f"plot:    {run_dir / 'curves.png'}" in printed and "final_w" in printed


def test_json_safe_keys_odd_objects_and_nonfinite_kept():
    import jax.numpy as jnp

    class Unprintable:
        def __str__(self):
            raise RuntimeError("no str")

        def __repr__(self):
            return "Unprintable()"

    out = cli.json_safe({"a": jnp.array([np.nan, 2.0]), (1, 2): np.float32(0.25), np.int64(3): {1.5},
                         "odd": Unprintable(), "path": Path("x") / "y"}, nonfinite_as_str=False)
    assert list(out) == ["a", "(1, 2)", "3", "odd", "path"]
    assert math.isnan(out["a"][0]) and out["a"][1] == 2.0 and out["(1, 2)"] == 0.25 and out["3"] == [1.5]
    assert out["odd"] == "Unprintable()" and out["path"] == "x/y"


def test_a_failing_run_is_recorded_and_raised(exp_dir, tmp_path, capsys):
    with pytest.raises(RuntimeError, match="boom in run"):
        run_toy(exp_dir, tmp_path, "--set", "mode=fail_run")
    run_dir = only_run_dir(tmp_path)
    status = strict_json((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and status["stage"] == "run"
    assert status["error"] == "RuntimeError: boom in run" and "finished" in status
    error = (run_dir / "error.txt").read_text()
    assert "Traceback" in error and "raise RuntimeError(\"boom in run\")" in error
    assert (run_dir / "config.json").exists() and not (run_dir / "result.json").exists()
    assert "toy failed after" in capsys.readouterr().err


def test_a_failing_plot_keeps_the_result(exp_dir, tmp_path, capsys):
    assert run_toy(exp_dir, tmp_path, "--set", "mode=fail_plot") == 1
    run_dir = only_run_dir(tmp_path)
    result = strict_json((run_dir / "result.json").read_text())
    assert result["matrix"] == [[0, 1], [2, 3]] and len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3
    status = strict_json((run_dir / "status.json").read_text())
    assert status["status"] == "completed"
    assert status["errors"] == [{"stage": "plot", "error": "ValueError: plot broke"}]
    assert "ValueError: plot broke" in (run_dir / "error.txt").read_text()
    assert (run_dir / "curves.png").exists()  # the other plot still drawn
    captured = capsys.readouterr()
    assert "final_w" in captured.out and "plot failed after the result was saved" in captured.err


def test_a_result_that_cannot_be_written_is_kept_as_repr(exp_dir, tmp_path, monkeypatch):
    write = cli._write_text

    def full_disk(path, text):
        if path.name == "result.json":
            raise OSError(28, "No space left on device")
        write(path, text)

    monkeypatch.setattr(cli, "_write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run_toy(exp_dir, tmp_path, "--set", "mode=unwritable")
    run_dir = only_run_dir(tmp_path)
    status = strict_json((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and status["stage"] == "write"
    kept = (run_dir / "result.repr.txt").read_text()
    assert "'odd': Unprintable()" in kept and "'mode': 'unwritable'" in kept
    assert "OSError" in (run_dir / "error.txt").read_text()


# ----------------------------------------------------------------------------- list

def test_list_shows_time_and_summary(exp_dir, capsys):
    assert cli.main(["list", "--experiments", str(exp_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["experiment", "CPU", "time", "summary"]
    rows = {line.split()[0]: line.split(None, 1)[1] for line in lines[1:]}
    assert rows["toy"].split("  ")[0] == "~12 s" and rows["toy"].endswith(
        "  a quadratic minimised by gradient descent, with every kind of value in its result.")
    assert rows["bare"].startswith("not measured  ") and rows["bare"].endswith("  no CPU time recorded.")


def test_every_real_experiment_records_a_cpu_time(capsys):
    assert cli.main(["list"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert {r.split()[0] for r in rows} == set(cli.find_experiments())
    for r in rows:
        assert r.split()[1].startswith("~"), r


# ----------------------------------------------------------------------------- the real Configs

BAD = {  # experiment: (field, value, message) for a step or size field
    "attention_maps": ("steps", 0, "expected steps > 0, got 0"),
    "batchnorm_depth": ("steps", 0, "expected steps > 0, got 0"),
    "bias_variance": ("batch_size", -1, "expected batch_size > 0, got -1"),
    "char_lstm": ("steps", -5, "expected steps > 0, got -5"),
    "char_rnn": ("iterations", -5, "expected iterations > 0, got -5"),
    "convnet_insides": ("epochs", 0, "expected epochs > 0, got 0"),
    "data_parallel": ("epochs", 0, "expected epochs > 0, got 0"),
    "date_translation": ("epochs", 0, "expected epochs > 0, got 0"),
    "debias": ("epochs", 0, "expected epochs > 0, got 0"),
    "early_stopping": ("epochs", 0, "expected epochs > 0, got 0"),
    "edge_detection": ("steps", -1, "expected steps > 0, got -1"),
    "embedding_map": ("epochs", 0, "expected epochs > 0, got 0"),
    "exploding_gradients": ("steps", 0, "expected steps > 0, got 0"),
    "face_verification": ("steps", 0, "expected steps > 0, got 0"),
    "glove_lee": ("epochs", 0, "expected epochs > 0, got 0"),
    "gpt_shakespeare": ("iterations", -5, "expected iterations > 0, got -5"),
    "image_captioning": ("epochs", 0, "expected epochs > 0, got 0"),
    "init_comparison": ("iterations", -5, "expected iterations > 0, got -5"),
    "landmarks": ("steps", 0, "expected steps > 0, got 0"),
    "lenet_digits": ("epochs", 0, "expected epochs > 0, got 0"),
    "logreg_breast_cancer": ("iterations", -5, "expected iterations > 0, got -5"),
    "mlp_digits": ("batch_size", 0, "expected batch_size > 0, got 0"),
    "mnist1d_baselines": ("steps", -250, "expected steps > 0, got -250"),
    "mnist1d_cnn": ("eval_every", 0, "expected eval_every > 0, got 0"),
    "mnist1d_gru": ("steps", -5, "expected steps > 0, got -5"),
    "optimizer_paths": ("max_steps", 0, "expected max_steps > 0, got 0"),
    "optimizers_digits": ("epochs", -1, "expected epochs > 0, got -1"),
    "population": ("epochs", 0, "expected epochs > 0, got 0"),
    "random_search": ("num_configs", 0, "expected num_configs > 0, got 0"),
    "resnet_vs_plain": ("batch_size", 0, "expected batch_size > 0, got 0"),
    "sentiment": ("epochs", 0, "expected epochs > 0, got 0"),
    "shapes_detection": ("steps", 0, "expected steps > 0, got 0"),
    "sliding_windows": ("rounds", 0, "expected rounds > 0, got 0"),
    "style_transfer": ("steps", 0, "expected steps > 0, got 0"),
    "transfer_digits": ("steps", 0, "expected steps > 0, got 0"),
    "transformer_addition": ("steps", 0, "expected steps > 0, got 0"),
    "trigger_word": ("epochs", 0, "expected epochs > 0, got 0"),
    "vanishing_gradients": ("steps", -5, "expected steps > 0, got -5"),
    "word2vec_lee": ("epochs", 0, "expected epochs > 0, got 0"),
}


def test_the_table_covers_every_experiment():
    assert set(BAD) == set(cli.find_experiments())


@pytest.mark.parametrize("name", sorted(BAD))
def test_real_config_rejects_a_bad_step_or_size(name):
    module = cli.load_experiment(name)
    field, value, message = BAD[name]
    module.Config()  # the defaults are valid
    with pytest.raises(ValueError) as info:
        module.Config(**{field: value})
    assert str(info.value) == f"Config: {message}"


@pytest.mark.parametrize("name, changes, error, message", [
    ("mlp_digits", {"epochs": 2.5}, TypeError, "expected epochs as int, got 2.5 (float)"),
    ("mlp_digits", {"hidden": [64]}, TypeError, "expected hidden as tuple[int, ...], got [64] (list)"),
    ("mlp_digits", {"momentum": 1.0}, ValueError, "expected momentum in [0, 1), got 1.0"),
    ("mlp_digits", {"learning_rate": 0.0}, ValueError, "expected learning_rate > 0, got 0.0"),
    ("vanishing_gradients", {"cells": ("rnn", "transformer")}, ValueError, "expected every element of cells one of"),
    ("lenet_digits", {"upsample": "cubic"}, ValueError, "expected upsample one of 'bilinear', 'nearest'"),
    ("mnist1d_cnn", {"steps": 260}, ValueError, "expected steps a multiple of eval_every (250), got 260"),
    ("char_lstm", {"holdout_fraction": 1.0}, ValueError, "expected holdout_fraction in (0, 1), got 1.0"),
    ("bias_variance", {"keep_probs": (0.5, 0.0)}, ValueError, "expected every element of keep_probs in (0, 1]"),
    ("optimizers_digits", {"learning_rates": (("adam", 1e-3), ("lion", 1e-4))}, ValueError,
     "bad: ('lion', 0.0001)"),
    ("resnet_vs_plain", {"depths": (8, 21)}, ValueError, "expected depths as 6n + 2"),
    ("random_search", {"log10_lr_range": (0.0, -4.0)}, ValueError, "low <= high"),
])
def test_real_config_rejects_types_choices_and_relations(name, changes, error, message):
    module = cli.load_experiment(name)
    with pytest.raises(error) as info:
        module.Config(**changes)
    assert message in str(info.value)


# ----------------------------------------------------------------------------- exit codes

def test_exit_codes_in_a_subprocess(exp_dir, tmp_path):
    base = [sys.executable, "-m", "fnnet.cli", "run", "toy", "--experiments", str(exp_dir), "--out", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    bad = subprocess.run(base + ["--set", "iterations=-5"], capture_output=True, text=True, cwd=REPO, env=env)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    bad = subprocess.run(base + ["--set", "steps=-5"], capture_output=True, text=True, cwd=REPO, env=env)
    assert bad.returncode == 1 and bad.stderr.strip() == "fnnet: toy: Config: expected steps > 0, got -5"
    failed = subprocess.run(base + ["--set", "mode=fail_run"], capture_output=True, text=True, cwd=REPO, env=env)
    assert failed.returncode == 1 and "RuntimeError: boom in run" in failed.stderr
    assert strict_json((only_run_dir(tmp_path) / "status.json").read_text())["status"] == "failed"


def test_history_curves_one_line_per_labelled_run(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.axes import Axes
    drawn = []
    plot = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda self, xs, ys, **kw: drawn.append((kw["label"], list(xs), list(ys)))
                        or plot(self, xs, ys, **kw))
    history = [{"run": "plain", "step": 10, "train_loss": 2.0, "dev_accuracy": 0.5},
               {"run": "plain", "step": 20, "train_loss": 1.0, "dev_accuracy": None},
               {"run": "bn", "step": 10, "train_loss": 1.5, "dev_accuracy": 0.6}]
    assert cli.plot_history(history, tmp_path / "c.png", "t") == tmp_path / "c.png"
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert [d[:2] for d in drawn] == [("plain train_loss", [10, 20]), ("bn train_loss", [10]),
                                      ("plain dev_accuracy", [10, 20]), ("bn dev_accuracy", [10])]
    assert drawn[0][2] == [2.0, 1.0] and drawn[1][2] == [1.5]
    assert drawn[2][2][0] == 0.5 and math.isnan(drawn[2][2][1]) and drawn[3][2] == [0.6]
