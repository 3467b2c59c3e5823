"""glove_lee: a reduced run fits GloVe to the Lee co-occurrences (the loss falls, the
entry count equals a direct count of the pairs) and evaluates with the OOV pairs counted."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import glove_lee, word2vec_lee  # noqa: E402


def test_bad_config_raises():
    with pytest.raises(ValueError, match="expected epochs > 0, got 0"):
        glove_lee.Config(epochs=0)
    with pytest.raises(ValueError, match="window"):
        glove_lee.Config(window=0)


def test_reduced_run():
    pytest.importorskip("gensim")
    result = glove_lee.run(glove_lee.Config(vector_size=8, window=2, epochs=5, neighbours=3))
    assert result["final_loss"] < result["first_loss"]
    assert result["vocabulary"] == 3955 and result["wordsim353_oov"] == 220
    # distinct ordered pairs of vocabulary words at most 2 apart in an article, both ways
    sentences = word2vec_lee.lee_sentences()
    counts = {}
    for s in sentences:
        for t in s:
            counts[t] = counts.get(t, 0) + 1
    pairs = set()
    for s in sentences:
        kept = [t for t in s if counts[t] >= 2]
        for i in range(len(kept)):
            for j in range(i + 1, min(i + 3, len(kept))):
                pairs.add((kept[i], kept[j]))
                pairs.add((kept[j], kept[i]))
    assert result["nonzero_entries"] == len(pairs)
    assert len(result["neighbours"]["fire"]) == 3 and -1 <= result["wordsim353"] <= 1
