"""date_translation: the date generator's pairs are right by construction, bad configs fail
early, and a reduced run learns well past chance."""
import datetime
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import date_translation  # noqa: E402


def test_generated_dates_parse_back_to_their_iso_targets():
    pairs = date_translation.make_dates(300, seed=5, max_chars=30)
    assert len(pairs) == 300 and all(len(h) <= 30 for h, _ in pairs)
    months = {m: i + 1 for i, m in enumerate(["january", "february", "march", "april", "may", "june", "july",
                                              "august", "september", "october", "november", "december"])}
    checked = 0
    for human, iso in pairs:
        day = datetime.date.fromisoformat(iso)
        assert datetime.date(1970, 1, 1) <= day <= datetime.date(2025, 12, 31)
        assert human == human.lower() and "," not in human
        assert str(day.day) in human and (str(day.year) in human or f"{day.year % 100:02d}" in human)
        if "/" in human:                                   # en_US short: M/d/yy
            m, d, y = (int(v) for v in human.split("/"))
            assert (m, d, y) == (day.month, day.day, day.year % 100)
            checked += 1
        words = [w for w in human.split() if w in months]
        if words:
            assert months[words[0]] == day.month
            checked += 1
    assert checked > 50
    assert date_translation.make_dates(20, 5, 30) == pairs[:20]          # a pure function of its seed
    assert date_translation.make_dates(20, 6, 30) != pairs[:20]


def test_bad_config_raises():
    with pytest.raises(ValueError, match="test_seed"):
        date_translation.Config(seed=3, test_seed=3)
    with pytest.raises(ValueError, match="beam_width"):
        date_translation.Config(beam_width=0)


def test_reduced_run_learns():
    config = date_translation.Config(train_size=3000, test_size=200, epochs=3, heatmap_examples=2)
    result = date_translation.run(config)
    hist = result["history"]
    assert len(hist) == 3 and hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    # chance is 1 in 11 characters; measured: 0.85 free-running, exact match 0.30 greedy, 0.32 beam
    assert hist[-1]["test_token_accuracy"] > 0.7
    assert result["char_accuracy_greedy"] > 0.6
    assert result["exact_match_beam"] >= result["exact_match_greedy"] - 0.05
    ex = result["examples"][0]
    w = np.asarray(ex["attention"])
    assert w.shape == (10, len(ex["source"]))
    # the weights over the real characters: at most 1, and most of it (the rest is on padding)
    assert np.all(w.sum(1) <= 1 + 1e-3) and np.mean(w.sum(1)) > 0.7
