"""Reduced runs of logreg_breast_cancer and init_comparison."""
import numpy as np
import pytest

from fnnet.cli import load_experiment as load


def test_logreg_breast_cancer_reduced():
    exp = load("logreg_breast_cancer")
    result = exp.run(exp.Config(iterations=300))
    assert result["n_train"] + result["n_test"] == 569 and abs(result["n_test"] - 569 * 0.25) < 1
    assert 0.95 < result["test_accuracy"] <= 1.0 and 0.95 < result["train_accuracy"] <= 1.0  # 99.3%, 98.4%
    assert 0.05 < result["final_loss"] < 0.12                                                # 0.083
    assert result["history"][0]["train_loss"] == pytest.approx(0.6931, abs=1e-3)  # zero init: log 2


def test_init_comparison_reduced():
    exp = load("init_comparison")
    result = exp.run(exp.Config(iterations=2000, log_every=500, learning_rate=0.1))
    assert result["zeros_hidden_unit_spread"] == 0.0  # symmetry never broken
    assert result["zeros_train_accuracy"] == 0.5
    assert result["he_hidden_unit_spread"] > 0
    assert result["he_final_loss"] < result["zeros_final_loss"]
    assert result["he_final_loss"] < result["random_final_loss"]
    # measured: He 98.7% train / 95% test, loss 0.085; random (scale 10) 66% / 64%
    assert 0.93 < result["he_train_accuracy"] <= 1.0 and 0.88 < result["he_test_accuracy"] <= 1.0
    assert result["he_final_loss"] < 0.2 and 0.55 < result["random_train_accuracy"] < 0.8
    assert result["zeros_final_loss"] == pytest.approx(np.log(2), abs=1e-4)
    assert [h["step"] for h in result["history"]] == [0, 500, 1000, 1500, 2000]  # the initial loss first
    assert result["history"][0]["zeros_loss"] == pytest.approx(np.log(2), abs=1e-6)
