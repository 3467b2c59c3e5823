"""Beam search throughput: fnnet's compiled beam search against a Python-loop beam search.

The model is the date-translation attention encoder-decoder at the course's sizes
(:func:`fnnet.models.seq2seq.attention_seq2seq`: source vocabulary 44, length 30,
Bi-LSTM 32, LSTM decoder 64, target vocabulary 12), random weights, width 5, 10 output
steps, an end token. Variants, in one process, on the same sentences:

- ``fnnet``: :func:`fnnet.text.beam_search.beam_search` for the whole batch of
  sentences in one ``jax.jit`` program (encoder included).
- ``python_loop``: the straightforward implementation: for each sentence, encode it
  (jitted), then per output step call the jitted one-step decoder on its ``K`` beams,
  take log-softmax and the top ``K`` of the ``K V`` candidates in NumPy, reorder the
  carry by the chosen parents, freeze beams that produced the end token; the same
  decoder step as fnnet's, compiled once.

Both give the same best sequences (checked before timing). Rounds interleave the
variants; reported: median sentences per second of each, the median per-round ratio,
and the load average.

    python benchmarks/bench_beam.py [--sentences 64] [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.models.seq2seq import attention_seq2seq
from fnnet.text.beam_search import beam_search

SV, TV, S, MAX_LEN, WIDTH, EOS = 44, 12, 30, 10, 5, 1


def python_beam_search(step, encode, params, source, width=WIDTH, max_len=MAX_LEN, eos=EOS):
    """One sentence at a time; the beams of a sentence are the batch of the jitted step."""
    out = []
    for i in range(source.shape[0]):
        carry, start = encode(params, source[i:i + 1])
        carry = jax.tree.map(lambda x: jnp.repeat(x, width, axis=0), carry)
        tokens = jnp.repeat(start, width)
        scores = np.full(width, -np.inf)
        scores[0] = 0.0
        done = np.zeros(width, bool)
        seqs = np.full((width, max_len), eos, np.int64)
        for t in range(max_len):
            carry, logits = step(params, carry, tokens)
            logits = np.asarray(logits, np.float64)
            log_p = logits - logits.max(-1, keepdims=True)
            log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
            log_p[done] = -np.inf
            log_p[done, eos] = 0.0
            cand = (scores[:, None] + log_p).ravel()
            best = np.argsort(-cand, kind="stable")[:width]
            parent, token = best // TV, best % TV
            scores, done = cand[best], done[parent] | (token == eos)
            seqs = seqs[parent]
            seqs[:, t] = token
            carry = jax.tree.map(lambda x: x[jnp.asarray(parent)], carry)
            tokens = jnp.asarray(token, jnp.int32)
            if done.all():
                break
        out.append(seqs[0])
    return np.stack(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    model = attention_seq2seq(SV, TV, S, start_token=0, embed_dim=16, encoder_hidden=32, decoder_hidden=64,
                              attention_dim=10)
    source = jnp.asarray(np.random.default_rng(0).integers(2, SV, (args.sentences, S)).astype(np.int32))
    params, _ = model.module.init(jax.random.key(0), jnp.zeros((args.sentences, S + MAX_LEN), jnp.int32))

    @jax.jit
    def fnnet_search(params, source):
        step, carry, start = model.decoder(params, source)
        return beam_search(step, carry, start, beam_width=WIDTH, max_len=MAX_LEN, end_token=EOS).sequences[:, 0]

    @jax.jit
    def encode(params, source):
        _, carry, start = model.decoder(params, source)
        return carry, start

    @jax.jit
    def step(params, carry, token):
        carry, logits, _ = model.decode_step(params, carry, token)
        return carry, logits

    ours = np.asarray(fnnet_search(params, source))
    theirs = python_beam_search(step, encode, params, source)
    agree = float(np.mean(np.all(ours == theirs, axis=1)))
    print(f"best sequences equal for {agree:.0%} of {args.sentences} sentences")

    variants = {"fnnet": lambda: jax.block_until_ready(fnnet_search(params, source)),
                "python_loop": lambda: python_beam_search(step, encode, params, source)}
    times = {k: [] for k in variants}
    names = list(variants)
    for r in range(args.rounds):
        for name in names[r % 2:] + names[:r % 2]:
            t0 = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - t0)
    n = args.sentences
    for name in names:
        print(f"{name:12s} {n / statistics.median(times[name]):10.1f} sentences/s "
              f"(median of {args.rounds} rounds, {statistics.median(times[name]) * 1e3:.1f} ms per batch)")
    ratio = statistics.median(p / f for f, p in zip(times["fnnet"], times["python_loop"]))
    print(f"fnnet / python_loop throughput: {ratio:.1f}x  (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
