"""transfer_digits: the labelled subsets, bad configs, and a reduced run whose table
has every method and k (frozen layers are checked bit-identical inside run)."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import transfer_digits  # noqa: E402


def test_labelled_subset():
    y = np.array([5, 6, 5, 7, 6, 5, 8, 9, 9, 7, 8, 6])
    idx = transfer_digits.labelled_subset(y, range(5, 10), 2, seed=0)
    assert len(idx) == 10 and len(set(idx)) == 10
    assert sorted(np.bincount(y[idx], minlength=10)[5:]) == [2] * 5
    assert np.array_equal(transfer_digits.labelled_subset(y, range(5, 10), 0, seed=0), np.arange(12))
    assert np.array_equal(idx, transfer_digits.labelled_subset(y, range(5, 10), 2, seed=0))


def test_bad_config_raises():
    with pytest.raises(ValueError, match="expected steps > 0, got 0"):
        transfer_digits.Config(steps=0)
    with pytest.raises(ValueError, match="shots"):
        transfer_digits.Config(shots=(1, -5))
    with pytest.raises(ValueError, match="methods"):
        transfer_digits.Config(methods=("frozen", "linear_probe"))


def test_reduced_run_table():
    config = transfer_digits.Config(seeds=2, shots=(2,), pretrain_epochs=2, steps=20, max_shift=0, max_degrees=0,
                                    methods=("frozen", "scratch"))
    r = transfer_digits.run(config)
    assert r["n_test_5_9"] > 400 and len(r["pretrain_test_accuracy_0_4"]) == 2
    assert min(r["pretrain_test_accuracy_0_4"]) > 50.0          # 5 classes: chance is 20%
    (row,) = r["table"]
    assert row["shots"] == 2 and row["labelled"] == 10
    assert "finetune" not in row and "frozen_conv" not in row
    for method in ("frozen", "scratch"):
        seeds = row[method]["seeds"]
        assert len(seeds) == 2 and all(0.0 <= a <= 100.0 for a in seeds)
        assert row[method]["mean"] == pytest.approx(np.mean(seeds), abs=0.01)
