"""word2vec (Mikolov et al. 2013): skip-gram and CBOW, with negative sampling or a
hierarchical softmax over a Huffman tree, trained as one compiled program.

Every variant scores input vectors ``h`` against output vectors ``o`` with a logistic
loss (:func:`word2vec_loss`)::

    L = - sum_{b,m,j} w_bmj [ y_bj log s(h_bm . o_bj) + (1 - y_bj) log s(-h_bm . o_bj) ]

with ``s`` the sigmoid:

- skip-gram: for a centre word ``c`` with context words ``x_1..x_M`` (the shrunk
  window), ``h_bm`` is the input vector of ``x_m`` (word2vec and gensim predict the
  centre from each context word's input vector);
- CBOW: one ``h_b``, the mean of the context words' input vectors;
- negative sampling: the outputs are the centre's output vector (``y = 1``) and ``K``
  noise words drawn from ``P(w) ~ count^0.75`` (``y = 0``; a noise word equal to the
  centre is skipped, as in word2vec);
- hierarchical softmax: the outputs are the inner nodes on the centre's Huffman path,
  ``y = 1 - code`` (:func:`huffman_tree`, gensim's tree).

Training is plain SGD with word2vec's linearly decaying rate ``alpha`` on batches of
centre words: each step gathers the rows it needs, takes the gradient of ``L`` with
respect to them and scatter-adds ``-alpha`` times it back (duplicate rows add up, as
Hogwild updates would). Skip-gram with negative sampling draws one set of ``K`` noise
words per centre, shared by its context words (Ji et al. 2016, "Parallelizing Word2Vec
in Shared and Distributed Memory"), so a step is a batch of small matrix products
rather than ``2W(K + 1)`` dot products per centre; ``shared_negatives=False`` draws them
per pair as word2vec does. In CBOW, as in word2vec, every context word's input vector
receives the whole gradient with respect to the mean ``h`` (not ``h``'s share of it).

An epoch (subsampling, windows, noise draws and all steps) is one ``lax.while_loop``
and the epochs one ``lax.scan``: :func:`train` compiles the whole run once.

Imports: jax, numpy, fnnet.text.corpus, fnnet.text.vectors and the standard library.
"""
from __future__ import annotations

import dataclasses
import functools
import heapq
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.text.corpus import (SUBSAMPLING_VARIANTS, Corpus, cbow_contexts, keep_probabilities, skipgram_pairs,
                               subsample, unigram_table)
from fnnet.text.vectors import WordVectors

__all__ = ["Word2VecConfig", "Word2VecResult", "HuffmanTree", "huffman_tree", "word2vec_loss",
           "word2vec_loss_and_grads", "init_params",
           "train"]


class HuffmanTree(NamedTuple):
    """The Huffman tree of a vocabulary, as paths from the root to each word.

    Attributes:
      codes: ``(V, L)`` int32, the 0/1 branch taken at each inner node (0 = the node's
        less frequent child), padded with 0.
      points: ``(V, L)`` int32, the inner nodes on the path (``0..V-2``, the root
        ``V - 2``), padded with 0.
      lengths: ``(V,)`` int32, the path length of each word.
    """
    codes: np.ndarray
    points: np.ndarray
    lengths: np.ndarray


class _HeapNode(NamedTuple):
    count: int
    index: int

    def __lt__(self, other):          # by count only: heapq then breaks ties as gensim's heap does
        return self.count < other.count


