"""Corpora for word vectors: tokens, vocabulary, subsampling, noise, training windows.

The pieces word2vec and GloVe need, each a small function:

- :func:`simple_tokens`: lowercase alphabetic words of 2 to 15 letters (gensim's
  ``simple_preprocess``), and :func:`build_corpus`: the vocabulary (``min_count``,
  ``max_vocab``; most frequent first, ties by latest first appearance, as gensim
  orders them) and the token ids of the sentences, with the sentence of each token.
  ``Corpus.vocab`` is the same vocabulary as a :class:`fnnet.text.vocab.Vocab`.
- :func:`keep_probabilities`: frequent-word subsampling. With ``t = sample`` and
  ``f = count / total``, the probability of keeping a word is

      ``"word2vec"`` (the C tool and gensim):   ``p = (sqrt(f / t) + 1) t / f``
      ``"mikolov2013"`` (the paper, eq. 5):     ``p = sqrt(t / f)``

  both capped at 1.
- :func:`noise_distribution` ``P(w) = c_w^0.75 / sum_v c_v^0.75`` and
  :func:`unigram_table`, the C tool's table of word ids in which word ``w`` fills a
  fraction ``P(w)`` of the slots (a uniform slot is a draw from ``P``).
- Inside a compiled step (JAX, no Python loop): :func:`subsample` drops tokens by
  their keep probabilities and packs the kept ones to the front (windows then span the
  kept tokens, as in word2vec); :func:`skipgram_pairs` and :func:`cbow_contexts` give,
  for a batch of centre positions and a shrunk window ``W - b`` per centre (``b``
  uniform in ``[0, W)``, word2vec's "dynamic window"), the (centre, context) pairs or
  the context ids, masked where the window leaves the sentence, the kept tokens, or
  its shrunk width.

Imports: jax, numpy, fnnet.text.vocab and the standard library.
"""
from __future__ import annotations

import collections
import dataclasses
import re
from typing import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.text.vocab import Vocab

__all__ = ["Corpus", "simple_tokens", "build_corpus", "keep_probabilities", "noise_distribution",
           "unigram_table", "subsample", "skipgram_pairs", "cbow_contexts", "SUBSAMPLING_VARIANTS"]

SUBSAMPLING_VARIANTS = ("word2vec", "mikolov2013")
_ALPHABETIC = re.compile(r"((?![\d])\w)+", re.UNICODE)


