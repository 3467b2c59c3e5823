"""word2vec_lee: a reduced run trains fnnet and gensim on the Lee corpus, counts the
out-of-vocabulary pairs as gensim does, and its loss falls; bad configs fail early."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import word2vec_lee  # noqa: E402


def test_bad_config_raises():
    with pytest.raises(ValueError, match="expected epochs > 0, got 0"):
        word2vec_lee.Config(epochs=0)
    with pytest.raises(ValueError, match="min_alpha"):
        word2vec_lee.Config(alpha=0.01, min_alpha=0.02)


def test_reduced_run_matches_gensim_bookkeeping():
    utils = pytest.importorskip("gensim.test.utils")
    config = word2vec_lee.Config(num_seeds=1, vector_size=16, epochs=3, cbow_epochs=0, neighbours=3)
    result = word2vec_lee.run(config)
    losses = [h["skipgram_loss"] for h in result["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    # the vocabulary and the out-of-vocabulary pairs, counted here from the files
    assert result["vocabulary"] == 3955 and result["corpus_words"] == 58152
    sentences = word2vec_lee.lee_sentences()
    counts = {}
    for s in sentences:
        for t in s:
            counts[t] = counts.get(t, 0) + 1
    vocab = {w for w, c in counts.items() if c >= 2}
    with open(utils.datapath("wordsim353.tsv"), encoding="utf-8") as f:
        rows = [line.split("\t") for line in f if not line.startswith("#")]
    assert result["wordsim353_oov"] == sum(a.lower() not in vocab or b.lower() not in vocab for a, b, _ in rows) == 220
    for impl in ("fnnet", "gensim"):
        assert len(result[f"skipgram_{impl}_wordsim353"]) == 1
        assert -1 <= result[f"skipgram_{impl}_wordsim353_mean"] <= 1
    assert len(result["skipgram_neighbours_fnnet"]["fire"]) == 3
    assert np.isfinite(result["skipgram_wordsim353_gap"]) and "goal_met" in result


@pytest.mark.slow
def test_full_run_meets_the_goal():
    result = word2vec_lee.run(word2vec_lee.Config())
    assert result["goal_met"]
    assert {"crews", "rural", "brigade"} & set(result["skipgram_neighbours_fnnet"]["fire"])
