"""GloVe (Pennington, Socher & Manning 2014): weighted least squares on log co-occurrences.

Co-occurrence counts (:func:`cooccurrence`) add ``1 / d`` for two tokens ``d <= window``
apart in one sentence (the GloVe tool's ``cooccur`` with distance weighting), both ways
(symmetric). The model fits, over the non-zero entries,

    J = 1/2 sum_{ij} f(X_ij) (w_i . c_j + b_i + b~_j - log X_ij)^2,
    f(x) = min(1, (x / x_max)^alpha)          (x_max = 100, alpha = 3/4)

with AdaGrad (Duchi et al. 2011), as the paper trains it: per coordinate
``G <- G + g^2``, ``theta <- theta - eta g / sqrt(G)``, ``G`` starting at
``initial_accumulator``. The word vectors are ``W + C`` (the paper's ``W + W~``).

The paper's (and the C tool's) SGD visits the entries one at a time in a shuffled
order, several threads at once. Here ``batch_size`` shuffled entries form one step,
each updated as the C tool updates it, by its own gradient scaled by its rows'
accumulators (plus its own square), the steps and squares of all entries then added
back at once (an entry that shares a row with another in the batch does not see its
update, as with the tool's threads). An epoch is one ``lax.scan`` over its batches,
the epochs another scan. ``batch_size=None`` takes every entry in one step with the
summed gradient: full-batch AdaGrad, which is what ``mittens.GloVe`` runs (with
``initial_accumulator=0.1``, its value; the C tool starts at 1 and divides by the
accumulator before adding the current gradient).
Defaults: ``eta = 0.05``, ``x_max = 100``, ``alpha = 0.75`` (the paper's).

Imports: jax, numpy, fnnet.text.corpus, fnnet.text.vectors and the standard library.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.text.corpus import Corpus
from fnnet.text.vectors import WordVectors

__all__ = ["Cooccurrence", "cooccurrence", "glove_weight", "glove_loss", "GloVeConfig", "GloVeResult", "init_params",
           "train"]


class Cooccurrence(NamedTuple):
    """Non-zero co-occurrence counts as coordinates: ``X[rows[k], cols[k]] = values[k]``.

    ``rows``/``cols`` int32, ``values`` float64, sorted by ``(row, col)``; ``size`` is
    the vocabulary size ``V``.
    """
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    size: int

    def dense(self) -> np.ndarray:
        """The ``(V, V)`` matrix."""
        x = np.zeros((self.size, self.size))
        x[self.rows, self.cols] = self.values
        return x


def cooccurrence(corpus: Corpus, *, window: int = 10, distance_weighting: bool = True,
                 symmetric: bool = True) -> Cooccurrence:
    """Co-occurrence counts of ``corpus`` within ``window`` tokens in a sentence.

    ``X_ij = sum over token pairs (i at position p, j at position q), 0 < q - p <=
    window, one sentence, of 1 / (q - p)`` (``1`` without ``distance_weighting``),
    plus the same with ``i`` and ``j`` swapped when ``symmetric`` (the GloVe tool's
    default); otherwise only the left context counts (``j`` before ``i``).
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"cooccurrence: expected window >= 1, got {window!r}")
    if not isinstance(corpus, Corpus):
        raise TypeError(f"cooccurrence: expected a Corpus (fnnet.text.corpus.build_corpus), got "
                        f"{type(corpus).__name__}")
    tokens, sentences, v = corpus.tokens.astype(np.int64), corpus.sentence_ids, len(corpus)
    keys, weights = [], []
    for d in range(1, window + 1):
        same = sentences[d:] == sentences[:-d]
        left, right = tokens[:-d][same], tokens[d:][same]
        w = 1.0 / d if distance_weighting else 1.0
        keys.append(right * v + left)                      # word at q, its context d before it
        weights.append(np.full(left.shape, w))
        if symmetric:
            keys.append(left * v + right)
            weights.append(np.full(left.shape, w))
    keys, weights = np.concatenate(keys), np.concatenate(weights)
    unique, inverse = np.unique(keys, return_inverse=True)
    values = np.bincount(inverse, weights=weights, minlength=len(unique))
    return Cooccurrence((unique // v).astype(np.int32), (unique % v).astype(np.int32), values, v)


def glove_weight(x: jax.Array, x_max: float = 100.0, alpha: float = 0.75) -> jax.Array:
    """``f(x) = min(1, (x / x_max)^alpha)`` (0 at ``x = 0``)."""
    return jnp.minimum(1.0, (x / x_max) ** alpha)


def glove_loss(params: dict, rows: jax.Array, cols: jax.Array, log_x: jax.Array, weights: jax.Array) -> jax.Array:
    """``1/2 sum_k weights_k (w_{rows_k} . c_{cols_k} + b_{rows_k} + b~_{cols_k} - log_x_k)^2``.

    Args:
      params: ``{"W": (V, d), "C": (V, d), "bw": (V,), "bc": (V,)}``.
      rows, cols: ``(K,)`` int entry coordinates.
      log_x: ``(K,)`` the log counts.
      weights: ``(K,)`` ``f(X)`` of the entries (0 for padding).

    Returns:
      the scalar loss.
    """
    w, c = params["W"][rows], params["C"][cols]
    diff = jnp.sum(w * c, axis=-1) + params["bw"][rows] + params["bc"][cols] - log_x
    return 0.5 * jnp.sum(weights * diff * diff)


@dataclasses.dataclass(frozen=True)
class GloVeConfig:
    """Settings of a GloVe run.

    Attributes:
      vector_size: the dimension ``d``.
      x_max, alpha: the weighting function ``f``.
      learning_rate: AdaGrad's ``eta``.
      initial_accumulator: AdaGrad's ``G_0`` (1 as the GloVe tool; mittens uses 0.1).
      epochs: passes over the non-zero entries.
      batch_size: entries per step, updated entry by entry; None (or at least the
        number of entries): all of them in one step, full-batch AdaGrad.
      init_scale: the initial ``W``, ``C``, ``bw``, ``bc`` are uniform in
        ``[-init_scale, init_scale)``, ``init_scale / d`` for the vectors when
        ``scale_by_dim`` (the GloVe tool: ``(U[0, 1) - 0.5) / d``).
      scale_by_dim: see ``init_scale``.
    """
    vector_size: int = 100
    x_max: float = 100.0
    alpha: float = 0.75
    learning_rate: float = 0.05
    initial_accumulator: float = 1.0
    epochs: int = 50
    batch_size: int | None = 512
    init_scale: float = 0.5
    scale_by_dim: bool = True

    def __post_init__(self):
        for name in ("vector_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"GloVeConfig: expected {name} > 0, got {value!r}")
        if self.batch_size is not None and (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int)
                                            or self.batch_size <= 0):
            raise ValueError(f"GloVeConfig: expected batch_size > 0 or None, got {self.batch_size!r}")
        for name in ("x_max", "alpha", "learning_rate", "initial_accumulator", "init_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"GloVeConfig: expected {name} > 0, got {getattr(self, name)!r}")


class GloVeResult(NamedTuple):
    """What :func:`train` returns: ``vectors`` (``W + C`` as WordVectors), the final
    ``params``, the AdaGrad accumulators ``accumulators`` (a dict like ``params``) and
    ``epoch_loss`` (``J`` summed over each epoch's steps, each step's loss taken before
    its update)."""
    vectors: WordVectors
    params: dict
    accumulators: dict
    epoch_loss: np.ndarray


def init_params(key: jax.Array, vocab_size: int, config: GloVeConfig, dtype=jnp.float32) -> dict:
    """``W``, ``C`` ``(V, d)`` and ``bw``, ``bc`` ``(V,)`` uniform in ``[-s, s)`` (see :class:`GloVeConfig`)."""
    d = config.vector_size
    s = config.init_scale / d if config.scale_by_dim else config.init_scale
    keys = jax.random.split(key, 4)
    return {"W": jax.random.uniform(keys[0], (vocab_size, d), dtype, -s, s),
            "C": jax.random.uniform(keys[1], (vocab_size, d), dtype, -s, s),
            "bw": jax.random.uniform(keys[2], (vocab_size,), dtype, -s, s),
            "bc": jax.random.uniform(keys[3], (vocab_size,), dtype, -s, s)}


def _adagrad(params, accumulators, grads, learning_rate):
    accumulators = jax.tree.map(lambda a, g: a + g * g, accumulators, grads)
    params = jax.tree.map(lambda p, a, g: p - learning_rate * g / jnp.sqrt(a), params, accumulators, grads)
    return params, accumulators


def _entry_gradients(params, rows, cols, log_x, weights):
    """Per-entry gradients of :func:`glove_loss`: ``(loss, g_W (K, d), g_C (K, d), g_b (K,))``."""
    w, c = params["W"][rows], params["C"][cols]
    diff = jnp.sum(w * c, axis=-1) + params["bw"][rows] + params["bc"][cols] - log_x
    fdiff = weights * diff
    return 0.5 * jnp.sum(fdiff * diff), fdiff[:, None] * c, fdiff[:, None] * w, fdiff


def _sparse_adagrad(params, accumulators, rows, cols, grads, learning_rate):
    """AdaGrad entry by entry (the GloVe tool's update, its threads' races included): each
    entry's gradient is scaled by its rows' accumulators plus its own square, and both
    the steps and the squares are added back (duplicate rows add up)."""
    g_w, g_c, g_b = grads
    new_p, new_a = dict(params), dict(accumulators)
    for name, idx, g in (("W", rows, g_w), ("C", cols, g_c), ("bw", rows, g_b), ("bc", cols, g_b)):
        acc = accumulators[name][idx] + g * g
        new_p[name] = params[name].at[idx].add(-learning_rate * g / jnp.sqrt(acc))
        new_a[name] = accumulators[name].at[idx].add(g * g)
    return new_p, new_a


@functools.partial(jax.jit, static_argnums=(0, 1))
def _train(config, batch, params, accumulators, key, rows, cols, log_x, weights):
    n = rows.shape[0]
    steps = -(-n // batch)
    pad = steps * batch - n

    def epoch(carry, e):
        params, accumulators = carry
        if batch == n:   # full batch: the summed gradient, AdaGrad on every coordinate (mittens)
            loss, grads = jax.value_and_grad(glove_loss)(params, rows, cols, log_x, weights)
            params, accumulators = _adagrad(params, accumulators, grads, config.learning_rate)
            return (params, accumulators), loss
        order = jax.random.permutation(jax.random.fold_in(key, e), n)
        order = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)]).reshape(steps, batch)
        live = jnp.concatenate([jnp.ones((n,), weights.dtype), jnp.zeros((pad,), weights.dtype)])
        live = live.reshape(steps, batch)

        def step(carry, xs):
            params, accumulators = carry
            idx, mask = xs
            r, c = rows[idx], cols[idx]
            loss, *grads = _entry_gradients(params, r, c, log_x[idx], weights[idx] * mask)
            params, accumulators = _sparse_adagrad(params, accumulators, r, c, grads, config.learning_rate)
            return (params, accumulators), loss

        (params, accumulators), losses = jax.lax.scan(step, (params, accumulators), (order, live))
        return (params, accumulators), jnp.sum(losses)

    (params, accumulators), losses = jax.lax.scan(epoch, (params, accumulators), jnp.arange(config.epochs))
    return params, accumulators, losses


def train(words, counts: Cooccurrence, config: GloVeConfig, *, key: jax.Array, params: dict | None = None,
          dtype=jnp.float32) -> GloVeResult:
    """Fit GloVe to the co-occurrence counts ``counts``; the run is one compiled program.

    Args:
      words: the vocabulary (``corpus.words``), ``counts.size`` words.
      counts: the :class:`Cooccurrence` counts.
      config: the :class:`GloVeConfig`.
      key: initialisation and the epochs' shuffles.
      params: start from these (e.g. a fixed initialisation) instead of :func:`init_params`.
      dtype: float32, or float64 under ``jax.enable_x64``.

    Returns:
      a :class:`GloVeResult`.
    """
    if not isinstance(counts, Cooccurrence):
        raise TypeError(f"glove.train: expected a Cooccurrence (glove.cooccurrence), got {type(counts).__name__}")
    if not isinstance(config, GloVeConfig):
        raise TypeError(f"glove.train: expected a GloVeConfig, got {type(config).__name__}")
    words = tuple(words)
    if len(words) != counts.size:
        raise ValueError(f"glove.train: expected {counts.size} words (the size of the counts), got {len(words)}")
    if len(counts.values) == 0:
        raise ValueError("glove.train: expected co-occurrence counts with a non-zero entry, got none")
    init_key, run_key = jax.random.split(key)
    if params is None:
        params = init_params(init_key, counts.size, config, dtype)
    expected = {"W": (counts.size, config.vector_size), "C": (counts.size, config.vector_size),
                "bw": (counts.size,), "bc": (counts.size,)}
    got = {k: tuple(np.shape(v)) for k, v in params.items()}
    if got != expected:
        raise ValueError(f"glove.train: expected params of shapes {expected}, got {got}")
    params = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    accumulators = jax.tree.map(lambda p: jnp.full_like(p, config.initial_accumulator), params)
    values = np.asarray(counts.values, np.float64)
    weights = jnp.asarray(np.minimum(1.0, (values / config.x_max) ** config.alpha), dtype)
    log_x = jnp.asarray(np.log(values), dtype)
    batch = len(values) if config.batch_size is None else min(config.batch_size, len(values))
    params, accumulators, losses = _train(config, batch, params, accumulators, run_key, jnp.asarray(counts.rows),
                                          jnp.asarray(counts.cols), log_x, weights)
    vectors = np.asarray(params["W"] + params["C"])
    return GloVeResult(WordVectors(words, vectors), params, accumulators, np.asarray(losses))
