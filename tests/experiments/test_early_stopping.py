"""A reduced run of early_stopping."""
import pytest

from fnnet.cli import load_experiment as load


def test_early_stopping_reduced(tmp_path):
    exp = load("early_stopping")
    result = exp.run(exp.Config(hidden=(64, 64), epochs=30, patience=3, learning_rate=3e-3))
    history = result["history"]
    turn = result["dev_loss_minimum_epoch"]
    assert turn < len(history)  # the dev loss turns up before the end
    assert history[-1]["dev_loss"] > history[turn - 1]["dev_loss"]
    assert history[-1]["train_loss"] < history[turn - 1]["train_loss"]
    for monitor, stop in result["early_stopping"].items():
        best = stop["best_epoch"]
        # same key, same trajectory: the restored params are those of the full run's epoch `best`
        assert stop["restored_dev_loss"] == pytest.approx(history[best - 1]["dev_loss"], rel=1e-5)
        if stop["stopped_early"]:
            assert stop["stopped_at_epoch"] == best + 3 + 1
        seen = history[:stop["stopped_at_epoch"]]
        key = "dev_loss" if monitor == "dev_loss" else "dev_error"
        assert history[best - 1][key] == min(h[key] for h in seen)
    assert result["early_stopping"]["dev_loss"]["stopped_early"]
    # measured on CPU: dev loss turns up at epoch 7 (stop at 11), dev error bottoms at 25;
    # the restored dev-loss model's test error 65.3%, the full 30 epochs 61.3%
    assert 4 <= turn <= 12 and turn < result["dev_error_minimum_epoch"]
    assert 0.55 < result["early_stopping"]["dev_loss"]["test_error"] < 0.75
    assert 0.55 < result["test_error_full_run"] < 0.7
    assert exp.plot(result, tmp_path)
