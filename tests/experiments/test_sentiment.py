"""sentiment: the data as the file labels it, the ids, the embedding table and the folds
against independent recomputations, bad configs, and a reduced run."""
import os
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import sentiment  # noqa: E402
from fnnet.text.vectors import WordVectors  # noqa: E402


def test_polarity_data_and_ids():
    gensim_utils = pytest.importorskip("gensim.test.utils")
    sentences, labels = sentiment.load_polarity()
    raw = open(gensim_utils.datapath("pang_lee_polarity.cor"), "rb").read().splitlines()
    assert len(sentences) == len(raw) == 200
    np.testing.assert_array_equal(labels, [int(line.startswith(b"__label__pos ")) for line in raw])
    assert labels.sum() == 100
    assert sentences[0] == ["simplistic", "silly", "and", "tedious"]
    words, ids = sentiment.encode(sentences)
    assert words[0] == "<pad>" and len(set(words)) == len(words)
    assert ids.shape == (200, max(len(s) for s in sentences))
    for n in (0, 57, 199):
        k = len(sentences[n])
        assert [words[i] for i in ids[n, :k]] == sentences[n] and not ids[n, k:].any()
    assert words[1] == max({w for s in sentences for w in s}, key=lambda w: sum(s.count(w) for s in sentences))


def test_embedding_table_keeps_word2vec_rows(rng):
    wv = WordVectors(("good", "film", "bad"), rng.normal(size=(3, 4)).astype(np.float32))
    words = ["<pad>", "film", "awful", "good"]
    table, a, covered = sentiment.embedding_table(words, wv, jax.random.key(0), 4)
    np.testing.assert_allclose(a, np.sqrt(3 * np.var(np.asarray(wv.vectors))), rtol=1e-6)
    np.testing.assert_array_equal(covered, [False, True, False, True])
    np.testing.assert_array_equal(table[1], wv["film"])
    np.testing.assert_array_equal(table[3], wv["good"])
    np.testing.assert_array_equal(table[0], 0.0)
    assert np.all(np.abs(table[2]) <= a) and np.any(table[2] != 0)


def test_folds_are_stratified_and_cover_every_sentence():
    labels = np.array([0] * 100 + [1] * 100)
    folds = sentiment.folds_of(labels, 10, seed=3)
    assert len(folds) == 10
    np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(200))
    assert all(len(f) == 20 and labels[f].sum() == 10 for f in folds)
    assert not np.array_equal(folds[0], sentiment.folds_of(labels, 10, seed=4)[0])


def test_bad_config_raises():
    with pytest.raises(ValueError, match="expected epochs > 0, got 0"):
        sentiment.Config(epochs=0)
    with pytest.raises(ValueError, match="models"):
        sentiment.Config(models=("v3",))
    with pytest.raises(ValueError, match="folds >= 2"):
        sentiment.Config(folds=1)
    with pytest.raises(ValueError, match="dropout"):
        sentiment.Config(dropout=1.0)


def test_reduced_run(tmp_path):
    config = sentiment.Config(models=("v1",), inits=("scratch", "word2vec_frozen"), folds=2, seeds=2, epochs=8,
                              vectors="gensim", word2vec_epochs=2)
    result = sentiment.run(config)
    assert [(r["model"], r["init"]) for r in result["rows"]] == [("v1", "scratch"), ("v1", "word2vec_frozen")]
    scratch, frozen = result["rows"]
    assert len(result["per_fold"]["v1/scratch"]) == 2
    np.testing.assert_allclose(scratch["accuracy_mean"], np.mean(result["per_fold"]["v1/scratch"]))
    # 100 training sentences are memorised by the trainable table, not by 202 output weights
    assert scratch["train_accuracy_mean"] > 0.95 > frozen["train_accuracy_mean"]
    assert frozen["params"] == 100 * 2 + 2 and scratch["params"] == result["vocabulary"] * 100 + frozen["params"] + 100
    assert 0.5 < result["coverage"]["tokens"] < 1.0
    assert all(0.0 <= r["accuracy_mean"] <= 1.0 for r in result["rows"])
    paths = sentiment.plot(result, str(tmp_path))
    assert len(paths) == 1 and os.path.getsize(paths[0]) > 5000
