"""sliding_windows: the convolutional pass equals the crop loop on a reduced config."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import sliding_windows  # noqa: E402


def test_reduced_run_outputs_agree():
    config = sliding_windows.Config(window=10, image_size=16, images=2, hidden=32, rounds=1)
    result = sliding_windows.run(config)
    assert result["crop_positions"] == 16
    assert result["max_abs_diff"]["convolutional"] < 1e-5 and result["max_abs_diff"]["batched_crops"] < 1e-5
    assert set(result["median_seconds"]) == {"loop", "batched_crops", "convolutional"}


def test_bad_config_raises():
    with pytest.raises(ValueError, match="expected rounds > 0, got 0"):
        sliding_windows.Config(rounds=0)
    with pytest.raises(ValueError, match="image_size"):
        sliding_windows.Config(window=14, image_size=27)
