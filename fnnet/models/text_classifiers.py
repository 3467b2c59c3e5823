"""Sentence classifiers over word embeddings: the course's Emojify v1 and v2, and Kim
(2014)'s convolutional network.

Every model reads integer token ids ``(N, T)``, **right padded** with ``pad_id``: a
sentence is its tokens up to the first ``pad_id``, and everything from there on is
ignored (its length ``L_n`` is the position of the first pad, ``T`` if none). The
three models see only the ``L_n`` real tokens, so the same sentence gives the same
logits whatever the padding. Concrete ids with a real token after a pad raise a
ValueError (under ``jit`` that cannot be checked: the tokens after the first pad are
ignored). All return logits ``(N, num_classes)`` (softmax in the loss).

- :func:`emojify_v1`: the mean of the sentence's word vectors, then softmax regression::

      avg_n = (1 / L_n) sum_{t < L_n} E[x_nt],      z_n = avg_n W + b

- :func:`emojify_v2`: a (two-layer) many-to-one LSTM over the embedded sentence, the
  hidden state at its last real token (``L_n - 1``), dropout, then a dense layer
  (the course's ``Embedding -> LSTM(128) -> Dropout(0.5) -> LSTM(128) -> Dropout(0.5)
  -> Dense``).
- :func:`text_cnn`: Kim (2014), "Convolutional Neural Networks for Sentence
  Classification": parallel 1-D convolutions of widths ``k`` in ``(3, 4, 5)``
  (``filters`` maps each) over the embedded sentence, ReLU, max over the window
  positions that lie inside the sentence, concatenation, dropout, dense::

      c_{n,p} = relu(b + sum_{j<k} E[x_{n,p+j}] W_j),   p < max(L_n - k + 1, 1)
      h_n = [max_p c_{n,p}]_{k=3,4,5},                  z_n = dropout(h_n) W + b

  A sentence shorter than ``k`` is read as if zero padded to ``k`` (its one window
  covers its tokens and zero vectors). ``T`` must be at least the widest filter.

**Pretrained and frozen embeddings.** ``embeddings=`` a ``(V, d)`` array initialises
the table from given vectors (e.g. word2vec); ``freeze_embeddings=True`` keeps it fixed:
the table then lives in the Module's ``state`` (``state["embedding"]``), not in
``params``, so no optimizer step, gradient or weight decay touches it. Otherwise it is
``params["embedding"]``, drawn from ``embedding_init`` (default ``N(0, 1)``, as
:func:`fnnet.nn.embedding`) or copied from ``embeddings``.

Params: ``embedding (V, d)`` (unless frozen), ``output`` (``kernel (h, C)``, ``bias
(C,)``), and ``lstm`` (the :func:`fnnet.nn.lstm` tree) for v2 or ``conv`` (``"0"``,
``"1"``, ... one ``kernel (k, d, filters)``, ``bias (filters,)`` per width, in the
order of ``widths``) for the CNN.

Imports: fnnet.nn, fnnet.functional, fnnet.init.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import functional as F
from fnnet import init as initializers
from fnnet import nn
from fnnet.functional._checks import as_int

__all__ = ["emojify_v1", "emojify_v2", "text_cnn", "padding_lengths"]


def padding_lengths(ids, pad_id: int = 0) -> jax.Array:
    """``L_n``, the position of the first ``pad_id`` in each row of ``ids (N, T)`` (``T``
    if none): the number of real tokens of right-padded sentences."""
    ids = jnp.asarray(ids)
    return jnp.sum(jnp.cumprod(ids != pad_id, axis=1), axis=1).astype(jnp.int32)


def _check_ids(name: str, ids, pad_id: int, min_length: int = 1):
    if not (hasattr(ids, "shape") and hasattr(ids, "dtype")):
        ids = jnp.asarray(ids)
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        raise TypeError(f"{name}: expected integer token ids (N, T), got dtype {ids.dtype}")
    if len(ids.shape) != 2:
        raise ValueError(f"{name}: expected token ids of shape (N, T), got shape {tuple(ids.shape)}")
    if ids.shape[1] < min_length:
        raise ValueError(f"{name}: expected sequences of at least {min_length} positions (the widest "
                         f"filter; pad the batch), got ids of shape {tuple(ids.shape)}")
    if not isinstance(ids, (jax.core.Tracer, jax.ShapeDtypeStruct)):
        concrete = np.asarray(ids)
        after_pad = np.cumsum(concrete == pad_id, axis=1) > 0
        bad = np.argwhere(after_pad & (concrete != pad_id))
        if bad.size:
            n, t = (int(i) for i in bad[0])
            raise ValueError(f"{name}: expected right-padded ids (no token after the first pad_id "
                             f"{pad_id}), got ids[{n}, {t}] = {concrete[n, t]} after a pad in row {n}")
    return ids


def _embedding_table(name, vocab_size, embed_dim, default_dim, embeddings, freeze, embedding_init, pad_id, dtype):
    """``(vocab_size, d, init(key) -> (params, state), table(params, state))``."""
    vocab_size = as_int(name, "vocab_size", vocab_size, minimum=1)
    if embeddings is not None:
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[0] != vocab_size or (
                embed_dim is not None and embeddings.shape[1] != embed_dim):
            want = f"({vocab_size}, {embed_dim if embed_dim is not None else 'd'})"
            raise ValueError(f"{name}: expected embeddings of shape {want} (vocab_size, embed_dim), "
                             f"got shape {embeddings.shape}")
        if not np.issubdtype(embeddings.dtype, np.floating) or not np.all(np.isfinite(embeddings)):
            raise ValueError(f"{name}: expected finite floating embeddings, got dtype {embeddings.dtype}"
                             f"{'' if not np.issubdtype(embeddings.dtype, np.floating) else ' with a non-finite value'}")
        embed_dim = embeddings.shape[1]
    elif freeze:
        raise ValueError(f"{name}: freeze_embeddings=True needs embeddings= (the vectors to keep fixed)")
    embed_dim = as_int(name, "embed_dim", default_dim if embed_dim is None else embed_dim, minimum=1)
    pad_id = as_int(name, "pad_id", pad_id, minimum=0)
    if pad_id >= vocab_size:
        raise ValueError(f"{name}: expected pad_id in [0, {vocab_size}), got {pad_id}")
    initializer = embedding_init or initializers.normal(1.0)

    def init(key):
        if embeddings is not None:
            table = jnp.asarray(embeddings, dtype)
        else:
            table = initializer(key, (vocab_size, embed_dim), dtype)
        return ({}, {"embedding": table}) if freeze else ({"embedding": table}, {})

    def table(params, state):
        if freeze:
            return jax.lax.stop_gradient(state["embedding"])
        return params["embedding"]

    return embed_dim, pad_id, init, table


def _check_rate(name: str, rate) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"{name}: expected dropout in [0, 1), got {rate!r}")
    return float(rate)


def _dense_params(key, fan_in: int, classes: int, kernel_init, dtype) -> dict:
    return {"kernel": kernel_init(key, (fan_in, classes), dtype), "bias": jnp.zeros((classes,), dtype)}


def emojify_v1(vocab_size: int, num_classes: int, *, embed_dim: int | None = None, pad_id: int = 0,
               embeddings=None, freeze_embeddings: bool = False,
               embedding_init: initializers.Initializer | None = None, dtype=jnp.float32,
               name: str = "emojify_v1") -> nn.Module:
    """The course's Emojify v1: softmax regression on the mean word vector (module docstring).

    Params: ``embedding (V, d)`` (unless frozen), ``output`` with ``kernel (d, C)`` drawn
    ``N(0, 1/d)`` (the notes' ``randn / sqrt(n_h)``) and ``bias (C,)`` zeros. An empty
    sentence (``L_n = 0``) averages to the zero vector.

    Args:
      vocab_size: ``V``, rows of the table (ids in ``[0, V)``).
      num_classes: ``C``.
      embed_dim: ``d`` (default 50, the course's GloVe width, or ``embeddings``' width).
      pad_id: the padding id (its row is never read).
      embeddings: optional ``(V, d)`` initial vectors; freeze_embeddings: keep them fixed
        (in ``state``); embedding_init: the table's initialiser otherwise (``N(0, 1)``).
    """
    num_classes = as_int(name, "num_classes", num_classes, minimum=1)
    d, pad_id, init_table, table = _embedding_table(name, vocab_size, embed_dim, 50, embeddings,
                                                    freeze_embeddings, embedding_init, pad_id, dtype)

    def init(key, x):
        _check_ids(name, nn.spec_of(x), pad_id)
        params, state = init_table(jax.random.fold_in(key, 0))
        params["output"] = _dense_params(jax.random.fold_in(key, 1), d, num_classes,
                                         initializers.lecun_normal(), dtype)
        return params, state

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        ids = _check_ids(name, x, pad_id)
        lengths = padding_lengths(ids, pad_id)
        mask = F.sequence_mask(lengths, ids.shape[1])
        emb = F.embed(jnp.where(mask, ids, pad_id), table(params, state))
        total = jnp.sum(jnp.where(mask[..., None], emb, 0.0), axis=1)
        avg = total / jnp.maximum(lengths, 1)[:, None].astype(total.dtype)
        return F.dense(avg, params["output"]["kernel"], params["output"]["bias"]), state

    return nn.Module(init, apply, name)


def emojify_v2(vocab_size: int, num_classes: int, *, embed_dim: int | None = None, hidden: int = 128,
               num_layers: int = 2, dropout: float = 0.5, pad_id: int = 0, embeddings=None,
               freeze_embeddings: bool = False, embedding_init: initializers.Initializer | None = None,
               dtype=jnp.float32, name: str = "emojify_v2") -> nn.Module:
    """The course's Emojify v2: a many-to-one LSTM over the embedded sentence.

    ``num_layers`` LSTM layers of ``hidden`` units (:func:`fnnet.nn.lstm`, PyTorch's
    equations) read the ``L_n`` real tokens (the lengths go into the scan, so padding
    never enters the state); the top layer's hidden state at step ``L_n - 1`` goes
    through dropout and a dense layer (Xavier uniform, Keras' ``Dense`` default).
    ``dropout`` is applied, in training only, between the LSTM layers and before the
    dense layer, as in the course's model (``hidden=128, num_layers=2, dropout=0.5``).
    An empty sentence gives the zero state.

    Args:
      vocab_size: as in :func:`emojify_v1`, and so are ``num_classes``, ``embed_dim``,
        ``pad_id``, ``embeddings``, ``freeze_embeddings`` and ``embedding_init``.
      hidden: LSTM units per layer.
      num_layers: stacked LSTM layers.
      dropout: drop rate in ``[0, 1)``.
    """
    num_classes = as_int(name, "num_classes", num_classes, minimum=1)
    hidden = as_int(name, "hidden", hidden, minimum=1)
    num_layers = as_int(name, "num_layers", num_layers, minimum=1)
    rate = _check_rate(name, dropout)
    d, pad_id, init_table, table = _embedding_table(name, vocab_size, embed_dim, 50, embeddings,
                                                    freeze_embeddings, embedding_init, pad_id, dtype)
    recurrent = nn.lstm(hidden, num_layers=num_layers, dropout=rate, return_sequences=False, dtype=dtype,
                        name=f"{name}.lstm")

    def init(key, x):
        spec = _check_ids(name, nn.spec_of(x), pad_id)
        params, state = init_table(jax.random.fold_in(key, 0))
        params["lstm"], _ = recurrent.init(jax.random.fold_in(key, 1),
                                           jax.ShapeDtypeStruct(tuple(spec.shape) + (d,), dtype))
        params["output"] = _dense_params(jax.random.fold_in(key, 2), hidden, num_classes,
                                         initializers.xavier_uniform(), dtype)
        return params, state

    def apply(params, state, x, *, key=None, train=False):
        if rate:
            nn.require_key(name, key, train)
        ids = _check_ids(name, x, pad_id)
        lengths = padding_lengths(ids, pad_id)
        mask = F.sequence_mask(lengths, ids.shape[1])
        emb = F.embed(jnp.where(mask, ids, pad_id), table(params, state))
        h, _ = nn.call(recurrent, "lstm", params["lstm"], {}, {"inputs": emb, "lengths": lengths},
                       key=nn.child_key(key, 0), train=train)
        if rate and train:
            h = F.dropout(h, rate, jax.random.fold_in(key, 1))
        return F.dense(h, params["output"]["kernel"], params["output"]["bias"]), state

    return nn.Module(init, apply, name)


def text_cnn(vocab_size: int, num_classes: int, *, embed_dim: int | None = None,
             widths: Sequence[int] = (3, 4, 5), filters: int = 100, dropout: float = 0.5, pad_id: int = 0,
             embeddings=None, freeze_embeddings: bool = False,
             embedding_init: initializers.Initializer | None = None, impl: str = "auto",
             dtype=jnp.float32, name: str = "text_cnn") -> nn.Module:
    """Kim (2014)'s CNN for sentence classification (module docstring).

    Conv kernels ``(k, d, filters)`` He normal, biases zero; the output layer
    ``(len(widths) * filters, C)`` Xavier uniform. ``dropout`` (Kim's 0.5) is applied to
    the pooled features in training only. Kim's max-norm constraint on the output
    weights (``||w||_2 <= 3``) is not part of the Module; the paper's variants map to
    the options: CNN-rand (``embedding_init``), CNN-static (``embeddings`` with
    ``freeze_embeddings=True``), CNN-non-static (``embeddings``).

    Args:
      vocab_size, num_classes, pad_id, embeddings, freeze_embeddings, embedding_init:
        as in :func:`emojify_v1`; embed_dim: ``d`` (default 300, Kim's word2vec width).
      widths: the filter widths, one convolution each (Kim's ``(3, 4, 5)``).
      filters: feature maps per width (Kim's 100).
      dropout: drop rate in ``[0, 1)`` on the pooled features.
      impl: the convolution's lowering (see :func:`fnnet.functional.conv`).
    """
    num_classes = as_int(name, "num_classes", num_classes, minimum=1)
    filters = as_int(name, "filters", filters, minimum=1)
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__") or len(tuple(widths)) == 0:
        raise ValueError(f"{name}: expected widths as a non-empty sequence of ints, got {widths!r}")
    widths = tuple(as_int(name, "each width", w, minimum=1) for w in widths)
    rate = _check_rate(name, dropout)
    d, pad_id, init_table, table = _embedding_table(name, vocab_size, embed_dim, 300, embeddings,
                                                    freeze_embeddings, embedding_init, pad_id, dtype)
    widest = max(widths)
    he = initializers.he_normal()

    def init(key, x):
        _check_ids(name, nn.spec_of(x), pad_id, widest)
        params, state = init_table(jax.random.fold_in(key, 0))
        params["conv"] = {str(i): {"kernel": he(jax.random.fold_in(jax.random.fold_in(key, 1), i),
                                                (k, d, filters), dtype),
                                   "bias": jnp.zeros((filters,), dtype)} for i, k in enumerate(widths)}
        params["output"] = _dense_params(jax.random.fold_in(key, 2), len(widths) * filters, num_classes,
                                         initializers.xavier_uniform(), dtype)
        return params, state

    def apply(params, state, x, *, key=None, train=False):
        if rate:
            nn.require_key(name, key, train)
        ids = _check_ids(name, x, pad_id, widest)
        lengths = padding_lengths(ids, pad_id)
        mask = F.sequence_mask(lengths, ids.shape[1])
        emb = F.embed(jnp.where(mask, ids, pad_id), table(params, state))
        emb = jnp.where(mask[..., None], emb, jnp.zeros((), emb.dtype))      # padding reads as zeros
        pooled = []
        for i, k in enumerate(widths):
            p = params["conv"][str(i)]
            z = F.conv(emb, p["kernel"], p["bias"], padding="VALID", impl=impl)   # (N, T - k + 1, filters)
            last = jnp.maximum(lengths - k + 1, 1)                               # windows inside the sentence
            valid = F.sequence_mask(last, z.shape[1])[..., None]
            pooled.append(jax.nn.relu(jnp.max(jnp.where(valid, z, -jnp.inf), axis=1)))
        h = jnp.concatenate(pooled, axis=-1)
        if rate and train:
            h = F.dropout(h, rate, key)
        return F.dense(h, params["output"]["kernel"], params["output"]["bias"]), state

    return nn.Module(init, apply, name)
