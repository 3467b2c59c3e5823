"""char_rnn: Karpathy's minimal character-level RNN language model, compiled.

The model and loop of ``min-char-rnn.py``: a tanh RNN with 100 hidden units over
one-hot characters, ``h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)``,
``y_t = W_hy h_t + b_y``, trained on consecutive chunks of 25 characters by truncated
backpropagation through time (the hidden state carries over between chunks and is
reset at the end of the text), with the summed cross-entropy of the 25 predictions
as the loss, every gradient clipped elementwise to [-5, 5], and Adagrad with learning
rate 0.1 (accumulator starting at 0, eps 1e-8 inside the root, as in the original).
The whole run is a few ``lax.scan`` calls over iterations, each compiled once.

Data: the Python reference manual that ships with Python (``pydoc_data.topics``) or
any text file (``Config.text_path``); the last 10% of the characters are held out.
Reports the smoothed loss curve (``0.999 s + 0.001 loss``, as in the original),
samples at several temperatures and the held-out bits per character.

Full run (100,000 iterations, about 6 passes over the 418,543 training characters,
24 s of training on 2 shared CPU cores at load 8): held-out 2.63 bits per character
(uniform: 6.69), smoothed training loss 43.7 nats per 25 characters (from 115.9);
seeds 1 and 2 give 2.50 and 2.38. The run is sensitive to float32 rounding: Adagrad's
zero initial accumulator turns any near-zero gradient into a step of +-0.1, so the
autodiff backward used before (same gradients to 1e-8) gave 2.44 and 39.6 for seed 0.
The same loop in plain NumPy runs about 545 iterations per second on a quiet core here,
the compiled one 20x faster (median 20.2x; benchmarks/bench_char_rnn.py).

It does not use ``fnnet.train.fit``: truncated backpropagation through time carries the
hidden state from one chunk to the next, and ``fit``'s steps are independent batches.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Optional

import jax
import jax.numpy as jnp

from fnnet import functional as F, optim, text
from fnnet.train.config import check_config, require


CPU_SECONDS = 24  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                        # seed of the initialisation and the samples
    hidden: int = 100                    # units of the tanh RNN
    seq_length: int = 25                 # characters per truncated-BPTT chunk
    learning_rate: float = 0.1           # Adagrad learning rate
    clip: float = 5.0                    # every gradient element is clipped to [-clip, clip]
    iterations: int = 100_000            # training iterations (a multiple of log_every when larger)
    log_every: int = 1000                # iterations per compiled chunk and logged point
    holdout_fraction: float = 0.1        # share of the text held out (its end), in (0, 1)
    text_path: Optional[str] = None      # None: the Python reference manual
    max_chars: Optional[int] = None      # use only the first max_chars characters (tests)
    sample_length: int = 300             # characters per sample
    temperatures: tuple[float, ...] = (0.5, 0.8, 1.0)  # sampling temperatures, one sample each

    def __post_init__(self):
        check_config(self, positive=("hidden", "seq_length", "learning_rate", "clip", "iterations", "log_every",
                                     "max_chars", "sample_length", "temperatures"),
                     ranges={"holdout_fraction": "(0, 1)"})
        require(self, "iterations", self.iterations <= self.log_every or self.iterations % self.log_every == 0,
                f"a multiple of log_every ({self.log_every}) or at most it")


# ----------------------------------------------------------------------------- model

def init_params(key, vocab_size: int, hidden: int) -> dict:
    """min-char-rnn's initialisation: weights N(0, 0.01^2), biases zero.

    ``w_ih`` (V, H), ``w_hh`` (H, H), ``b_h`` (H,), ``w_out`` (H, V), ``b_out`` (V,).
    """
    k = [jax.random.fold_in(key, i) for i in range(3)]
    return {"w_ih": 0.01 * jax.random.normal(k[0], (vocab_size, hidden)),
            "w_hh": 0.01 * jax.random.normal(k[1], (hidden, hidden)),
            "b_h": jnp.zeros(hidden),
            "w_out": 0.01 * jax.random.normal(k[2], (hidden, vocab_size)),
            "b_out": jnp.zeros(vocab_size)}


def cell(params, h, token):
    """One step on a character id: ``h' = tanh(W_xh[token] + h W_hh + b_h)``; returns (h', logits)."""
    h = jnp.tanh(params["w_ih"][token] + h @ params["w_hh"] + params["b_h"])
    return h, h @ params["w_out"] + params["b_out"]


def unroll(params, h0, tokens):
    """Run the RNN over ``tokens`` (T,) from ``h0`` (H,): returns (logits (T, V), h_T).

    The input projection (a row gather, = ``W_xh`` times a one-hot) and the output
    layer are applied to all steps at once; only ``h W_hh`` sits in the loop
    (``fnnet.functional.rnn_recurrence``, whose backward pass is min-char-rnn's: the
    loop carries only ``dh``, and ``dW_hh`` is one matmul after it).
    """
    xw = params["w_ih"][tokens] + params["b_h"][None, :]
    h_T, hs = F.rnn_recurrence(params["w_hh"], h0, xw)
    return hs @ params["w_out"] + params["b_out"][None, :], h_T


def chunk_loss(params, h0, inputs, targets):
    """The summed cross-entropy (nats) of predicting ``targets`` from ``inputs``, and h_T."""
    logits, h = unroll(params, h0, inputs)
    return text.cross_entropy_nats(logits, targets) * inputs.shape[0], h


def make_optimizer(config: Config):
    """Elementwise clipping to [-c, c], then Adagrad as in min-char-rnn, on all the
    weights raveled into one vector (the same steps, one fused update instead of five)."""
    return optim.flatten(optim.chain(optim.clip(config.clip),
                                     optim.adagrad(config.learning_rate, initial_accumulator_value=0.0, eps=1e-8)))


def make_train_chunk(config: Config, data, num_iterations: int):
    """A jitted function running ``num_iterations`` min-char-rnn iterations in one scan.

    Carry: ``(params, opt_state, h, position, smooth_loss)``. Each iteration takes
    the 25 characters at ``position`` (back to 0 with a fresh hidden state when fewer
    than 26 remain), steps, and moves on by 25. Returns the carry and the per-iteration
    (loss, smoothed loss).
    """
    opt = make_optimizer(config)
    seq = config.seq_length
    n = data.shape[0]

    def iteration(carry, _):
        params, opt_state, h, pos, smooth = carry
        reset = pos + seq + 1 >= n
        pos = jnp.where(reset, 0, pos)
        h = jnp.where(reset, jnp.zeros_like(h), h)
        chunk = jax.lax.dynamic_slice(data, (pos,), (seq + 1,))
        (loss, h), grads = jax.value_and_grad(chunk_loss, has_aux=True)(params, h, chunk[:-1], chunk[1:])
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optim.apply_updates(params, updates)
        smooth = 0.999 * smooth + 0.001 * loss
        return (params, opt_state, h, pos + seq, smooth), (loss, smooth)

    @jax.jit
    def train_chunk(carry):
        return jax.lax.scan(iteration, carry, None, length=num_iterations)

    return train_chunk, opt


def initial_carry(config: Config, vocab_size: int, key):
    params = init_params(key, vocab_size, config.hidden)
    opt = make_optimizer(config)
    smooth = jnp.float32(-math.log(1.0 / vocab_size) * config.seq_length)
    return (params, opt.init(params), jnp.zeros(config.hidden), jnp.int32(0), smooth)


@jax.jit
def heldout_bpc(params, tokens):
    """Bits per character of predicting ``tokens[1:]`` from ``tokens[:-1]``, from h = 0."""
    logits, _ = unroll(params, jnp.zeros(params["w_hh"].shape[0]), tokens[:-1])
    return text.bits_per_character(logits, tokens[1:])


def sample(params, vocab, first: str, key, length: int, temperature: float) -> str:
    """``length`` characters after ``first``, drawn at ``temperature``."""
    ids = text.sample_sequence(lambda h, tok: cell(params, h, tok), jnp.zeros(params["w_hh"].shape[0]),
                               jnp.int32(vocab.index(first)), key, length, temperature=temperature)
    return first + vocab.decode(ids)


# ----------------------------------------------------------------------------- experiment

def load_corpus(config: Config):
    """(vocab, train ids, held-out ids, fingerprint) of the configured text."""
    corpus = text.load_text(config.text_path)
    if config.max_chars is not None:
        corpus = corpus[:config.max_chars]
    vocab = text.Vocab.from_text(corpus)
    split = int(len(corpus) * (1 - config.holdout_fraction))
    return vocab, vocab.encode(corpus[:split]), vocab.encode(corpus[split:]), text.text_fingerprint(corpus)


def run(config: Config) -> dict:
    vocab, train_ids, held_ids, fingerprint = load_corpus(config)
    key = jax.random.key(config.seed)
    data = jnp.asarray(train_ids)
    held = jnp.asarray(held_ids)
    carry = initial_carry(config, len(vocab), jax.random.fold_in(key, 0))
    chunk = min(config.log_every, config.iterations)
    train_chunk, _ = make_train_chunk(config, data, chunk)
    train_chunk = train_chunk.lower(carry).compile()     # compile once, outside the timing
    history, seconds = [], 0.0
    for i in range(config.iterations // chunk):
        start = time.perf_counter()
        carry, (losses, smooth) = train_chunk(carry)
        smooth = float(smooth[-1])
        seconds += time.perf_counter() - start
        history.append({"iteration": (i + 1) * chunk, "smooth_loss": smooth,
                        "smooth_bpc": smooth / config.seq_length / math.log(2),
                        "loss": float(losses[-1])})
    params = carry[0]
    bpc = float(heldout_bpc(params, held))
    samples = {str(t): sample(params, vocab, vocab.decode(held_ids[:1]), jax.random.fold_in(key, 1 + j),
                              config.sample_length, t) for j, t in enumerate(config.temperatures)}
    return {"heldout_bpc": bpc, "final_smooth_loss": history[-1]["smooth_loss"],
            "initial_smooth_loss": -math.log(1.0 / len(vocab)) * config.seq_length,
            "uniform_bpc": math.log2(len(vocab)), "vocab_size": len(vocab),
            "train_chars": int(len(train_ids)), "heldout_chars": int(len(held_ids)),
            "text_fingerprint": fingerprint, "iterations": config.iterations,
            "train_seconds": seconds, "iterations_per_second": config.iterations / max(seconds, 1e-9),
            "samples": samples, "history": history}


def plot(result: dict, out_dir: str) -> list:
    import os
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    it = [h["iteration"] for h in result["history"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(it, [h["smooth_bpc"] for h in result["history"]], label="smoothed training loss")
    ax.axhline(result["heldout_bpc"], color="k", ls="--", label=f"held-out {result['heldout_bpc']:.2f}")
    ax.set_xlabel("iteration (25 characters each)")
    ax.set_ylabel("bits per character")
    ax.set_title("char_rnn: min-char-rnn on the Python reference manual")
    ax.legend()
    path = os.path.join(out_dir, "char_rnn_loss.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return [path]
