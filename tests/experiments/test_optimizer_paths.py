"""Reduced optimizer_paths: GD's step count equals its closed form, momentum beats GD."""
from fnnet.cli import load_experiment


def test_optimizer_paths_reduced(tmp_path):
    exp = load_experiment("optimizer_paths")
    config = exp.Config(max_steps=300, lr_log10_min=-2.0, lr_log10_max=0.5, lr_grid_points=26,
                        optimizers=("gd", "momentum", "nesterov", "rmsprop"))
    result = exp.run(config)
    # GD at lr = 2 / (lambda_min + lambda_max) = 0.1 contracts the error by exactly 0.8 per step
    assert result["gd_learning_rate"] == 0.1
    assert result["gd_steps"] == result["gd_steps_closed_form"] == 40
    # the docstring's numbers: momentum 20 steps (lr 0.11 on this grid: 0.126), Nesterov 19,
    # RMSprop 9-10 (lr 1.0 on this coarser grid)
    assert 18 <= result["momentum_steps"] <= 22 and 17 <= result["nesterov_steps"] <= 21
    assert result["nesterov_momentum"] == 0.5
    assert 8 <= result["rmsprop_steps"] <= 12
    assert result["momentum_momentum"] == 0.25  # the heavy-ball optimum for condition number 9
    path = result["optimizers"]["gd"]["path"]
    assert path[0] == [-4.0, -1.0] and len(path) == 41
    assert len(result["history"]) == 41 and result["history"][40]["gd_distance"] < 1e-3
    assert len(exp.plot(result, tmp_path)) == 2
