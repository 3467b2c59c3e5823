"""fnnet.text.corpus against gensim (tokens, vocabulary order and counts, subsampling
probabilities) and NumPy loops (noise table, subsampling, skip-gram pairs, CBOW windows)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet.text import corpus as C


def _lee_lines(n=40):
    utils = pytest.importorskip("gensim.test.utils")
    with open(utils.datapath("lee_background.cor"), encoding="utf-8") as f:
        return [line for _, line in zip(range(n), f)]


def test_simple_tokens_match_gensim_simple_preprocess():
    gensim_utils = pytest.importorskip("gensim.utils")
    lines = _lee_lines() + ["The 2 fire-crews (NSW) fought on_site _x über Ünïcode a abcdefghijklmnopq."]
    for line in lines:
        assert C.simple_tokens(line) == gensim_utils.simple_preprocess(line)


def test_vocabulary_and_keep_probabilities_match_gensim():
    word2vec = pytest.importorskip("gensim.models.word2vec")
    sentences = [C.simple_tokens(line) for line in _lee_lines()]
    corpus = C.build_corpus(sentences, min_count=2)
    model = word2vec.Word2Vec(min_count=2, sample=1e-3)
    model.build_vocab(sentences)
    assert list(corpus.words) == model.wv.index_to_key
    np.testing.assert_array_equal(corpus.counts, [model.wv.get_vecattr(w, "count") for w in corpus.words])
    keep = C.keep_probabilities(corpus.counts, 1e-3)
    gensim_keep = np.array([model.wv.get_vecattr(w, "sample_int") for w in corpus.words]) / (2 ** 32 - 1)
    np.testing.assert_allclose(keep, gensim_keep, atol=1e-9)
    # the tokens are the sentences with out-of-vocabulary words removed, in order
    index = {w: i for i, w in enumerate(corpus.words)}
    expected = [(index[t], j) for j, s in enumerate(sentences) for t in s if t in index]
    np.testing.assert_array_equal(corpus.tokens, [t for t, _ in expected])
    np.testing.assert_array_equal(corpus.sentence_ids, [j for _, j in expected])
    assert corpus.raw_words == sum(map(len, sentences)) and corpus.vocab.index(corpus.words[3]) == 3


def test_max_vocab_keeps_the_most_frequent_in_gensim_tie_order():
    sentences = [["b", "a", "c", "a", "d"], ["c", "b", "e", "a"]]   # a:3, b:2, c:2, d:1, e:1
    corpus = C.build_corpus(sentences, min_count=1, max_vocab=3)
    assert corpus.words == ("a", "c", "b") and corpus.counts.tolist() == [3, 2, 2]
    np.testing.assert_array_equal(corpus.tokens, [2, 0, 1, 0, 1, 2, 0])
    np.testing.assert_array_equal(corpus.sentence_ids, [0, 0, 0, 0, 1, 1, 1])


def test_mikolov_subsampling_formula():
    counts = np.array([1000, 100, 10, 1])
    keep = C.keep_probabilities(counts, 1e-2, variant="mikolov2013")
    total = counts.sum()
    expected = [min(1.0, math.sqrt(1e-2 / (c / total))) for c in counts]
    np.testing.assert_allclose(keep, expected)
    assert C.keep_probabilities(counts, 0.0).tolist() == [1.0] * 4


def test_unigram_table_matches_loop_and_shares():
    counts = np.array([50, 20, 7, 3, 1])
    size = 997
    table = C.unigram_table(counts, size)
    weights = counts ** 0.75
    cumulative = np.cumsum(weights / weights.sum())
    loop = []
    for a in range(size):                       # first word whose cumulative share exceeds a / size
        i = 0
        while cumulative[i] <= a / size and i < len(counts) - 1:
            i += 1
        loop.append(i)
    np.testing.assert_array_equal(table, loop)
    shares = np.bincount(table, minlength=5) / size
    np.testing.assert_allclose(shares, weights / weights.sum(), atol=1.5 / size)
    np.testing.assert_allclose(C.noise_distribution(counts), weights / weights.sum())


def test_subsample_packs_kept_tokens_in_order(rng):
    tokens = rng.integers(0, 6, 50).astype(np.int32)
    sentences = np.sort(rng.integers(0, 4, 50)).astype(np.int32)
    keep_p = rng.uniform(0, 1, 6).astype(np.float32)
    u = rng.uniform(0, 1, 50).astype(np.float32)
    kept, kept_s, n = C.subsample(jnp.asarray(u), jnp.asarray(tokens), jnp.asarray(sentences), jnp.asarray(keep_p))
    loop = [(t, s) for t, s, x in zip(tokens, sentences, u) if x < keep_p[t]]
    assert int(n) == len(loop)
    np.testing.assert_array_equal(np.asarray(kept)[:len(loop)], [t for t, _ in loop])
    np.testing.assert_array_equal(np.asarray(kept_s)[:len(loop)], [s for _, s in loop])
    assert np.all(np.asarray(kept_s)[len(loop):] == -1)


def _pairs_loop(tokens, sentences, n_valid, centers, shrink, window):
    out = set()
    for c, b in zip(centers, shrink):
        if c >= n_valid:
            continue
        for j in range(c - (window - b), c + (window - b) + 1):
            if j != c and 0 <= j < n_valid and sentences[j] == sentences[c]:
                out.add((int(c), int(j)))
    return out


def test_skipgram_pairs_and_cbow_contexts_match_loops(rng):
    window, n, n_valid = 4, 40, 35
    tokens = rng.integers(0, 9, n).astype(np.int32)
    sentences = np.sort(rng.integers(0, 5, n)).astype(np.int32)
    centers = np.array([0, 1, 5, 12, 20, 33, 34, 36, 39], np.int32)
    shrink = rng.integers(0, window, len(centers)).astype(np.int32)
    args = (jnp.asarray(tokens), jnp.asarray(sentences), n_valid, jnp.asarray(centers), jnp.asarray(shrink), window)
    center_ids, context, mask = jax.jit(C.skipgram_pairs, static_argnums=5)(*args)
    offsets = np.r_[np.arange(-window, 0), np.arange(1, window + 1)]
    got = {(int(centers[b]), int(centers[b] + offsets[m])) for b, m in zip(*np.nonzero(np.asarray(mask)))}
    assert got == _pairs_loop(tokens, sentences, n_valid, centers, shrink, window)
    for b, m in zip(*np.nonzero(np.asarray(mask))):
        assert context[b, m] == tokens[centers[b] + offsets[m]] and center_ids[b, m] == tokens[centers[b]]
    center, ctx, cmask = C.cbow_contexts(*args)
    np.testing.assert_array_equal(cmask, mask)
    np.testing.assert_array_equal(np.where(cmask, ctx, -1), np.where(mask, context, -1))
    np.testing.assert_array_equal(center, tokens[np.minimum(centers, n - 1)])


def test_bad_corpora_raise():
    with pytest.raises(ValueError, match="at least one token, got 2 sentences and no token"):
        C.build_corpus([[], []])
    with pytest.raises(ValueError, match="min_count=5 leaves no word in the vocabulary"):
        C.build_corpus([["a", "b", "a"]], min_count=5)
    with pytest.raises(ValueError, match="expected min_count >= 1, got 0"):
        C.build_corpus([["a"]], min_count=0)
    with pytest.raises(TypeError, match="lists of strings"):
        C.build_corpus([[1, 2]])
    with pytest.raises(ValueError, match="expected variant in"):
        C.keep_probabilities([1, 2], 1e-3, variant="paper")
