"""fnnet.text.word2vec: the Huffman tree against gensim's, the loss against its formula and
float64 finite differences, one step's gradients against a NumPy loop over the pairs, and
training that separates two topics (skip-gram and CBOW, negative sampling and HS)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck
from fnnet.text import corpus as C
from fnnet.text import vectors as V
from fnnet.text import word2vec as W


def test_huffman_tree_matches_gensim():
    word2vec = pytest.importorskip("gensim.models.word2vec")
    rng = np.random.default_rng(1)
    sentences = [[f"w{int(x)}" for x in rng.zipf(1.3, 40) if x < 60] for _ in range(30)]
    corpus = C.build_corpus(sentences, min_count=1)
    model = word2vec.Word2Vec(min_count=1, hs=1, negative=0)
    model.build_vocab(sentences)
    assert list(corpus.words) == model.wv.index_to_key
    tree = W.huffman_tree(corpus.counts)
    for i, w in enumerate(corpus.words):
        n = tree.lengths[i]
        np.testing.assert_array_equal(tree.codes[i, :n], model.wv.get_vecattr(w, "code"))
        np.testing.assert_array_equal(tree.points[i, :n], model.wv.get_vecattr(w, "point"))


def _loss_inputs(rng, m, layout, b=2, j=3, d=3):
    h = jnp.asarray(rng.normal(size=(b, m, d)))
    o = jnp.asarray(rng.normal(size=(b, j, d)))
    if layout == "negative":            # the centre, then noise words
        labels = jnp.asarray(np.tile([1] + [0] * (j - 1), (b, 1)))
    else:                               # Huffman nodes: 1 - code
        labels = jnp.asarray(rng.integers(0, 2, (b, j)))
    weights = jnp.asarray(rng.integers(0, 2, (b, m, j)).astype(np.float64))
    return h, o, labels, weights


@pytest.mark.parametrize("m,layout", [(3, "negative"), (1, "huffman")])   # skip-gram NS, CBOW HS (M = 1)
def test_loss_matches_formula_and_finite_differences(x64, rng, m, layout):
    h, o, labels, weights = _loss_inputs(rng, m, layout)
    z = np.einsum("bmd,bjd->bmj", h, o)
    y = np.asarray(labels)[:, None, :]
    sig = 1 / (1 + np.exp(-z))
    expected = -np.sum(np.asarray(weights) * (y * np.log(sig) + (1 - y) * np.log(1 - sig)))
    assert float(W.word2vec_loss(h, o, labels, weights)) == pytest.approx(expected, rel=1e-12)
    loss, d_h, d_o = W.word2vec_loss_and_grads(h, o, labels, weights)
    assert float(loss) == pytest.approx(expected, rel=1e-9)
    f = jax.jit(lambda t: W.word2vec_loss(t["h"], t["o"], labels, weights))
    numeric = gradcheck.numerical_gradient(f, {"h": h, "o": o})
    np.testing.assert_allclose(d_h, numeric["h"], rtol=1e-6, atol=1e-8)      # the written-out gradients
    np.testing.assert_allclose(d_o, numeric["o"], rtol=1e-6, atol=1e-8)
    auto = jax.grad(f)({"h": h, "o": o})                                      # and autodiff of the loss
    np.testing.assert_allclose(auto["h"], numeric["h"], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(auto["o"], numeric["o"], rtol=1e-6, atol=1e-8)


def _gradients_loop(config, params, counts, tokens, sentences, n_valid, centers, shrink, out_rows):
    """d_in and d_out of one step, pair by pair, from the noise/path rows the step drew."""
    w_in, w_out = (np.asarray(params[k], np.float64) for k in ("input", "output"))
    d_in, d_out = np.zeros_like(w_in), np.zeros_like(w_out)
    tree = W.huffman_tree(counts) if config.hs else None
    for k, (c, b) in enumerate(zip(centers, shrink)):
        if c >= n_valid:
            continue
        ctx = [j for j in range(c - (config.window - b), c + (config.window - b) + 1)
               if j != c and 0 <= j < n_valid and sentences[j] == sentences[c]]
        center = tokens[c]
        def noise_outputs(drawn):                              # the centre, then noise words unlike it
            return [(int(drawn[0]), 1)] + [(int(r), 0) for r in drawn[1:] if r != center]

        if config.hs:
            n = tree.lengths[center]
            outs = list(zip(tree.points[center, :n], 1 - tree.codes[center, :n]))
        elif config.sg and not config.shared_negatives:      # a draw per pair, by window slot
            j_out = config.negative + 1
            slot = {o: o + config.window - (o > 0) for o in range(-config.window, config.window + 1) if o}
            per_pair = {j: noise_outputs(out_rows[k, slot[j - c] * j_out:(slot[j - c] + 1) * j_out]) for j in ctx}
        else:
            outs = noise_outputs(out_rows[k])
        inputs = [tokens[j] for j in ctx]
        if config.sg:
            groups = [([tokens[j]], w_in[tokens[j]], per_pair[j] if not (config.hs or config.shared_negatives)
                       else outs) for j in ctx]
        elif ctx:
            groups = [(inputs, np.mean(w_in[inputs], axis=0), outs)]
        else:
            groups = []
        for rows, h, pair_outs in groups:
            for r, y in pair_outs:
                e = 1 / (1 + np.exp(-h @ w_out[r])) - y          # dL/dz
                d_out[r] += e * h
                for x in rows:
                    d_in[x] += e * w_out[r]
    return d_in, d_out



@pytest.mark.parametrize("sg,hs,shared", [(True, False, True), (True, False, False), (False, False, True),
                                          (True, True, True), (False, True, True)])
def test_step_gradients_match_a_loop_over_pairs(x64, rng, sg, hs, shared):
    v, n, window = 12, 30, 3
    tokens = rng.integers(0, v, n).astype(np.int32)
    tokens[:v] = np.arange(v)                                  # every word occurs
    sentences = np.sort(rng.integers(0, 3, n)).astype(np.int32)
    counts = np.bincount(tokens, minlength=v)
    config = W.Word2VecConfig(sg=sg, hs=hs, negative=0 if hs else 3, vector_size=4, window=window,
                              window_per_step=False, shared_negatives=shared)
    params = {"input": jnp.asarray(rng.normal(size=(v, 4))),
              "output": jnp.asarray(rng.normal(size=(v - 1 if hs else v, 4)))}
    centers = np.array([0, 4, 9, 17, 28, 29], np.int32)
    shrink = rng.integers(0, window, len(centers)).astype(np.int32)
    table = jnp.asarray(C.unigram_table(counts, 1000))
    tree = tuple(jnp.asarray(a) for a in W.huffman_tree(counts))
    grads = jax.jit(functools.partial(W._gradients, config, shrink=jnp.asarray(shrink), window=window))(
        params, jax.random.key(3), jnp.asarray(tokens), jnp.asarray(sentences), n - 1, jnp.asarray(centers),
        table, tree)
    in_rows, d_in, out_rows, d_out, loss, count = grads
    dense_in = np.zeros((v, 4))
    np.add.at(dense_in, np.asarray(in_rows).ravel(), np.asarray(d_in).reshape(-1, 4))
    dense_out = np.zeros(params["output"].shape)
    np.add.at(dense_out, np.asarray(out_rows).ravel(), np.asarray(d_out).reshape(-1, 4))
    ref_in, ref_out = _gradients_loop(config, params, counts, tokens, sentences, n - 1, centers, shrink,
                                      np.asarray(out_rows))
    np.testing.assert_allclose(dense_in, ref_in, atol=1e-10)
    np.testing.assert_allclose(dense_out, ref_out, atol=1e-10)
    assert np.abs(ref_in).sum() > 0 and np.abs(ref_out).sum() > 0


def _topics_corpus(rng):
    a, b = [f"a{i}" for i in range(8)], [f"b{i}" for i in range(8)]
    sentences = [list(rng.choice(a if k % 2 else b, 12)) for k in range(160)]
    return C.build_corpus(sentences, min_count=1)


@pytest.mark.parametrize("sg,hs", [(True, False), (False, True)])
def test_training_separates_two_topics(rng, sg, hs):
    corpus = _topics_corpus(rng)
    config = W.Word2VecConfig(sg=sg, hs=hs, negative=0 if hs else 5, vector_size=10, window=2, epochs=6,
                              sample=0.0, alpha=0.05, batch_size=64, window_per_step=sg)
    result = W.train(corpus, config, key=jax.random.key(0))
    assert result.epoch_loss[-1] < result.epoch_loss[0]
    units = V.unit_vectors(result.vectors)
    topic = np.array([w[0] == "a" for w in corpus.words])
    sims = units @ units.T
    same = sims[topic[:, None] == topic[None, :]].mean()
    other = sims[topic[:, None] != topic[None, :]].mean()
    assert same - other > 0.3, (same, other)
    first = result.vectors.words[0]
    assert all(w[0] == first[0] for w, _ in V.most_similar(result.vectors, first, topn=4))


def test_bad_configs_and_inputs_raise():
    with pytest.raises(ValueError, match="expected epochs > 0, got 0"):
        W.Word2VecConfig(epochs=0)
    with pytest.raises(ValueError, match="expected negative > 0 with hs=False"):
        W.Word2VecConfig(negative=0)
    with pytest.raises(ValueError, match="expected sample_variant in"):
        W.Word2VecConfig(sample_variant="x")
    with pytest.raises(TypeError, match="expected a Corpus"):
        W.train([["a", "b"]], W.Word2VecConfig(), key=jax.random.key(0))
    with pytest.raises(ValueError, match="at least 2 words, got 1"):
        W.train(C.build_corpus([["a", "a"]], min_count=1), W.Word2VecConfig(hs=True), key=jax.random.key(0))
