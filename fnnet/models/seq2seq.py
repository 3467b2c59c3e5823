"""Recurrent encoder-decoder with the additive attention of Bahdanau et al. (2015).

"Neural Machine Translation by Jointly Learning to Align and Translate": a
(bidirectional) LSTM or GRU reads the embedded source into annotations ``a_1..a_S``;
at every output step the decoder's previous hidden state ``s_{t-1}`` scores each
annotation, and the context ``c_t`` joins the previous token's embedding as the
decoder cell's input::

    e_ts = v . tanh(W_q s_{t-1} + W_k a_s),   alpha_t = masked_softmax(e_t),   c_t = sum_s alpha_ts a_s
    s_t  = cell(s_{t-1}, [embed(y_{t-1}) ; c_t])
    logits_t = [s_t ; c_t] W_out + b_out

(the course's date-translation model: pre-attention Bi-LSTM, post-attention LSTM; its
decoder state starts at zero). Training uses teacher forcing, the true previous tokens
``y_{t-1}`` (with ``y_0 = start_token``) fed in one compiled ``lax.scan``; decoding
feeds back the model's own tokens through :func:`fnnet.text.beam_search.greedy_decode`
or :func:`~fnnet.text.beam_search.beam_search`, whose one-step protocol
``step(carry, token) -> (carry, logits)`` :meth:`Seq2Seq.decoder` returns (its carry
holds the encoder's annotations, so beam search repeats them with the beams).

Params: ``source_embedding (Vs, E)``, ``encoder`` (the recurrent Module's, e.g.
``{"forward", "backward"}``), ``target_embedding (Vt, E)``, ``attention``
(``w_query (Hd, A)``, ``w_key (He', A)``, ``v (A,)``), ``decoder`` (the cell's fused
``w_ih, w_hh, b_ih, b_hh``), ``output`` (``kernel (Hd + He', Vt)``, ``bias``), with
``He' = 2 He`` for a bidirectional encoder.

Imports: fnnet.nn, fnnet.functional, fnnet.init.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnnet import functional as F
from fnnet import init as initializers
from fnnet import nn
from fnnet.functional._checks import as_int

__all__ = ["Seq2Seq", "attention_seq2seq", "decoder_inputs"]


class Seq2Seq(NamedTuple):
    """An attention encoder-decoder: a Module for training and the pure functions around it.

    - ``module``: ``init(key, x)`` / ``apply(params, state, x) -> (logits (B, T, Vt), state)``
      with ``x = (source (B, source_len), decoder inputs (B, T))``, integer ids (what
      :func:`fnnet.train.fit` feeds from ``((source, inputs), targets)``); see
      :func:`decoder_inputs`.
    - ``teacher_forced(params, source, inputs, *, source_lengths=None) -> (logits, weights)``:
      ``logits (B, T, Vt)`` and the attention weights ``(B, T, S)`` (for plotting).
    - ``decode_step(params, carry, token) -> (carry, logits, weights)``: one step.
    - ``decoder(params, source, *, source_lengths=None) -> (step, carry, start)``: the
      one-step model ``step(carry, token) -> (carry, logits)`` for greedy or beam search,
      its initial carry, and the start tokens ``(B,)``.
    """
    module: nn.Module
    teacher_forced: Callable
    decode_step: Callable
    decoder: Callable
    source_len: int
    start_token: int


def decoder_inputs(targets, start_token: int):
    """Teacher forcing's decoder inputs: ``[start, y_0, ..., y_{T-2}]`` for ``targets (B, T)``."""
    targets = jnp.asarray(targets)
    if targets.ndim != 2 or not jnp.issubdtype(targets.dtype, jnp.integer):
        raise ValueError(f"decoder_inputs: expected integer targets (B, T), got {targets.dtype} {targets.shape}")
    start = jnp.full((targets.shape[0], 1), start_token, targets.dtype)
    return jnp.concatenate([start, targets[:, :-1]], axis=1)


