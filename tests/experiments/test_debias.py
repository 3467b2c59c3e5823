"""debias: the analysis on planted vectors against a NumPy recomputation, bad configs, and a
reduced run of the whole experiment."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import debias  # noqa: E402
from fnnet.text.vectors import WordVectors  # noqa: E402


def _planted(rng, d=16):
    """Unit-ish vectors whose axis 0 is a planted gender axis; "gal"/"guy" are missing."""
    words, vecs = [], []
    for i, (f, m) in enumerate([("she", "he"), ("woman", "man"), ("girl", "boy"), ("mother", "father")]):
        base = rng.normal(size=d) * 0.3
        s = 0.6 + 0.1 * i
        for w, sign in ((f, 1), (m, -1)):
            words.append(w)
            vecs.append(base + sign * s * np.eye(d)[0] + 0.05 * rng.normal(size=d))
    for j, w in enumerate(["nurse", "doctor", "engineer"]):
        words.append(w)
        vecs.append(rng.normal(size=d) * 0.3 + (0.4 - 0.4 * j) * np.eye(d)[0])
    return WordVectors(tuple(words), np.array(vecs, np.float32))


def test_analyse_on_planted_vectors(rng):
    wv = _planted(rng)
    r = debias.analyse(wv, "pca", definitional=(("she", "he"), ("woman", "man"), ("gal", "guy"), ("girl", "boy")),
                       equalize_pairs=(("mother", "father"), ("she", "he"), ("sister", "brother")),
                       occupations=("nurse", "doctor", "engineer", "homemaker"))
    assert r["missing_definitional"] == ["gal", "guy"] and r["missing_equalize"] == ["sister", "brother"]
    assert r["missing_occupations"] == ["homemaker"] and len(r["definitional_pairs"]) == 3
    # the PCA direction written out with NumPy: unit vectors, pair-centred rows, SVD
    unit = {w: v / np.linalg.norm(v) for w, v in zip(wv.words, np.asarray(wv.vectors, np.float64))}
    rows = []
    for a, b in (("she", "he"), ("woman", "man"), ("girl", "boy")):
        mu = (unit[a] + unit[b]) / 2
        rows += [unit[a] - mu, unit[b] - mu]
    _, s, vt = np.linalg.svd(np.array(rows))
    g = vt[0] * np.sign(vt[0] @ (unit["she"] - unit["he"]))
    assert abs(g[0]) > 0.9                                           # it finds the planted axis
    np.testing.assert_allclose(r["explained_variance_ratio"][0], s[0] ** 2 / np.sum(s ** 2), rtol=1e-4)
    by_word = {row["word"]: row for row in r["occupation_rows"]}
    for w in ("nurse", "doctor", "engineer"):
        np.testing.assert_allclose(by_word[w]["before"], unit[w] @ g, atol=1e-5)
        assert abs(by_word[w]["after"]) < 1e-5
    assert by_word["nurse"]["before"] > 0.15 and by_word["engineer"]["before"] < -0.15
    assert [row["word"] for row in r["occupation_rows"]] == ["nurse", "doctor", "engineer"]   # sorted
    for row in r["pair_rows"]:
        a, b = row["pair"]
        np.testing.assert_allclose(row["before"], [unit[a] @ g, unit[b] @ g], atol=1e-5)
        np.testing.assert_allclose(row["after"][0], -row["after"][1], atol=1e-5)   # mirror
        np.testing.assert_allclose(row["norms_after"], [1.0, 1.0], atol=1e-5)
        assert row["distance_gap_after"] < 1e-5 < row["distance_gap_before"]


def test_no_definitional_pair_raises(rng):
    with pytest.raises(ValueError, match="none of the definitional pairs is in the vocabulary"):
        debias.analyse(_planted(rng), definitional=(("gal", "guy"),))


def test_bad_config_raises():
    with pytest.raises(ValueError, match="expected epochs > 0, got 0"):
        debias.Config(epochs=0)
    with pytest.raises(ValueError, match="vectors"):
        debias.Config(vectors="glove")
    with pytest.raises(ValueError, match="direction"):
        debias.Config(direction="svd")


def test_reduced_run(tmp_path):
    result = debias.run(debias.Config(epochs=2, vectors="gensim"))
    assert result["vocabulary"] > 3000
    assert ["she", "he"] in result["definitional_pairs"] and "homemaker" in result["missing_occupations"]
    assert len(result["occupation_rows"]) == len(result["occupations"]) > 20
    assert result["max_abs_projection_after"] < 1e-5 < result["mean_abs_projection_before"]
    for row in result["pair_rows"]:
        assert abs(row["after"][0] + row["after"][1]) < 1e-5
        assert row["distance_gap_after"] < 1e-5
    paths = debias.plot(result, str(tmp_path))
    assert len(paths) == 1 and os.path.getsize(paths[0]) > 10000