def simple_tokens(text: str, *, min_len: int = 2, max_len: int = 15) -> list[str]:
    """Lowercase runs of letters (``\\w`` without digits) of ``min_len`` to ``max_len``
    characters, those starting with ``_`` dropped: gensim's ``simple_preprocess``.

    >>> simple_tokens("The 2 fire-crews (NSW) fought on_site.")
    ['the', 'fire', 'crews', 'nsw', 'fought', 'on_site']
    """
    return [m.group() for m in _ALPHABETIC.finditer(text.lower())
            if min_len <= len(m.group()) <= max_len and not m.group().startswith("_")]


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A tokenised corpus: the vocabulary and the in-vocabulary tokens of every sentence.

    Attributes:
      words: the vocabulary, most frequent first (ties: the word that first appeared
        later comes first, gensim's order).
      counts: ``(V,)`` int64, the count of each word in the corpus.
      tokens: ``(N,)`` int32 ids of the in-vocabulary tokens, sentences one after another.
      sentence_ids: ``(N,)`` int32, the sentence of each token (non-decreasing).
      raw_words: tokens in the corpus before dropping out-of-vocabulary words.
      sentences: the number of sentences.
    """
    words: tuple[str, ...]
    counts: np.ndarray
    tokens: np.ndarray
    sentence_ids: np.ndarray
    raw_words: int
    sentences: int

    @property
    def vocab(self) -> Vocab:
        """The vocabulary as a :class:`fnnet.text.vocab.Vocab` (word level, ids as here)."""
        return Vocab(self.words, level="word")

    def __len__(self) -> int:
        return len(self.words)


def _check_int(name: str, field: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected {field} >= {minimum}, got {value!r}")
    return int(value)


def build_corpus(sentences: Iterable[Sequence[str]], *, min_count: int = 5,
                 max_vocab: int | None = None) -> Corpus:
    """The vocabulary and token ids of ``sentences`` (lists of tokens).

    Words seen fewer than ``min_count`` times are dropped; ``max_vocab`` then keeps the
    most frequent (gensim's order: ties go to the word whose first appearance is latest). Tokens outside the vocabulary are
    removed from the sentences (as word2vec does before it forms windows).

    Args:
      sentences: an iterable of token lists (e.g. ``[simple_tokens(line) for line in f]``).
      min_count: the least count of a kept word.
      max_vocab: at most this many words (None: no limit).

    Returns:
      a :class:`Corpus`.
    """
    min_count = _check_int("build_corpus", "min_count", min_count, 1)
    if max_vocab is not None:
        max_vocab = _check_int("build_corpus", "max_vocab", max_vocab, 1)
    sentences = [list(s) for s in sentences]
    for i, s in enumerate(sentences):
        if any(not isinstance(t, str) for t in s):
            raise TypeError(f"build_corpus: expected sentences as lists of strings, sentence {i} holds "
                            f"{next(type(t).__name__ for t in s if not isinstance(t, str))}")
    raw = sum(len(s) for s in sentences)
    if raw == 0:
        raise ValueError(f"build_corpus: expected a corpus with at least one token, got {len(sentences)} "
                         "sentences and no token")
    counts = collections.Counter()
    for s in sentences:
        counts.update(s)
    order = {}
    for s in sentences:
        for t in s:
            order.setdefault(t, len(order))
    kept = [w for w in order if counts[w] >= min_count]
    kept.sort(key=lambda w: (-counts[w], -order[w]))
    if max_vocab is not None:
        kept = kept[:max_vocab]
    if not kept:
        raise ValueError(f"build_corpus: min_count={min_count} leaves no word in the vocabulary "
                         f"(the most frequent word occurs {max(counts.values())} times)")
    index = {w: i for i, w in enumerate(kept)}
    ids, sent = [], []
    for j, s in enumerate(sentences):
        row = [index[t] for t in s if t in index]
        ids.extend(row)
        sent.extend([j] * len(row))
    return Corpus(tuple(kept), np.array([counts[w] for w in kept], np.int64), np.asarray(ids, np.int32),
                  np.asarray(sent, np.int32), raw, len(sentences))


def keep_probabilities(counts, sample: float, *, variant: str = "word2vec") -> np.ndarray:
    """The probability of keeping each word under frequent-word subsampling.

    With ``f = count / sum(counts)`` and ``t = sample``: ``"word2vec"`` (the C tool's
    and gensim's formula) keeps with ``(sqrt(f / t) + 1) t / f``; ``"mikolov2013"``
    (Mikolov et al. 2013, "Distributed Representations of Words and Phrases", eq. 5,
    which discards with ``1 - sqrt(t / f)``) keeps with ``sqrt(t / f)``. Both are capped
    at 1; ``sample = 0`` keeps everything.

    Returns:
      ``(V,)`` float64 probabilities.
    """
    if variant not in SUBSAMPLING_VARIANTS:
        raise ValueError(f"keep_probabilities: expected variant in {SUBSAMPLING_VARIANTS}, got {variant!r}")
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts <= 0):
        raise ValueError(f"keep_probabilities: expected a non-empty 1-D array of positive counts, got shape "
                         f"{counts.shape}" + (f" with minimum {counts.min()}" if counts.size else ""))
    if not sample >= 0:
        raise ValueError(f"keep_probabilities: expected sample >= 0, got {sample!r}")
    if sample == 0:
        return np.ones_like(counts)
    f = counts / counts.sum()
    keep = (np.sqrt(f / sample) + 1.0) * sample / f if variant == "word2vec" else np.sqrt(sample / f)
    return np.minimum(keep, 1.0)


def noise_distribution(counts, power: float = 0.75) -> np.ndarray:
    """``P(w) = c_w^power / sum_v c_v^power``, the noise distribution of negative sampling."""
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0) or counts.sum() <= 0:
        raise ValueError(f"noise_distribution: expected a non-empty 1-D array of counts >= 0 with a positive sum, "
                         f"got shape {counts.shape}")
    weights = counts ** power
    return weights / weights.sum()


def unigram_table(counts, size: int = 1_000_000, power: float = 0.75) -> np.ndarray:
    """The noise table of word2vec's ``InitUnigramTable``: ``size`` word ids, word ``w``
    filling a share ``P(w)`` of the slots, in id order.

    Slot ``a`` holds the first word ``i`` with ``a / size < sum_{v <= i} P(v)``, where
    ``P`` is :func:`noise_distribution` (the C loop moves on by at most one word per
    slot, so it can differ at the boundaries by a slot); ``table[randint(size)]`` is a
    draw from ``P`` up to the table's resolution ``1 / size``.
    """
    size = _check_int("unigram_table", "size", size, 1)
    cumulative = np.cumsum(noise_distribution(counts, power))
    slots = np.arange(size, dtype=np.float64) / size
    return np.minimum(np.searchsorted(cumulative, slots, side="right"), len(cumulative) - 1).astype(np.int32)


def subsample(uniform: jax.Array, tokens: jax.Array, sentence_ids: jax.Array,
              keep_probability: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Keep token ``i`` when ``uniform[i] < keep_probability[tokens[i]]``; pack the kept to the front.

    Args:
      uniform: ``(N,)`` draws from ``U[0, 1)``.
      tokens: ``(N,)`` int token ids.
      sentence_ids: ``(N,)`` int sentence of each token.
      keep_probability: ``(V,)`` from :func:`keep_probabilities`.

    Returns:
      ``(kept_tokens, kept_sentence_ids, n_kept)``: ``(N,)`` arrays whose first
      ``n_kept`` entries are the kept tokens in order; the rest are ``0`` and
      sentence ``-1``.
    """
    n = tokens.shape[0]
    if uniform.shape != (n,) or sentence_ids.shape != (n,):
        raise ValueError(f"subsample: expected uniform, tokens and sentence_ids of one shape (N,), got "
                         f"{uniform.shape}, {tokens.shape}, {sentence_ids.shape}")
    keep = uniform < keep_probability[tokens]
    slot = jnp.where(keep, jnp.cumsum(keep) - 1, n)
    kept_tokens = jnp.zeros_like(tokens).at[slot].set(tokens, mode="drop")
    kept_sentences = jnp.full_like(sentence_ids, -1).at[slot].set(sentence_ids, mode="drop")
    return kept_tokens, kept_sentences, jnp.sum(keep, dtype=jnp.int32)


def _window(tokens, sentence_ids, n_valid, centers, shrink, window):
    """Context ids ``(B, 2W)`` and their mask for centres at ``centers`` with windows ``W - shrink``."""
    offsets = jnp.concatenate([jnp.arange(-window, 0), jnp.arange(1, window + 1)])
    pos = centers[:, None] + offsets[None, :]
    inside = (pos >= 0) & (pos < n_valid) & (centers[:, None] < n_valid)
    safe = jnp.clip(pos, 0, tokens.shape[0] - 1)
    same = sentence_ids[safe] == sentence_ids[centers][:, None]
    near = jnp.abs(offsets)[None, :] <= (window - shrink)[:, None]
    return tokens[safe], inside & same & near


def skipgram_pairs(tokens: jax.Array, sentence_ids: jax.Array, n_valid, centers: jax.Array,
                   shrink: jax.Array, window: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Skip-gram (centre, context) pairs for a batch of centre positions.

    The context of the centre at position ``i`` is every position ``j`` with
    ``0 < |j - i| <= window - shrink[k]`` in the same sentence and ``j < n_valid``.

    Args:
      tokens, sentence_ids: ``(N,)`` token ids and sentences (e.g. from :func:`subsample`).
      n_valid: the number of valid leading positions (centres at or past it give no pair).
      centers: ``(B,)`` int positions.
      shrink: ``(B,)`` ints in ``[0, window)``, each centre's window reduction ``b``.
      window: the maximum window ``W`` (static).

    Returns:
      ``(center_ids (B, 2W), context_ids (B, 2W), mask (B, 2W))``; offsets ``-W..-1, 1..W``
      along the last axis.
    """
    context, mask = _window(tokens, sentence_ids, n_valid, centers, shrink, window)
    center = jnp.broadcast_to(tokens[jnp.clip(centers, 0, tokens.shape[0] - 1)][:, None], context.shape)
    return center, context, mask


def cbow_contexts(tokens: jax.Array, sentence_ids: jax.Array, n_valid, centers: jax.Array,
                  shrink: jax.Array, window: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """CBOW inputs: the centre ids ``(B,)``, their context ids ``(B, 2W)`` and mask ``(B, 2W)``.

    The same windows as :func:`skipgram_pairs`; a centre with an empty context has an
    all-False mask row.
    """
    context, mask = _window(tokens, sentence_ids, n_valid, centers, shrink, window)
    return tokens[jnp.clip(centers, 0, tokens.shape[0] - 1)], context, mask