def attention_seq2seq(source_vocab: int, target_vocab: int, source_len: int, *, start_token: int,
                      embed_dim: int = 16, encoder_hidden: int = 32, decoder_hidden: int = 64,
                      attention_dim: int = 10, cell: str = "lstm", bidirectional: bool = True,
                      dtype=jnp.float32, name: str = "attention_seq2seq") -> Seq2Seq:
    """Bahdanau et al. (2015)'s encoder-decoder (module docstring).

    Args:
      source_vocab, target_vocab: the vocabulary sizes ``Vs`` and ``Vt``.
      source_len: ``S``, the source length the Module's input must have.
      start_token: the target id fed at the first decoder step, in ``[0, Vt)``.
      embed_dim: ``E``, the width of both embeddings (default N(0, 1) tables).
      encoder_hidden: ``He`` per direction (the course's 32); decoder_hidden ``Hd`` (64).
      attention_dim: ``A``, the width of the additive score's hidden layer (10).
      cell: ``"lstm"`` or ``"gru"`` for both encoder and decoder.
      bidirectional: a bidirectional encoder (concatenated directions).
      dtype: of every parameter.
    """
    for what, v in (("source_vocab", source_vocab), ("target_vocab", target_vocab),
                    ("source_len", source_len), ("embed_dim", embed_dim), ("encoder_hidden", encoder_hidden),
                    ("decoder_hidden", decoder_hidden), ("attention_dim", attention_dim)):
        as_int(name, what, v, minimum=1)
    if cell not in ("lstm", "gru"):
        raise ValueError(f"{name}: expected cell 'lstm' or 'gru', got {cell!r}")
    if isinstance(start_token, bool) or not isinstance(start_token, int) or not 0 <= start_token < target_vocab:
        raise ValueError(f"{name}: start_token must be an int in [0, {target_vocab}), got {start_token!r}")
    make = nn.lstm if cell == "lstm" else nn.gru
    encoder = make(encoder_hidden, bidirectional=bidirectional, dtype=dtype, name=f"{name}.encoder")
    dec_cell = (nn.lstm_cell if cell == "lstm" else nn.gru_cell)(decoder_hidden, dtype=dtype)
    annotation = encoder_hidden * (2 if bidirectional else 1)
    glorot = initializers.xavier_uniform()

    def _split(x):
        if not (isinstance(x, (tuple, list)) and len(x) == 2):
            raise ValueError(f"{name}: expected x = (source, decoder inputs), got {type(x).__name__}"
                             + (f" of length {len(x)}" if isinstance(x, (tuple, list)) else ""))
        source, inputs = (nn.spec_of(a) for a in x)
        if (len(source.shape) != 2 or source.shape[1] != source_len or len(inputs.shape) != 2
                or inputs.shape[0] != source.shape[0]):
            raise ValueError(f"{name}: expected x = (source (B, {source_len}), decoder inputs (B, T)), got "
                             f"shapes {source.shape} and {inputs.shape}")
        return x

    def init(key, x):
        batch = nn.spec_of(_split(x)[0]).shape[0]
        k = [jax.random.fold_in(key, i) for i in range(8)]
        embed_init = initializers.normal(1.0)
        params = {"source_embedding": embed_init(k[0], (source_vocab, embed_dim), dtype),
                  "target_embedding": embed_init(k[1], (target_vocab, embed_dim), dtype)}
        params["encoder"], _ = encoder.init(k[2], jax.ShapeDtypeStruct((batch, source_len, embed_dim), dtype))
        params["attention"] = {"w_query": glorot(k[3], (decoder_hidden, attention_dim), dtype),
                               "w_key": glorot(k[4], (annotation, attention_dim), dtype),
                               "v": glorot(k[5], (attention_dim, 1), dtype)[:, 0]}
        params["decoder"] = dec_cell.init(k[6], jax.ShapeDtypeStruct((batch, embed_dim + annotation), dtype))
        params["output"] = {"kernel": glorot(k[7], (decoder_hidden + annotation, target_vocab), dtype),
                            "bias": jnp.zeros((target_vocab,), dtype)}
        return params, {}

    def _check_ids(what, ids, vocab_name):
        ids = jnp.asarray(ids)
        if ids.ndim != 2 or not jnp.issubdtype(ids.dtype, jnp.integer):
            raise ValueError(f"{name}: expected {what} as integer ids (B, length) of the {vocab_name} "
                             f"vocabulary, got {ids.dtype} {ids.shape}")
        return ids

    def encode(params, source, source_lengths=None):
        """``(annotations (B, S, He'), mask (B, S))``."""
        source = _check_ids("source", source, "source")
        emb = F.embed(source, params["source_embedding"])
        if source_lengths is None:
            ys, _ = encoder.apply(params["encoder"], {}, emb)
            mask = jnp.ones(source.shape, bool)
        else:
            source_lengths = jnp.asarray(source_lengths)
            if source_lengths.shape != source.shape[:1]:
                raise ValueError(f"{name}: expected source_lengths of shape ({source.shape[0]},), got "
                                 f"{source_lengths.shape}")
            ys, _ = encoder.apply(params["encoder"], {}, {"inputs": emb, "lengths": source_lengths})
            ys = ys["inputs"]
            mask = F.sequence_mask(source_lengths, source.shape[1])
        return ys, mask

    def decode_step(params, carry, token):
        annotations, mask, state = carry
        att = params["attention"]
        query = state[0] if cell == "lstm" else state
        context, weights = F.additive_attention(query, annotations, annotations, att["w_query"],
                                                att["w_key"], att["v"], mask=mask)
        x = jnp.concatenate([F.embed(token, params["target_embedding"]), context], axis=-1)
        state, h = dec_cell.apply(params["decoder"], state, x)
        out = params["output"]
        logits = F.dense(jnp.concatenate([h, context], axis=-1), out["kernel"], out["bias"])
        return (annotations, mask, state), logits, weights

    def _initial(params, source, source_lengths):
        annotations, mask = encode(params, source, source_lengths)
        spec = jax.ShapeDtypeStruct((annotations.shape[0], embed_dim + annotation), annotations.dtype)
        return annotations, mask, dec_cell.initial_carry(params["decoder"], spec)

    def teacher_forced(params, source, inputs, *, source_lengths=None):
        source = _check_ids("source", source, "source")
        inputs = _check_ids("decoder inputs", inputs, "target")
        if source.shape[0] != inputs.shape[0]:
            raise ValueError(f"{name}: source and decoder inputs must have one batch size, got "
                             f"{source.shape[0]} and {inputs.shape[0]}")
        carry = _initial(params, source, source_lengths)

        def body(carry, token):
            carry, logits, weights = decode_step(params, carry, token)
            return carry, (logits, weights)

        _, (logits, weights) = jax.lax.scan(body, carry, inputs.T)
        return jnp.swapaxes(logits, 0, 1), jnp.swapaxes(weights, 0, 1)

    def decoder(params, source, *, source_lengths=None):
        source = _check_ids("source", source, "source")
        carry = _initial(params, source, source_lengths)

        def step(carry, token):
            carry, logits, _ = decode_step(params, carry, token)
            return carry, logits

        return step, carry, jnp.full((source.shape[0],), start_token, jnp.int32)

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        source, inputs = _split(x)
        logits, _ = teacher_forced(params, source, inputs)
        return logits, state

    return Seq2Seq(nn.Module(init, apply, name), teacher_forced, decode_step, decoder, source_len, start_token)