def huffman_tree(counts) -> HuffmanTree:
    """word2vec's Huffman tree over word counts (gensim's ``_assign_binary_codes``).

    The two least frequent nodes of a binary heap (``heapq``, compared by count alone,
    so ties fall as in gensim) are merged into inner node ``V + i`` (the ``i``-th made),
    the first popped becoming the ``0`` child, until one root is left; frequent words
    get short codes.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.size < 2:
        raise ValueError(f"huffman_tree: expected counts of at least 2 words, got shape {counts.shape}")
    v = len(counts)
    heap = [_HeapNode(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    children = {}
    for i in range(v - 1):
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        heapq.heappush(heap, _HeapNode(a.count + b.count, v + i))
        children[v + i] = (a.index, b.index)
    paths = {}
    stack = [(2 * v - 2, [], [])]
    while stack:
        node, code, point = stack.pop()
        if node < v:
            paths[node] = (code, point)
            continue
        left, right = children[node]
        point = point + [node - v]
        stack.append((left, code + [0], point))
        stack.append((right, code + [1], point))
    depth = max(len(c) for c, _ in paths.values())
    codes = np.zeros((v, depth), np.int32)
    points = np.zeros((v, depth), np.int32)
    lengths = np.zeros(v, np.int32)
    for w, (code, point) in paths.items():
        codes[w, :len(code)], points[w, :len(point)], lengths[w] = code, point, len(code)
    return HuffmanTree(codes, points, lengths)


def word2vec_loss(h: jax.Array, outputs: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
    """The logistic loss of every input vector against every output vector of its row.

    ``L = -sum_{b,m,j} w_bmj [y_bj log s(z_bmj) + (1 - y_bj) log s(-z_bmj)]``, with
    ``z_bmj = <h_bm, o_bj>`` and ``s`` the sigmoid.

    Args:
      h: ``(B, M, d)`` input vectors (context words in skip-gram; ``M = 1``, the context
        mean, in CBOW).
      outputs: ``(B, J, d)`` output vectors (centre and noise words, or Huffman nodes).
      labels: ``(B, J)``, 1 for the true word (or a node's ``1 - code``), 0 for noise.
      weights: ``(B, M, J)``, 0 where a pair does not count.

    Returns:
      the scalar loss, summed.
    """
    if h.ndim != 3 or outputs.ndim != 3 or h.shape[0] != outputs.shape[0] or h.shape[2] != outputs.shape[2]:
        raise ValueError(f"word2vec_loss: expected h (B, M, d) and outputs (B, J, d), got {h.shape} and "
                         f"{outputs.shape}")
    b, m, j = h.shape[0], h.shape[1], outputs.shape[1]
    if labels.shape != (b, j) or weights.shape != (b, m, j):
        raise ValueError(f"word2vec_loss: expected labels {(b, j)} and weights {(b, m, j)}, got "
                         f"{labels.shape} and {weights.shape}")
    z = jnp.einsum("bmd,bjd->bmj", h, outputs)
    sign = (2 * labels - 1).astype(z.dtype)[:, None, :]
    return -jnp.sum(weights * jax.nn.log_sigmoid(sign * z))


def word2vec_loss_and_grads(h: jax.Array, outputs: jax.Array, labels: jax.Array,
                            weights: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """:func:`word2vec_loss` and its gradients with respect to ``h`` and ``outputs``, written out.

    With ``s = 2y - 1`` and ``e_bmj = dL/dz_bmj = -w_bmj s_bj s(-s_bj z_bmj)``:
    ``dL/dh_bm = sum_j e_bmj o_bj`` and ``dL/do_bj = sum_m e_bmj h_bm``. The second
    sum is unrolled over the ``M`` (at most ``2W``) inputs: XLA on CPU runs a batched
    contraction over that middle axis ~20 times slower than ``M`` fused multiply-adds.

    Returns:
      ``(loss, d_h (B, M, d), d_outputs (B, J, d))``.
    """
    z = jnp.einsum("bmd,bjd->bmj", h, outputs)
    sign = (2 * labels - 1).astype(z.dtype)[:, None, :]
    t = jnp.tanh(0.5 * sign * z)                  # s(x) = (1 + tanh(x / 2)) / 2: cheaper than exp on CPU
    loss = -jnp.sum(weights * (jnp.log(jnp.maximum(1.0 + t, jnp.finfo(z.dtype).tiny)) - jnp.log(2.0)))
    e = -0.5 * weights * sign * (1.0 - t)         # -w s s(-s z)
    d_h = jnp.einsum("bmj,bjd->bmd", e, outputs)
    d_out = sum(e[:, m, :, None] * h[:, m, None, :] for m in range(h.shape[1]))
    return loss, d_h, d_out


@dataclasses.dataclass(frozen=True)
class Word2VecConfig:
    """Settings of a word2vec run (gensim's names and defaults where they exist).

    Attributes:
      sg: skip-gram (True) or CBOW (False).
      hs: hierarchical softmax (True) or negative sampling (False).
      vector_size: the dimension ``d``.
      window: the maximum window ``W`` (each centre draws its own ``W - b``, ``b < W``).
      negative: noise words ``K`` per positive pair (negative sampling; unused with
        ``hs=True``, which does not combine the two as gensim can).
      ns_exponent: the power of the noise distribution.
      sample: the subsampling threshold ``t`` (0: none).
      sample_variant: ``"word2vec"`` or ``"mikolov2013"`` (see ``corpus.keep_probabilities``).
      alpha, min_alpha: the learning rate, decayed linearly from ``alpha`` to ``min_alpha``.
      epochs: passes over the corpus.
      batch_size: centre words per step. The updates of a step add up, so rows that
        many pairs of a batch share (frequent noise words, the top nodes of the Huffman
        tree) take large steps: hierarchical softmax wants small batches (128 trains
        well on the Lee corpus, 1,024 diverges there).
      shared_negatives: one draw of noise words per centre in skip-gram (Ji et al. 2016).
      window_per_step: draw the window reduction ``b`` once per step for all its centres
        (each centre still sees ``W - b`` with ``b`` uniform, so every offset keeps its
        weight ``(W - |o| + 1) / W``), which gives the step windows of static width
        ``2 (W - b)``; False draws ``b`` per centre as word2vec does (masked slots).
      table_size: slots of the unigram noise table.
    """
    sg: bool = True
    hs: bool = False
    vector_size: int = 100
    window: int = 5
    negative: int = 5
    ns_exponent: float = 0.75
    sample: float = 1e-3
    sample_variant: str = "word2vec"
    alpha: float = 0.025
    min_alpha: float = 1e-4
    epochs: int = 5
    batch_size: int = 1024
    shared_negatives: bool = True
    window_per_step: bool = True
    table_size: int = 1_000_000

    def __post_init__(self):
        for name in ("vector_size", "window", "epochs", "batch_size", "table_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Word2VecConfig: expected {name} > 0, got {value!r}")
        if isinstance(self.negative, bool) or not isinstance(self.negative, int) or self.negative < 0:
            raise ValueError(f"Word2VecConfig: expected negative >= 0, got {self.negative!r}")
        if not self.hs and self.negative == 0:
            raise ValueError("Word2VecConfig: expected negative > 0 with hs=False (negative sampling), got 0")
        if self.sample_variant not in SUBSAMPLING_VARIANTS:
            raise ValueError(f"Word2VecConfig: expected sample_variant in {SUBSAMPLING_VARIANTS}, "
                             f"got {self.sample_variant!r}")
        if not self.sample >= 0:
            raise ValueError(f"Word2VecConfig: expected sample >= 0, got {self.sample!r}")
        if not (self.alpha > 0 and 0 <= self.min_alpha <= self.alpha):
            raise ValueError(f"Word2VecConfig: expected alpha > 0 and 0 <= min_alpha <= alpha, got "
                             f"alpha={self.alpha!r}, min_alpha={self.min_alpha!r}")


class Word2VecResult(NamedTuple):
    """What :func:`train` returns.

    Attributes:
      vectors: the input vectors as :class:`~fnnet.text.vectors.WordVectors`.
      params: ``{"input": (V, d), "output": (V, d) or (V - 1, d)}`` (output vectors of
        the words, or of the Huffman tree's inner nodes with ``hs=True``).
      epoch_loss: ``(epochs,)`` each epoch's summed loss over its ``pairs``.
      pairs: ``(epochs,)`` the (centre, context) pairs (skip-gram) or the centres with
        a non-empty context (CBOW) trained on in each epoch.
    """
    vectors: WordVectors
    params: dict
    epoch_loss: np.ndarray
    pairs: np.ndarray


def init_params(key: jax.Array, vocab_size: int, config: Word2VecConfig) -> dict:
    """word2vec's start: inputs uniform in ``[-1/d, 1/d)`` (gensim 4), outputs zero."""
    d = config.vector_size
    rows = vocab_size - 1 if config.hs else vocab_size
    return {"input": (jax.random.uniform(key, (vocab_size, d), minval=-1.0, maxval=1.0) / d),
            "output": jnp.zeros((rows, d), jnp.float32)}


def _outputs_and_labels(config, key, center, noise_table, tree):
    """Output rows ``(B, J)``, labels ``(B, J)`` and an output mask ``(B, J)`` for centre ids ``(B,)``."""
    if config.hs:
        codes, points, lengths = tree
        rows = points[center]
        labels = 1 - codes[center]
        valid = jnp.arange(codes.shape[1])[None, :] < lengths[center][:, None]
        return rows, labels, valid
    noise = noise_table[jax.random.randint(key, (center.shape[0], config.negative), 0, noise_table.shape[0])]
    rows = jnp.concatenate([center[:, None], noise], axis=1)
    labels = jnp.zeros(rows.shape, jnp.int32).at[:, 0].set(1)
    valid = jnp.concatenate([jnp.ones_like(center[:, None], bool), noise != center[:, None]], axis=1)
    return rows, labels, valid


def _step(config, params, key, tokens, sentences, n_kept, centers, lr, noise_table, tree):
    """One SGD step on the centres at positions ``centers``; returns params, summed loss, pair count."""
    k_shrink, k_noise = jax.random.split(key)
    args = (params, k_noise, tokens, sentences, n_kept, centers, noise_table, tree)
    if not config.window_per_step:
        shrink = jax.random.randint(k_shrink, centers.shape, 0, config.window)
        grads = _gradients(config, *args, shrink, config.window)
    else:
        # one reach r = W - b for the whole step: windows of static width 2r, no wasted slot;
        # the branches return the gradients (padded to 2W), the scatter-add stays outside
        zeros = jnp.zeros(centers.shape, jnp.int32)
        branches = [functools.partial(_gradients, config, shrink=zeros, window=r)
                    for r in range(1, config.window + 1)]
        reach = config.window - jax.random.randint(k_shrink, (), 0, config.window)
        grads = jax.lax.switch(reach - 1, branches, *args)
    in_rows, d_in, out_rows, d_out, loss, count = grads
    w_in = params["input"].at[in_rows].add(-lr * d_in)
    w_out = params["output"].at[out_rows].add(-lr * d_out)
    return {"input": w_in, "output": w_out}, loss, count


def _pad_to(x, width, axis=1):
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, width - x.shape[axis])
    return jnp.pad(x, pad)


def _gradients(config, params, k_noise, tokens, sentences, n_kept, centers, noise_table, tree, shrink, window):
    """Rows and gradients of the loss of one step: ``(in_rows, d_in, out_rows, d_out, loss, count)``.

    ``in_rows`` is ``(B, 2W)`` (padded with row 0 and zero gradients past ``2 window``).
    """
    w_in, w_out = params["input"], params["output"]
    full = 2 * config.window
    if config.sg:
        center_ids, context, mask = skipgram_pairs(tokens, sentences, n_kept, centers, shrink, window)
        center = center_ids[:, 0]
        if config.shared_negatives or config.hs:
            rows, labels, valid = _outputs_and_labels(config, k_noise, center, noise_table, tree)
            in_rows = context                                          # (B, M)
            weights = mask[:, :, None] & valid[:, None, :]             # (B, M, J)
        else:   # per-pair noise: each (centre, context) pair is its own row
            b, m = context.shape
            rows, labels, valid = _outputs_and_labels(config, k_noise, center_ids.reshape(-1), noise_table, tree)
            in_rows = context.reshape(b * m, 1)
            weights = (mask.reshape(b * m, 1, 1) & valid[:, None, :])
        h = w_in[in_rows]
        count = jnp.sum(mask)
    else:
        center, context, mask = cbow_contexts(tokens, sentences, n_kept, centers, shrink, window)
        rows, labels, valid = _outputs_and_labels(config, k_noise, center, noise_table, tree)
        n_ctx = jnp.sum(mask, axis=1)
        has = n_ctx > 0
        mean = jnp.sum(w_in[context] * mask[:, :, None], axis=1) / jnp.maximum(n_ctx, 1)[:, None]
        h = mean[:, None, :]
        weights = has[:, None, None] & valid[:, None, :]
        count = jnp.sum(has)
    outputs = w_out[rows]
    loss, d_h, d_out = word2vec_loss_and_grads(h, outputs, labels, weights.astype(h.dtype))
    if config.sg and (config.shared_negatives or config.hs):
        in_rows, d_in = _pad_to(in_rows, full), _pad_to(d_h, full)
    elif config.sg:
        in_rows = _pad_to(in_rows.reshape(centers.shape[0], -1), full)
        d_in = _pad_to(d_h.reshape(centers.shape[0], -1, d_h.shape[-1]), full)
        rows = _pad_to(rows.reshape(centers.shape[0], -1), full * rows.shape[-1])
        d_out = _pad_to(d_out.reshape(centers.shape[0], -1, d_out.shape[-1]), full * d_out.shape[1])
    else:   # word2vec: each context word takes the whole gradient of the mean
        in_rows, d_in = _pad_to(context, full), _pad_to(d_h * mask[:, :, None], full)
    return in_rows, d_in, rows, d_out, loss, count


def _epoch(config, params, key, epoch, tokens, sentence_ids, keep_probability, noise_table, tree):
    uniform = jax.random.uniform(jax.random.fold_in(key, 0), tokens.shape)
    kept, kept_sentences, n_kept = subsample(uniform, tokens, sentence_ids, keep_probability)
    steps = (n_kept + config.batch_size - 1) // config.batch_size
    step_key = jax.random.fold_in(key, 1)

    def body(i, carry):
        params, loss, pairs = carry
        centers = i * config.batch_size + jnp.arange(config.batch_size)
        progress = (epoch + i * config.batch_size / jnp.maximum(n_kept, 1)) / config.epochs
        lr = config.alpha - (config.alpha - config.min_alpha) * progress
        params, step_loss, count = _step(config, params, jax.random.fold_in(step_key, i), kept, kept_sentences,
                                         n_kept, centers, lr, noise_table, tree)
        return params, loss + step_loss, pairs + count

    zero = jnp.zeros((), jnp.float32)
    params, loss, pairs = jax.lax.fori_loop(0, steps, body, (params, zero, jnp.zeros((), jnp.int32)))
    return params, loss, pairs


@functools.partial(jax.jit, static_argnums=0)
def _train(config, params, key, tokens, sentence_ids, keep_probability, noise_table, tree):
    def epoch_fn(params, epoch):
        params, loss, pairs = _epoch(config, params, jax.random.fold_in(key, epoch), epoch, tokens, sentence_ids,
                                     keep_probability, noise_table, tree)
        return params, (loss / jnp.maximum(pairs, 1), pairs)
    return jax.lax.scan(epoch_fn, params, jnp.arange(config.epochs))


def train(corpus: Corpus, config: Word2VecConfig, *, key: jax.Array, params: dict | None = None) -> Word2VecResult:
    """Train word2vec on ``corpus``: the whole run is one compiled program.

    Args:
      corpus: a :class:`~fnnet.text.corpus.Corpus` (``build_corpus``).
      config: the :class:`Word2VecConfig`.
      key: the run's key (initialisation, subsampling, windows and noise draws).
      params: start from these instead of :func:`init_params`.

    Returns:
      a :class:`Word2VecResult`.
    """
    if not isinstance(corpus, Corpus):
        raise TypeError(f"word2vec.train: expected a Corpus (fnnet.text.corpus.build_corpus), got "
                        f"{type(corpus).__name__}")
    if not isinstance(config, Word2VecConfig):
        raise TypeError(f"word2vec.train: expected a Word2VecConfig, got {type(config).__name__}")
    v = len(corpus)
    if config.hs and v < 2:
        raise ValueError(f"word2vec.train: hierarchical softmax needs at least 2 words, got {v}")
    if len(corpus.tokens) == 0:
        raise ValueError("word2vec.train: expected a corpus with tokens in the vocabulary, got none")
    init_key, run_key = jax.random.split(key)
    if params is None:
        params = init_params(init_key, v, config)
    keep = jnp.asarray(keep_probabilities(corpus.counts, config.sample, variant=config.sample_variant), jnp.float32)
    if config.hs:
        tree = tuple(jnp.asarray(a) for a in huffman_tree(corpus.counts))
        table = jnp.zeros((1,), jnp.int32)
    else:
        tree = (jnp.zeros((1, 1), jnp.int32),) * 2 + (jnp.zeros((1,), jnp.int32),)
        table = jnp.asarray(unigram_table(corpus.counts, config.table_size, config.ns_exponent))
    params, (loss, pairs) = _train(config, params, run_key, jnp.asarray(corpus.tokens),
                                   jnp.asarray(corpus.sentence_ids), keep, table, tree)
    return Word2VecResult(WordVectors(corpus.words, np.asarray(params["input"])), params,
                          np.asarray(loss), np.asarray(pairs))
