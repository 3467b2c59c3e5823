"""trigger_word: the event and step scores against hand-counted cases and scikit-learn,
bad configs fail early, and a reduced run (2-second clips) learns."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import trigger_word  # noqa: E402
from fnnet.data.synthetic_audio import make_trigger_clips  # noqa: E402


def test_event_counts_by_hand():
    labels = np.zeros((2, 30))
    labels[0, 3:8] = labels[0, 15:20] = labels[1, 10:14] = 1
    probs = np.zeros((2, 30))
    probs[0, 5:7] = 0.9                # hits the first window
    probs[0, 8:9] = 0.8                # a second run next to the same window: a false alarm
    probs[0, 25:27] = 0.7              # nothing there: a false alarm; the second window is missed
    probs[1, 13:16] = 0.6              # overlaps the window's last step: a hit
    assert trigger_word.event_counts(probs, labels, 0.5) == (2, 2, 1)
    assert trigger_word.f1(2, 2, 1) == pytest.approx(2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3))
    assert trigger_word.runs(np.array([1, 1, 0, 1, 0, 0, 1], bool)) == [(0, 2), (3, 4), (6, 7)]


def test_step_f1_equals_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y, p = rng.random(500) < 0.2, rng.random(500) < 0.3
    tp, fp, fn = int(np.sum(p & y)), int(np.sum(p & ~y)), int(np.sum(~p & y))
    assert trigger_word.f1(tp, fp, fn) == pytest.approx(metrics.f1_score(y, p), abs=1e-12)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="test_seed"):
        trigger_word.Config(seed=2, test_seed=2)
    with pytest.raises(ValueError, match="expected epochs > 0, got 0"):
        trigger_word.Config(epochs=0)
    with pytest.raises(ValueError, match="duration"):
        trigger_word.Config(duration=1.0)
    assert trigger_word.output_steps(trigger_word.Config()) == 1247


def test_reduced_run_learns():
    config = trigger_word.Config(train_clips=48, test_clips=8, duration=2.0, conv_filters=8, gru_hidden=8,
                                 batch_size=16, epochs=3, learning_rate=1e-2)
    result = trigger_word.run(config)
    hist = result["history"]
    # 9 steps: measured 0.63 -> 0.47 (the label base rate is learned first)
    assert len(hist) == 3 and hist[-1]["train_loss"] < 0.85 * hist[0]["train_loss"]
    assert result["output_steps"] == 247
    # the plotted labels are the held-out clips' own (regenerated here from the test seed)
    test = make_trigger_clips(config.test_seed, config.test_clips, output_steps=247, duration=2.0)
    ex = result["example"]
    np.testing.assert_array_equal(ex["labels"], test.labels[ex["clip"]])
    assert [list(e) for e in test.events[ex["clip"]]] == ex["events"]
    probs = np.asarray(result["test_probs_first"])
    assert probs.shape == (4, 247) and np.all((probs >= 0) & (probs <= 1))
    assert 0 <= result["event_f1"] <= 1 and 0 <= result["step_f1"] <= 1
    assert result["triggers_in_test"] == sum(w == 0 for ev in test.events for *_, w in ev)
