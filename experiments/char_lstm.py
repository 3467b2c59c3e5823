"""char_lstm: a two-layer LSTM character language model, with an end token.

Same text and held-out split as ``char_rnn`` (the Python reference manual from
``pydoc_data.topics``, or any file via ``Config.text_path``; the last 10% of the
characters held out), but each topic ends with the special token ``<eos>`` instead of
the newline that joins them, so the model learns where a topic ends and sampling can
stop there. One-hot characters feed two stacked fnnet LSTM cells and a dense layer
to the vocabulary (``serial(rnn(lstm_cell), rnn(lstm_cell), dense)``; sampling
runs the same params one step at a time through the cells). Each training step reads a
batch of windows at random offsets of the text stream, drawn from a key per step (all
``steps x batch_size`` windows drawn up front, 6 MB at the defaults), and
``fnnet.train.fit`` trains on them in order with Adam and global-norm clipping,
``log_every`` steps per compiled ``lax.scan``, one-hot encoding each batch inside the
step (``batch_hook``).
Held-out bits per character are measured over the held-out text as one stream from a
zero state, as for ``char_rnn``.

Shows: the LSTM's held-out bits per character are below the tanh RNN's (char_rnn).
Full run (hidden 128, 1,500 steps of 32 x 64 characters, 34 s on 2 quiet CPU cores,
115 s at a load of ~10, 265,320 params): held-out 1.88 bits per character (1.8813), against char_rnn's
2.38-2.63. Before the loop was ``fit``'s (the same windows, drawn inside a hand-written
scan) the run took 163 s and gave 1.88 too.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import nn, optim, text, train
from fnnet.train.config import check_config, require

EOS = "<eos>"


CPU_SECONDS = 35  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                          # seed of the initialisation, the training windows and the samples
    hidden: int = 128                      # units per LSTM layer
    layers: int = 2                        # stacked LSTM layers
    seq_length: int = 64                   # characters per training window
    batch_size: int = 32                   # windows per step
    learning_rate: float = 3e-3            # Adam learning rate
    clip_norm: float = 5.0                 # global-norm gradient clipping threshold
    steps: int = 1500                      # training steps (a multiple of log_every)
    log_every: int = 250                   # steps per compiled block and logged point
    holdout_fraction: float = 0.1          # share of the text held out (its end), in (0, 1)
    text_path: Optional[str] = None        # text file, split at blank lines; None: the Python reference manual
    max_chars: Optional[int] = None        # use only the first max_chars characters (tests); None: all
    sample_length: int = 400               # most characters per sample (a sample stops at <eos>)
    temperatures: tuple[float, ...] = (0.5, 0.8, 1.0)  # sampling temperatures, one sample each

    def __post_init__(self):
        check_config(self, positive=("hidden", "layers", "seq_length", "batch_size", "learning_rate", "clip_norm",
                                     "steps", "log_every", "max_chars", "sample_length", "temperatures"),
                     ranges={"holdout_fraction": "(0, 1)"})
        require(self, "steps", self.steps % self.log_every == 0, f"a multiple of log_every ({self.log_every})")


# ----------------------------------------------------------------------------- data

def load_corpus(config: Config):
    """(vocab, ids, split index, fingerprint): topics (or the file's paragraphs) joined by <eos>."""
    if config.text_path is None:
        docs = text.python_reference_topics()
    else:
        docs = text.load_text(config.text_path).split("\n\n")
    if config.max_chars is not None:                    # the first max_chars characters of the documents
        kept, left = [], config.max_chars
        for d in docs:
            if left <= 0:
                break
            kept.append(d[:left])
            left -= len(d) + 1
        docs = kept
    joined = "\n".join(docs)
    vocab = text.Vocab.from_text(docs, specials=(EOS,))
    ids = np.concatenate([vocab.encode(d, eos=EOS) for d in docs])
    split = int(len(ids) * (1 - config.holdout_fraction))
    return vocab, ids, split, text.text_fingerprint(joined)


# ----------------------------------------------------------------------------- model

def make_model(config: Config, vocab_size: int):
    """``serial(rnn(lstm_cell(h)), rnn(lstm_cell(h)), dense(V))`` over one-hot (N, T, V); also the cells."""
    cells = [nn.lstm_cell(config.hidden) for _ in range(config.layers)]
    return nn.serial(*[nn.rnn(c) for c in cells], nn.dense(vocab_size)), cells


def init_params(config: Config, vocab_size: int, key):
    """(cells, params) with params ``{"0": lstm, "1": lstm, ..., str(layers): dense}``."""
    model, cells = make_model(config, vocab_size)
    params, _ = model.init(key, jax.ShapeDtypeStruct((1, config.seq_length, vocab_size), jnp.float32))
    return cells, params


def sequence_logits(model, params, tokens):
    """Logits (N, T, V) of the model over ids (N, T), from a zero state."""
    logits, _ = model.apply(params, {str(i): {} for i in range(len(params))},
                            jax.nn.one_hot(tokens, params[str(len(params) - 1)]["kernel"].shape[1]))
    return logits


def initial_carry(cells, params, batch: int, vocab_size: int):
    x = jnp.zeros((batch, vocab_size))
    return [cell.initial_carry(params[str(i)], x if i == 0 else x[:, :params[str(i)]["w_hh"].shape[0]])
            for i, cell in enumerate(cells)]


def step(cells, params, carry, token):
    """One character (ids of shape (B,)) through the stack with the cells: (carry, logits (B, V))."""
    out = params[str(len(cells))]
    x = jax.nn.one_hot(token, out["kernel"].shape[1])
    new = []
    for i, cell in enumerate(cells):
        c, x = cell.apply(params[str(i)], carry[i], x)
        new.append(c)
    return new, x @ out["kernel"] + out["bias"][None, :]


def sample(cells, params, vocab, key, length: int, temperature: float) -> str:
    """A topic sampled from its start (after an <eos>) until the model emits <eos> (or ``length``)."""
    carry = initial_carry(cells, params, 1, len(vocab))
    first = jnp.full((1,), vocab.index(EOS), jnp.int32)
    ids = text.sample_sequence(lambda c, t: step(cells, params, c, t), carry, first, key, length,
                               temperature=temperature, end_token=vocab.index(EOS))
    return vocab.decode(ids[:, 0], stop_at=EOS)


# ----------------------------------------------------------------------------- experiment

def training_windows(train_ids, config: Config, key):
    """The windows of every step: step ``i`` reads ``batch_size`` windows of
    ``seq_length + 1`` ids at offsets ``randint(fold_in(key, i))``; inputs ``(S * B, T)``
    and next-id targets, in step order."""
    T, B = config.seq_length, config.batch_size
    starts = jax.vmap(lambda i: jax.random.randint(jax.random.fold_in(key, i), (B,), 0,
                                                   train_ids.shape[0] - T - 1))(jnp.arange(config.steps))
    windows = np.asarray(train_ids)[np.asarray(starts).reshape(-1)[:, None] + np.arange(T + 1)[None, :]]
    return windows[:, :-1].astype(np.int32), windows[:, 1:].astype(np.int32)


def run(config: Config) -> dict:
    vocab, ids, split, fingerprint = load_corpus(config)
    V = len(vocab)
    held_ids = jnp.asarray(ids[split:])
    key = jax.random.key(config.seed)
    model, cells = make_model(config, V)
    _, params = init_params(config, V, jax.random.fold_in(key, 0))
    opt = optim.chain(optim.clip_by_global_norm(config.clip_norm), optim.adam(config.learning_rate))
    x, y = training_windows(ids[:split], config, jax.random.fold_in(key, 1))
    state = {str(i): {} for i in range(len(params))}

    def one_hot(xb, yb, _):                               # ids -> one-hot inside the compiled step
        return jax.nn.one_hot(xb, V), yb

    start = time.perf_counter()
    fitted = train.fit(model, text.cross_entropy_nats, opt, params, state, (x, y), key=jax.random.fold_in(key, 2),
                       batch_size=config.batch_size, steps=config.steps, eval_every=config.log_every,
                       shuffle=False, compile_epochs=True, batch_hook=one_hot)
    seconds = time.perf_counter() - start
    params = fitted.params
    history = [{"step": h["step"], "train_loss": h["train_loss"], "train_bpc": h["train_loss"] / math.log(2)}
               for h in fitted.history]
    bpc = float(jax.jit(lambda p: text.bits_per_character(sequence_logits(model, p, held_ids[None, :-1])[0],
                                                          held_ids[1:]))(params))
    history[-1]["heldout_bpc"] = bpc
    samples = {str(t): sample(cells, params, vocab, jax.random.fold_in(key, 2 + j), config.sample_length, t)
               for j, t in enumerate(config.temperatures)}
    return {"heldout_bpc": bpc, "uniform_bpc": math.log2(V), "vocab_size": V,
            "train_chars": int(split), "heldout_chars": int(len(ids) - split), "text_fingerprint": fingerprint,
            "params": nn.count_params(params), "train_seconds": seconds, "steps": config.steps,
            "samples": samples, "history": history}


def plot(result: dict, out_dir: str) -> list:
    import os
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([h["step"] for h in result["history"]], [h["train_bpc"] for h in result["history"]],
            label="training (mean over the block)")
    ax.axhline(result["heldout_bpc"], color="k", ls="--", label=f"held-out {result['heldout_bpc']:.2f}")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    ax.set_title("char_lstm: 2-layer LSTM on the Python reference manual")
    ax.legend()
    path = os.path.join(out_dir, "char_lstm_loss.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return [path]
