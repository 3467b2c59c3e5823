"""embedding_map: the group cohesion against a loop, a reduced run's map and its plot."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import embedding_map  # noqa: E402


def test_group_cohesion_matches_loop(rng):
    units = rng.normal(size=(6, 4))
    groups = ["a", "a", "b", "b", "b", "c"]
    within, between = embedding_map.group_cohesion(units, groups)
    same = [units[i] @ units[j] for i in range(6) for j in range(6) if i != j and groups[i] == groups[j]]
    other = [units[i] @ units[j] for i in range(6) for j in range(6) if groups[i] != groups[j]]
    assert within == pytest.approx(np.mean(same)) and between == pytest.approx(np.mean(other))


def test_bad_config_raises():
    with pytest.raises(ValueError, match="expected epochs > 0, got 0"):
        embedding_map.Config(epochs=0)
    with pytest.raises(ValueError, match="group:word"):
        embedding_map.Config(words=("man", "woman:people", "x:y"))


def test_reduced_run_and_plot(tmp_path):
    pytest.importorskip("gensim")
    words = ("people:man", "people:woman", "days:monday", "days:friday", "none:notaword")
    result = embedding_map.run(embedding_map.Config(words=words, vector_size=12, epochs=2))
    assert result["missing"] == ["notaword"] and result["words"] == ["man", "woman", "monday", "friday"]
    xy = np.asarray(result["xy"])
    assert xy.shape == (4, 2)
    np.testing.assert_allclose(xy.mean(0), 0, atol=1e-5)                 # PCA coordinates are centred
    assert 0 < sum(result["explained_variance_ratio"]) <= 1 + 1e-6
    paths = embedding_map.plot(result, str(tmp_path))
    assert os.path.getsize(paths[0]) > 10_000
