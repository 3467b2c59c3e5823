"""fnnet.text.vectors against gensim's KeyedVectors (neighbours, 3CosAdd, 3CosMul, word-pair
and analogy evaluation, word2vec files), scipy (Spearman, Pearson) and NumPy formulas."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck
from fnnet.text import vectors as V


def _random_vectors(rng, n=60, d=8):
    words = tuple(f"w{i}" for i in range(n))
    return V.WordVectors(words, rng.normal(size=(n, d)).astype(np.float32))


def _keyed(wv):
    gensim_models = pytest.importorskip("gensim.models")
    kv = gensim_models.KeyedVectors(wv.dim)
    kv.add_vectors(list(wv.words), np.asarray(wv.vectors))
    return kv


def test_cosine_similarity_matches_formula_and_gradient(x64, rng):
    u, v = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    expected = np.sum(u * v, 1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    np.testing.assert_allclose(V.cosine_similarity(jnp.asarray(u), jnp.asarray(v)), expected, rtol=1e-12)
    assert float(V.cosine_similarity(jnp.zeros(3), jnp.ones(3))) == 0.0
    gradcheck.check_gradients(jax.jit(lambda t: jnp.sum(V.cosine_similarity(t["u"], t["v"]) ** 2)),
                              {"u": jnp.asarray(u), "v": jnp.asarray(v)})


def test_most_similar_and_analogies_match_gensim(rng):
    wv = _random_vectors(rng)
    kv = _keyed(wv)
    for query in ("w3", "w17"):
        ours, theirs = V.most_similar(wv, query, topn=5), kv.most_similar(query, topn=5)
        assert [w for w, _ in ours] == [w for w, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-5)
    ours = V.most_similar(wv, ["w1", "w2"], ["w5"], topn=4)
    theirs = kv.most_similar(positive=["w1", "w2"], negative=["w5"], topn=4)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    for a, b, c in (("w1", "w2", "w3"), ("w10", "w0", "w40")):
        add = V.analogy(wv, a, b, c, topn=3)
        ref = kv.most_similar(positive=[b, c], negative=[a], topn=3)
        assert [w for w, _ in add] == [w for w, _ in ref]
        np.testing.assert_allclose([s for _, s in add], [s for _, s in ref], rtol=1e-5)
        mul = V.analogy(wv, a, b, c, method="mul", topn=3)
        ref = kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=3)
        assert [w for w, _ in mul] == [w for w, _ in ref]
        np.testing.assert_allclose([s for _, s in mul], [s for _, s in ref], rtol=1e-5)


def test_analogy_recovers_planted_offsets(rng):
    # king - man + woman = queen exactly: 3CosAdd and 3CosMul both answer queen
    base = rng.normal(size=(30, 6)).astype(np.float32)
    words = [f"x{i}" for i in range(26)] + ["man", "woman", "king", "queen"]
    base[29] = base[28] - base[26] + base[27]
    wv = V.WordVectors(tuple(words), base)
    assert V.analogy(wv, "man", "king", "woman")[0][0] == "queen"


def test_spearman_and_pearson_match_scipy(rng):
    stats = pytest.importorskip("scipy.stats")
    x = rng.integers(0, 6, 40).astype(float)          # ties
    y = x + rng.normal(size=40)
    assert V.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert V.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)


def test_evaluate_word_pairs_matches_gensim_and_counts_oov(rng, tmp_path):
    wv = _random_vectors(rng)
    kv = _keyed(wv)
    lines = ["# comment line", "# word1\tword2\tscore"]
    for i in range(30):
        a, b = rng.integers(0, 70, 2)                 # w60..w69 are out of vocabulary
        lines.append(f"W{a}\tw{b}\t{rng.uniform(0, 10):.2f}")
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n")
    ours = V.evaluate_word_pairs(wv, path)
    pearson, spearman, oov_pct = kv.evaluate_word_pairs(str(path))
    assert ours["spearman"] == pytest.approx(spearman[0], abs=1e-6)
    assert ours["pearson"] == pytest.approx(pearson[0], abs=1e-6)
    assert 100 * ours["oov_ratio"] == pytest.approx(oov_pct)
    pairs = V.read_word_pairs(path)
    n_oov = sum(int(a[1:]) >= 60 or int(b[1:]) >= 60 for a, b, _ in pairs)
    assert ours["oov"] == n_oov > 0 and ours["used"] + ours["oov"] == ours["pairs"] == 30


def test_evaluate_analogies_matches_gensim(rng, tmp_path):
    wv = _random_vectors(rng, n=40, d=6)
    m = np.asarray(wv.vectors).copy()
    lines = [": first"]
    for q in range(12):
        a, b, c, d = rng.choice(40, 4, replace=False)
        if q % 2 == 0:                                 # plant half of the answers
            m[d] = m[b] - m[a] + m[c]
        lines.append(f"w{a} w{b} w{c} w{d}")
    lines += [": second", "w1 w2 w3 unknown", "w4 w5 w6 w7", "w8 w9 w10 w11"]
    wv = V.WordVectors(wv.words, m)
    path = tmp_path / "questions.txt"
    path.write_text("\n".join(lines) + "\n")
    kv = _keyed(wv)
    score, sections = kv.evaluate_word_analogies(str(path))
    ours = V.evaluate_analogies(wv, path)
    assert ours["correct"] == len(sections[-1]["correct"]) and ours["answered"] == 14
    assert ours["accuracy"] == pytest.approx(score)
    assert ours["oov"] == 1 and ours["sections"]["second"]["oov"] == 1
    assert ours["sections"]["first"]["correct"] == len(sections[0]["correct"])
    mul = V.evaluate_analogies(wv, path, method="mul")
    expected = sum(kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=1)[0][0] == d
                   for _, a, b, c, d in V.read_analogies(path) if d in kv.key_to_index)
    assert mul["answered"] == 14 and mul["correct"] == expected


@pytest.mark.parametrize("binary", [False, True])
def test_files_round_trip_through_gensim(rng, tmp_path, binary):
    gensim_models = pytest.importorskip("gensim.models")
    wv = V.WordVectors(("fire", "crews", "été", "w3"), rng.normal(size=(4, 7)).astype(np.float32))
    path = tmp_path / ("v.bin" if binary else "v.txt")
    V.save_word2vec_format(wv, path, binary=binary)
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert kv.index_to_key == list(wv.words)
    np.testing.assert_array_equal(kv.vectors, wv.vectors)
    back = V.load_word2vec_format(path, binary=binary)
    assert back.words == wv.words
    np.testing.assert_array_equal(back.vectors, wv.vectors)
    other = tmp_path / "gensim.out"                          # and gensim's own files read back here
    kv.save_word2vec_format(str(other), binary=binary)
    np.testing.assert_array_equal(V.load_word2vec_format(other, binary=binary).vectors, wv.vectors)


def test_bad_input_raises_clear_errors(rng, tmp_path):
    wv = _random_vectors(rng, n=5)
    with pytest.raises(KeyError, match="'nope' is not in the vocabulary"):
        V.most_similar(wv, "nope")
    with pytest.raises(KeyError, match="'nope'"):
        V.analogy(wv, "w0", "w1", "nope")
    with pytest.raises(ValueError, match="three distinct words"):
        V.analogy(wv, "w0", "w1", "w0")
    with pytest.raises(ValueError, match="expected method in"):
        V.analogy(wv, "w0", "w1", "w2", method="sum")
    with pytest.raises(ValueError, match=r"one vector per word \(3 words\), got 2 rows"):
        V.WordVectors(("a", "b", "c"), np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="distinct words"):
        V.most_similar(V.WordVectors(("a", "a"), np.ones((2, 3), np.float32)), "a")
    with pytest.raises(ValueError, match="without whitespace"):
        V.save_word2vec_format(V.WordVectors(("a b",), np.ones((1, 3), np.float32)), tmp_path / "x")
    with pytest.raises(ValueError, match="at least 2 pairs in the vocabulary, got 0 of 1"):
        V.evaluate_word_pairs(wv, [("zz", "w1", 3.0)])
    with pytest.raises(ValueError, match="of one shape"):
        V.cosine_similarity(jnp.ones(3), jnp.ones(4))
