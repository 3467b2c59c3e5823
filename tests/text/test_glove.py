"""fnnet.text.glove: co-occurrence counts against a NumPy loop, full-batch training step
for step against mittens' GloVe, the entry-by-entry AdaGrad step against a NumPy loop,
and the loss's float64 gradient against finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck
from fnnet.text import corpus as C
from fnnet.text import glove as G


def _corpus(rng, n_sentences=12):
    sentences = [[f"w{int(x)}" for x in rng.zipf(1.6, 15) if x < 25] for _ in range(n_sentences)]
    return C.build_corpus(sentences, min_count=1)


@pytest.mark.parametrize("symmetric,weighting", [(True, True), (False, False)])
def test_cooccurrence_matches_loop(rng, symmetric, weighting):
    corpus = _corpus(rng)
    window = 3
    got = G.cooccurrence(corpus, window=window, symmetric=symmetric, distance_weighting=weighting).dense()
    expected = np.zeros((len(corpus), len(corpus)))
    t, s = corpus.tokens, corpus.sentence_ids
    for q in range(len(t)):
        for p in range(max(0, q - window), q):
            if s[p] == s[q]:
                inc = 1.0 / (q - p) if weighting else 1.0
                expected[t[q], t[p]] += inc          # the word at q, its context before it
                if symmetric:
                    expected[t[p], t[q]] += inc
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    if symmetric:
        np.testing.assert_allclose(got, got.T)


def test_weight_function():
    x = np.array([0.0, 1.0, 50.0, 100.0, 400.0])
    np.testing.assert_allclose(G.glove_weight(jnp.asarray(x)), np.minimum(1.0, (x / 100.0) ** 0.75), rtol=1e-6)


def test_full_batch_matches_mittens_step_for_step(x64, rng):
    mittens = pytest.importorskip("mittens.np_mittens")
    corpus = _corpus(rng)
    counts = G.cooccurrence(corpus, window=3)
    v, d = len(corpus), 4
    init = {k: rng.uniform(-0.5, 0.5, shape) for k, shape in
            (("W", (v, d)), ("C", (v, d)), ("bw", (v, 1)), ("bc", (v, 1)))}
    ref = mittens.GloVe(n=d, xmax=10, alpha=0.75, max_iter=6, learning_rate=0.05, test_mode=True,
                        display_progress=0)
    expected = ref.fit(counts.dense(), fixed_initialization={k: a.copy() for k, a in init.items()})
    config = G.GloVeConfig(vector_size=d, x_max=10.0, epochs=6, batch_size=None, initial_accumulator=0.1)
    params = {"W": init["W"], "C": init["C"], "bw": init["bw"][:, 0], "bc": init["bc"][:, 0]}
    out = G.train(corpus.words, counts, config, key=jax.random.key(0), params=params, dtype=jnp.float64)
    np.testing.assert_allclose(out.vectors.vectors, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.epoch_loss, ref.errors, rtol=1e-10)
    np.testing.assert_allclose(out.params["bw"], ref.bw[:, 0], rtol=1e-10, atol=1e-12)


def test_entry_by_entry_adagrad_matches_loop(x64, rng):
    v, d, k, lr = 6, 3, 10, 0.05
    params = {"W": rng.normal(size=(v, d)), "C": rng.normal(size=(v, d)), "bw": rng.normal(size=v),
              "bc": rng.normal(size=v)}
    acc = {name: rng.uniform(0.5, 1.5, np.shape(p)) for name, p in params.items()}
    rows, cols = rng.integers(0, v, k), rng.integers(0, v, k)        # repeated rows on purpose
    log_x, weights = rng.normal(size=k), rng.uniform(0, 1, k)
    jp = {n: jnp.asarray(p) for n, p in params.items()}
    loss, *grads = G._entry_gradients(jp, jnp.asarray(rows), jnp.asarray(cols), jnp.asarray(log_x),
                                      jnp.asarray(weights))
    new_p, new_a = G._sparse_adagrad(jp, {n: jnp.asarray(a) for n, a in acc.items()}, jnp.asarray(rows),
                                     jnp.asarray(cols), grads, lr)
    ref_p = {n: p.copy() for n, p in params.items()}
    ref_a = {n: a.copy() for n, a in acc.items()}
    ref_loss = 0.0
    for e in range(k):                         # every entry reads the parameters before the step
        i, j = rows[e], cols[e]
        diff = params["W"][i] @ params["C"][j] + params["bw"][i] + params["bc"][j] - log_x[e]
        ref_loss += 0.5 * weights[e] * diff ** 2
        fd = weights[e] * diff
        for name, idx, g in (("W", i, fd * params["C"][j]), ("C", j, fd * params["W"][i]), ("bw", i, fd),
                             ("bc", j, fd)):
            ref_p[name][idx] -= lr * g / np.sqrt(acc[name][idx] + g * g)
            ref_a[name][idx] += g * g
    assert float(loss) == pytest.approx(ref_loss, rel=1e-12)
    for name in params:
        np.testing.assert_allclose(new_p[name], ref_p[name], rtol=1e-12)
        np.testing.assert_allclose(new_a[name], ref_a[name], rtol=1e-12)


def test_loss_gradient_finite_differences(x64, rng):
    v, d, k = 4, 2, 7
    params = {"W": jnp.asarray(rng.normal(size=(v, d))), "C": jnp.asarray(rng.normal(size=(v, d))),
              "bw": jnp.asarray(rng.normal(size=v)), "bc": jnp.asarray(rng.normal(size=v))}
    rows, cols = jnp.asarray(rng.integers(0, v, k)), jnp.asarray(rng.integers(0, v, k))
    log_x, weights = jnp.asarray(rng.normal(size=k)), jnp.asarray(rng.uniform(0, 1, k))
    gradcheck.check_gradients(jax.jit(lambda p: G.glove_loss(p, rows, cols, log_x, weights)), params)


def test_minibatch_training_lowers_the_loss(rng):
    corpus = _corpus(rng, 30)
    counts = G.cooccurrence(corpus, window=3)
    out = G.train(corpus.words, counts, G.GloVeConfig(vector_size=5, epochs=8, batch_size=16),
                  key=jax.random.key(0))
    assert out.epoch_loss[-1] < 0.7 * out.epoch_loss[0]
    assert out.vectors.vectors.shape == (len(corpus), 5)


def test_bad_inputs_raise(rng):
    corpus = _corpus(rng)
    counts = G.cooccurrence(corpus, window=2)
    with pytest.raises(ValueError, match="expected window >= 1, got 0"):
        G.cooccurrence(corpus, window=0)
    with pytest.raises(ValueError, match="expected epochs > 0, got 0"):
        G.GloVeConfig(epochs=0)
    with pytest.raises(ValueError, match=f"expected {counts.size} words"):
        G.train(corpus.words[:-1], counts, G.GloVeConfig(), key=jax.random.key(0))
    with pytest.raises(ValueError, match="expected params of shapes"):
        G.train(corpus.words, counts, G.GloVeConfig(vector_size=3), key=jax.random.key(0),
                params={"W": np.zeros((2, 3)), "C": np.zeros((2, 3)), "bw": np.zeros(2), "bc": np.zeros(2)})
