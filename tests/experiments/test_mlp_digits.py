"""A reduced run of mlp_digits."""
from fnnet.cli import load_experiment as load


def test_mlp_digits_reduced():
    exp = load("mlp_digits")
    result = exp.run(exp.Config(hidden=(64, 64), epochs=8, shift_augment=False))
    assert result["n_train"] == 898 and result["n_test"] == 899
    assert [h["epoch"] for h in result["history"]] == list(range(1, 9))
    assert result["test_accuracy"] > 0.85
