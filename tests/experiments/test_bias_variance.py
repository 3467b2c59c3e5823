"""A reduced run of bias_variance, and the diagnosis rule."""
from fnnet.cli import load_experiment as load


def test_diagnose_rule():
    exp = load("bias_variance")
    assert exp.diagnose(0.01, 0.03, 0.0, 0.05) == "fine"
    assert exp.diagnose(0.01, 0.20, 0.0, 0.05) == "high variance"
    assert exp.diagnose(0.20, 0.22, 0.0, 0.05) == "high bias"
    assert exp.diagnose(0.20, 0.40, 0.0, 0.05) == "high bias and high variance"
    assert exp.diagnose(0.20, 0.22, 0.18, 0.05) == "fine"


def test_bias_variance_reduced(tmp_path):
    exp = load("bias_variance")
    result = exp.run(exp.Config(hidden=(64, 64), epochs=15, l2_lambdas=(1.0,), keep_probs=(0.5,)))
    rows = {r["run"]: r for r in result["rows"]}
    assert set(rows) == {"none", "l2 lambda=1", "dropout keep=0.5"}
    none = rows["none"]
    # measured on CPU: none 0% train / 9.3% dev error (high variance); l2 lambda=1 88% / 91%
    # (high bias: a huge penalty underfits); dropout keep=0.5 3.7% / 10.8%
    assert none["train_error"] < 0.03 and 0.05 < none["dev_error"] < 0.15
    assert none["diagnosis"] == "high variance"
    assert rows["l2 lambda=1"]["diagnosis"] == "high bias"
    assert 0.8 < rows["l2 lambda=1"]["train_error"] < 0.92 and 0.8 < rows["l2 lambda=1"]["dev_error"] < 0.92
    drop = rows["dropout keep=0.5"]
    assert drop["train_error"] < 0.08 and 0.05 < drop["dev_error"] < 0.16
    assert result["best_dev_error"] == min(r["dev_error"] for r in rows.values())
    assert len(result["history"]) == 15
    assert "l2 lambda=1" in exp.format_table(result)
    paths = exp.plot(result, tmp_path)
    assert all((tmp_path / p.split("/")[-1]).stat().st_size > 0 for p in paths)
