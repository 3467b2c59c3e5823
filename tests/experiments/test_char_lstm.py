"""char_lstm: a short run learns, sampling stops at the end token."""
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import char_lstm  # noqa: E402


def test_corpus_has_end_tokens():
    config = char_lstm.Config(max_chars=5000)
    vocab, ids, split, _ = char_lstm.load_corpus(config)
    eos = vocab.index(char_lstm.EOS)
    assert eos == 0 and ids[-1] == eos and 0 < split < len(ids)
    first = vocab.decode(ids[:np.argmax(ids == eos)])
    assert first == char_lstm.text.python_reference_topics()[0][:len(first)]


def test_reduced_run_and_sampling():
    config = char_lstm.Config(hidden=32, seq_length=16, batch_size=8, steps=60, log_every=30,
                              max_chars=8_000, sample_length=30, temperatures=(1.0,))
    result = char_lstm.run(config)
    assert result["history"][-1]["train_loss"] < result["history"][0]["train_loss"]
    assert result["heldout_bpc"] < result["uniform_bpc"]
    assert 3.9 < result["heldout_bpc"] < 5.1           # measured on CPU 4.49 (uniform 6.02)
    assert len(result["samples"]["1.0"]) <= 30 and char_lstm.EOS not in result["samples"]["1.0"]
    # a model whose logits put all the mass on <eos> stops at once
    vocab, _, _, _ = char_lstm.load_corpus(config)
    cells, params = char_lstm.init_params(config, len(vocab), jax.random.key(0))
    out = params[str(config.layers)]
    out["bias"] = out["bias"].at[vocab.index(char_lstm.EOS)].set(100.0)
    assert char_lstm.sample(cells, params, vocab, jax.random.key(1), 10, 1.0) == ""
