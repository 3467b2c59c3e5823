"""attention_maps: the written-out pass equals the GPT's, its weights are a causal
softmax (rows sum to 1 over the keys s <= t, 0 beyond), the place shares against a
loop, and the figure is written."""
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import attention_maps as am  # noqa: E402
from fnnet.models.gpt import gpt  # noqa: E402


def test_weights_are_causal_rows_and_logits_match_the_model():
    model = gpt(vocab_size=10, context_length=9, num_layers=2, num_heads=4, embed_dim=32)
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 10, (5, 9)), jnp.int32)
    params, state = model.init(jax.random.key(0), tokens)
    params = jax.tree.map(lambda a: 10 * a, params)          # peaked weights, far from uniform
    logits, weights = am.attention_weights(model, params, tokens)
    reference, _ = model.apply(params, state, tokens)
    np.testing.assert_allclose(logits, reference, rtol=1e-4, atol=1e-4)
    w = np.asarray(weights)
    assert w.shape == (2, 5, 4, 9, 9)
    allowed = np.tril(np.ones((9, 9), bool))                   # key s <= query t
    np.testing.assert_allclose(np.where(allowed, w, 0).sum(-1), 1.0, rtol=1e-5)
    assert np.all(w[..., ~allowed] == 0.0)
    assert np.all(w >= 0)


def test_place_attention_against_a_loop():
    w = np.random.default_rng(1).random((2, 3, 4, 9, 9))      # (L, B, H, T, T), any numbers
    got = np.asarray(am.place_attention(jnp.asarray(w), 3))
    want = np.zeros((2, 4))
    for layer in range(2):
        for head in range(4):
            total = 0.0
            for b in range(3):
                for j in range(3):                             # query predicting c_j; keys a_j, b_j
                    total += w[layer, b, head, 5 + j, 2 - j] + w[layer, b, head, 5 + j, 5 - j]
            want[layer, head] = total / 9
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert am.token_labels(3) == ["a2", "a1", "a0", "b2", "b1", "b0", "c0", "c1", "c2"]


def test_reduced_run_writes_the_figure(tmp_path):
    config = am.Config(digits=2, heldout=100, layers=1, heads=2, embed_dim=16, batch_size=32, steps=20, warmup=5,
                       eval_every=20)
    result = am.run(config)
    assert result["max_logit_difference"] < 1e-4
    w = np.asarray(result["example"]["weights"])               # (1, 2, 6, 6)
    allowed = np.tril(np.ones((6, 6), bool))
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    assert np.all(w[..., ~allowed] == 0.0)
    [path] = am.plot(result, str(tmp_path))
    assert os.path.getsize(path) > 10_000 and path.endswith("attention_maps.png")
