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
    assert result["momentum_steps"] < result["gd_steps"] and result["nesterov_steps"] < result["gd_steps"]
    assert result["momentum_momentum"] == 0.25  # the heavy-ball optimum for condition number 9
    assert result["rmsprop_steps"] is not None
    path = result["optimizers"]["gd"]["path"]
    assert path[0] == [-4.0, -1.0] and len(path) == 41
    assert len(result["history"]) == 41 and result["history"][40]["gd_distance"] < 1e-3
    assert len(exp.plot(result, tmp_path)) == 2
