"""Reduced mnist1d_baselines: the authors' models and loop for 250 steps."""
from fnnet.cli import load_experiment


def test_mnist1d_baselines_reduced(tmp_path):
    exp = load_experiment("mnist1d_baselines")
    result = exp.run(exp.Config(steps=250, num_seeds=2, variants=("shuffled",)))
    assert result["linear_params"] == 410 and result["mlp_params"] == 15210  # the paper's models
    assert [h["step"] for h in result["history"]] == [0, 250, 251]  # 251 updates: steps 0..250
    assert 24 < result["linear_shuffled_test_accuracy"] < 40  # chance is 10%, the paper's final 32%
    # measured on CPU: linear 31.5% (mean of 2 seeds 30.9%), MLP mean 58.2% after 250 steps
    assert 26 < result["linear_shuffled_mean_test_accuracy"] < 36
    assert 50 < result["mlp_shuffled_mean_test_accuracy"] < 66                  # paper's final 68%
    assert result["mlp_shuffled_mean_test_accuracy"] > result["linear_shuffled_mean_test_accuracy"] + 15
    assert result["history"][-1]["mlp_shuffled_train_loss"] < result["history"][0]["mlp_shuffled_train_loss"]
    assert len(exp.plot(result, tmp_path)) == 1
