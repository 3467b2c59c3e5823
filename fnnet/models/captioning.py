"""Image captioning with soft attention over a CNN feature map (Xu et al. 2015).

"Show, Attend and Tell": a small channels-last CNN turns the image into a grid of
``L = h w`` annotation vectors ``a_1..a_L`` (with ``coordinates=True`` each also holds
its cell's row and column in [-1, 1], so the attended context says *where* as well as
*what*); an LSTM decoder attends over them at every word::

    h_0 = tanh(mean_i(a_i) W_h0 + b),   c_0 = tanh(mean_i(a_i) W_c0 + b)
    e_ti = v . tanh(W_q h_{t-1} + W_k a_i),   alpha_t = softmax(e_t),   z_t = sum_i alpha_ti a_i
    beta_t = sigmoid(h_{t-1} w_beta + b_beta)                 (the gate of section 4.2.1; 1 without gate)
    h_t, c_t = LSTM([E y_{t-1} ; beta_t z_t], (h_{t-1}, c_{t-1}))
    logits_t = (E y_{t-1} + h_t L_h + beta_t z_t L_z) L_o + b_o     (the deep output of eq. 7)

Training uses teacher forcing (the true previous words, ``y_0 = start_token``, in one
``lax.scan``); decoding feeds back the model's own words through
:func:`fnnet.text.beam_search.greedy_decode` or
:func:`~fnnet.text.beam_search.beam_search` with the one-step protocol that
:meth:`Captioner.decoder` returns (its carry holds the annotations). The attention
weights ``alpha_t`` of every word come back for plotting, and for Xu et al.'s doubly
stochastic penalty ``lambda sum_i (1 - sum_t alpha_ti)^2`` if wanted.

The Module reads the pair ``x = (images, decoder inputs)``, as
:func:`fnnet.train.fit` feeds it from ``train_data = ((images, inputs), targets)``.

Params: ``encoder`` (``{"0": {"kernel", "bias"}, "3": ...}``, one entry per conv layer,
keyed by its place in the encoder's ``serial``: conv ``i`` at ``3 i``, context conv ``j`` at
``3 n + 2 j``),
``embedding (V, E)``, ``init_h`` and ``init_c`` (``kernel (D, H)``, ``bias``),
``attention`` (``w_query (H, A)``, ``w_key (D, A)``, ``v (A,)``), ``gate`` (``kernel
(H, 1)``, ``bias (1,)``; absent without gate), ``decoder`` (the LSTM cell's fused
``w_ih (E + D, 4H), w_hh, b_ih, b_hh``), ``output`` (``w_h (H, E)``, ``w_z (D, E)``,
``kernel (E, V)``, ``bias (V,)``), with ``D`` the annotation width (last conv's channels,
+2 with coordinates).

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

__all__ = ["Captioner", "show_attend_tell", "feature_coordinates"]


class Captioner(NamedTuple):
    """A soft-attention captioner: a Module for training and the pure functions around it.

    - ``module``: ``init(key, x)`` / ``apply(params, state, x) -> (logits (B, T, V), state)``
      with ``x = (images (B, H, W, C), decoder inputs (B, T))``.
    - ``encode(params, images) -> annotations (B, L, D)``.
    - ``teacher_forced(params, images, inputs) -> (logits (B, T, V), weights (B, T, L))``.
    - ``decode_step(params, carry, token) -> (carry, logits, weights)``: one word.
    - ``decoder(params, images) -> (step, carry, start)``: ``step(carry, token) ->
      (carry, logits)`` for greedy or beam search, its initial carry, the start tokens.
    - ``image_shape (H, W, C)``, ``grid (h, w)`` of the feature map, ``start_token``.
    """
    module: nn.Module
    encode: Callable
    teacher_forced: Callable
    decode_step: Callable
    decoder: Callable
    image_shape: tuple
    grid: tuple
    start_token: int


def feature_coordinates(h: int, w: int, dtype=jnp.float32):
    """``(h w, 2)``: the row and column of each feature cell (row-major), each in [-1, 1]."""
    rows = jnp.linspace(-1.0, 1.0, h, dtype=dtype) if h > 1 else jnp.zeros((1,), dtype)
    cols = jnp.linspace(-1.0, 1.0, w, dtype=dtype) if w > 1 else jnp.zeros((1,), dtype)
    return jnp.stack([jnp.repeat(rows, w), jnp.tile(cols, h)], axis=-1)


def show_attend_tell(vocab_size: int, image_shape: tuple, *, start_token: int, channels: tuple = (16, 32),
                     context_layers: int = 0, embed_dim: int = 32, hidden: int = 64, attention_dim: int = 32,
                     coordinates: bool = True,
                     gate: bool = True, dtype=jnp.float32, name: str = "show_attend_tell") -> Captioner:
    """Xu et al. (2015)'s soft-attention captioner (module docstring).

    Args:
      vocab_size: ``V``, the number of word ids.
      image_shape: ``(H, W, C)`` of the (channels-last) images.
      start_token: the id fed at the first decoder step, in ``[0, V)``.
      channels: the encoder: per entry a 3x3 ``SAME`` convolution with that many
        channels, ReLU, and 2x2 max pooling (so the grid is ``H / 2^n`` by ``W / 2^n``).
      context_layers: then this many 3x3 ``SAME`` convolutions (``channels[-1]``
        channels, ReLU, no pooling) on the grid with dilations 1, 2, 4, ..., so that each
        cell's annotation also sees the rest of the image (0: Xu et al.'s encoder).
      embed_dim: ``E``, the word embedding width (also the deep output's width).
      hidden: ``H``, the LSTM's units.
      attention_dim: ``A``, the width of the additive score's hidden layer.
      coordinates: append each feature cell's (row, column) to its annotation.
      gate: the gating scalar ``beta_t``.
      dtype: of every parameter.
    """
    for what, v in (("vocab_size", vocab_size), ("embed_dim", embed_dim), ("hidden", hidden),
                    ("attention_dim", attention_dim)):
        as_int(name, what, v, minimum=1)
    context_layers = as_int(name, "context_layers", context_layers, minimum=0)
    if not isinstance(channels, (tuple, list)) or not channels:
        raise ValueError(f"{name}: expected channels as a non-empty tuple of ints, got {channels!r}")
    channels = tuple(as_int(name, "each entry of channels", c, minimum=1) for c in channels)
    if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3:
        raise ValueError(f"{name}: expected image_shape (H, W, C), got {image_shape!r}")
    image_shape = tuple(as_int(name, "each entry of image_shape", d, minimum=1) for d in image_shape)
    if isinstance(start_token, bool) or not isinstance(start_token, int) or not 0 <= start_token < vocab_size:
        raise ValueError(f"{name}: start_token must be an int in [0, {vocab_size}), got {start_token!r}")
    scale = 2 ** len(channels)
    if image_shape[0] % scale or image_shape[1] % scale:
        raise ValueError(f"{name}: expected image height and width divisible by 2^{len(channels)} = {scale} "
                         f"(one 2x2 pooling per conv layer), got {image_shape[:2]}")
    grid = (image_shape[0] // scale, image_shape[1] // scale)
    cells = grid[0] * grid[1]
    width = channels[-1] + (2 if coordinates else 0)
    layers = []
    for c in channels:
        layers += [nn.conv(c, 3, padding="SAME", dtype=dtype), nn.relu, nn.max_pool(2)]
    for i in range(context_layers):
        layers += [nn.conv(channels[-1], 3, padding="SAME", dilation=2 ** i, dtype=dtype), nn.relu]
    cnn = nn.serial(*layers, name=f"{name}.encoder")
    conv_index = [str(3 * i) for i in range(len(channels))] + [
        str(3 * len(channels) + 2 * i) for i in range(context_layers)]
    cell = nn.lstm_cell(hidden, dtype=dtype)
    glorot = initializers.xavier_uniform()

    def _split(x):
        if not (isinstance(x, (tuple, list)) and len(x) == 2):
            raise ValueError(f"{name}: expected x = (images, decoder inputs), got {type(x).__name__}"
                             + (f" of length {len(x)}" if isinstance(x, (tuple, list)) else ""))
        return x

    def init(key, x):
        images, inputs = (nn.spec_of(a) for a in _split(x))
        if images.shape[1:] != image_shape or len(inputs.shape) != 2 or inputs.shape[0] != images.shape[0]:
            raise ValueError(f"{name}: expected x = (images (B, {', '.join(map(str, image_shape))}), decoder "
                             f"inputs (B, T)), got shapes {images.shape} and {inputs.shape}")
        batch = images.shape[0]
        k = [jax.random.fold_in(key, i) for i in range(12)]
        enc, _ = cnn.init(k[0], jax.ShapeDtypeStruct((batch,) + image_shape, dtype))
        params = {"encoder": {i: enc[i] for i in conv_index},
                  "embedding": initializers.normal(1.0)(k[1], (vocab_size, embed_dim), dtype),
                  "init_h": {"kernel": glorot(k[2], (width, hidden), dtype), "bias": jnp.zeros((hidden,), dtype)},
                  "init_c": {"kernel": glorot(k[3], (width, hidden), dtype), "bias": jnp.zeros((hidden,), dtype)},
                  "attention": {"w_query": glorot(k[4], (hidden, attention_dim), dtype),
                                "w_key": glorot(k[5], (width, attention_dim), dtype),
                                "v": glorot(k[6], (attention_dim, 1), dtype)[:, 0]},
                  "decoder": cell.init(k[7], jax.ShapeDtypeStruct((batch, embed_dim + width), dtype)),
                  "output": {"w_h": glorot(k[8], (hidden, embed_dim), dtype),
                             "w_z": glorot(k[9], (width, embed_dim), dtype),
                             "kernel": glorot(k[10], (embed_dim, vocab_size), dtype),
                             "bias": jnp.zeros((vocab_size,), dtype)}}
        if gate:
            params["gate"] = {"kernel": glorot(k[11], (hidden, 1), dtype), "bias": jnp.zeros((1,), dtype)}
        return params, {}

    def _check_images(images):
        images = jnp.asarray(images)
        if images.ndim != 4 or images.shape[1:] != image_shape or not jnp.issubdtype(images.dtype, jnp.floating):
            raise ValueError(f"{name}: expected float images (B, {', '.join(map(str, image_shape))}), got "
                             f"{images.dtype} {images.shape}")
        return images

    def encode(params, images):
        """Annotations ``(B, L, D)``, row-major over the feature grid."""
        images = _check_images(images)
        enc = {str(i): {} for i in range(len(layers))}
        enc.update(params["encoder"])
        features, _ = cnn.apply(enc, {str(i): {} for i in range(len(layers))}, images)
        a = features.reshape(features.shape[0], cells, channels[-1])
        if coordinates:
            xy = feature_coordinates(*grid, a.dtype)
            a = jnp.concatenate([a, jnp.broadcast_to(xy[None], (a.shape[0], cells, 2))], axis=-1)
        return a

    def _initial(params, images):
        a = encode(params, images)
        mean = jnp.mean(a, axis=1)
        h = jnp.tanh(F.dense(mean, params["init_h"]["kernel"], params["init_h"]["bias"]))
        c = jnp.tanh(F.dense(mean, params["init_c"]["kernel"], params["init_c"]["bias"]))
        return a, (h, c)

    def decode_step(params, carry, token):
        a, (h, c) = carry
        att = params["attention"]
        z, weights = F.additive_attention(h, a, a, att["w_query"], att["w_key"], att["v"])
        if gate:
            z = z * jax.nn.sigmoid(F.dense(h, params["gate"]["kernel"], params["gate"]["bias"]))
        e = F.embed(token, params["embedding"])
        (h, c), _ = cell.apply(params["decoder"], (h, c), jnp.concatenate([e, z], axis=-1))
        out = params["output"]
        logits = F.dense(e + h @ out["w_h"] + z @ out["w_z"], out["kernel"], out["bias"])
        return (a, (h, c)), logits, weights

    def _check_inputs(inputs, batch):
        inputs = jnp.asarray(inputs)
        if inputs.ndim != 2 or not jnp.issubdtype(inputs.dtype, jnp.integer):
            raise ValueError(f"{name}: expected decoder inputs as integer ids (B, T), got {inputs.dtype} "
                             f"{inputs.shape}")
        if inputs.shape[0] != batch:
            raise ValueError(f"{name}: images and decoder inputs must have one batch size, got {batch} and "
                             f"{inputs.shape[0]}")
        return inputs

    def teacher_forced(params, images, inputs):
        images = _check_images(images)
        inputs = _check_inputs(inputs, images.shape[0])
        carry = _initial(params, images)

        def body(carry, token):
            carry, logits, weights = decode_step(params, carry, token)
            return carry, (logits, weights)

        _, (logits, weights) = jax.lax.scan(body, carry, inputs.T)
        return jnp.swapaxes(logits, 0, 1), jnp.swapaxes(weights, 0, 1)

    def decoder(params, images):
        carry = _initial(params, images)

        def step(carry, token):
            carry, logits, _ = decode_step(params, carry, token)
            return carry, logits

        return step, carry, jnp.full((carry[0].shape[0],), start_token, jnp.int32)

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        images, inputs = _split(x)
        logits, _ = teacher_forced(params, images, inputs)
        return logits, state

    return Captioner(nn.Module(init, apply, name), encode, teacher_forced, decode_step, decoder, image_shape,
                     grid, start_token)
