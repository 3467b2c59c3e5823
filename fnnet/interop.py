"""Load PyTorch ``state_dict`` s into fnnet params.

Each function takes a ``state_dict`` (any mapping from names to tensors or arrays;
values may be ``torch.Tensor`` s, NumPy arrays, or anything with ``.numpy()`` or
understood by ``np.asarray``) and the ``prefix`` of one PyTorch module inside it
(``"encoder.0."``), and returns the params of the matching fnnet layer (the
attention layers live in ``fnnet.nn.attention`` and ``fnnet.nn.transformer``):

==============================  =============================  =========================================
PyTorch                         fnnet                          conversion
==============================  =============================  =========================================
``nn.Linear``                   ``nn.dense``                   ``kernel = weight.T``
``nn.Conv1d/2d/3d``             ``nn.conv``                    ``kernel (*window, in/groups, out)``
``nn.BatchNorm1d/2d/3d``        ``nn.batch_norm``              ``scale, bias``; state ``mean, var``
``nn.RNN/GRU/LSTM``             ``nn.simple_rnn/gru/lstm``     ``w_ih = weight_ih_l{k}.T`` etc.,
                                                               every layer and both directions
``nn.LayerNorm``                ``nn.layer_norm``              ``scale = weight``, ``bias``
``nn.MultiheadAttention``       ``multi_head_attention``       ``in_proj_weight (3E, E)`` split into
                                                               ``query/key/value`` (or ``qkv``), ``.T``;
                                                               ``out = out_proj``
``nn.TransformerEncoderLayer``  ``transformer_encoder_block``  ``attention, norm1, norm2``; ``mlp``
                                                               ``= {hidden: linear1, output: linear2}``
``nn.TransformerDecoderLayer``  ``transformer_decoder_block``  ``self_attention, cross_attention``,
                                                               ``norm1..3``, ``mlp`` as above
==============================  =============================  =========================================

Attention layers: build the fnnet layer with PyTorch's ``num_heads``, ``fused_qkv``
matching ``fused`` here, and the masks turned around (PyTorch's ``key_padding_mask``
and boolean ``attn_mask`` are True where attention is *forbidden*; fnnet's are True
where it is allowed). ``add_bias_kv`` and ``add_zero_attn`` have no fnnet twin.

Recurrent layers must be built with the same ``num_layers`` and ``bidirectional``
(``batch_first=True`` on the PyTorch side; fnnet is always batch-major). The gate
orders already agree (GRU ``r, z, n``; LSTM ``i, f, g, o``; ``reset_after=True``).
:func:`convert` guesses the layer kind from the names under a prefix, and
:func:`sequential` converts a whole ``nn.Sequential`` into the params and state of an
fnnet ``serial`` with the same layers in the same order. :func:`vgg` converts a
torchvision VGG (its classifier's first kernel rows permuted to channels-last
flattening) into the params of ``fnnet.models.vgg19`` / ``vgg16`` or of
``fnnet.models.vgg.vgg_features``.

torch is never imported here.

Imports: numpy, jax.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

__all__ = ["to_numpy", "linear", "conv", "batch_norm", "lstm", "gru", "rnn", "recurrent", "layer_norm",
           "multi_head_attention", "transformer_encoder_layer", "transformer_decoder_layer",
           "convert", "sequential", "vgg"]


def to_numpy(value: Any) -> np.ndarray:
    """A tensor or array as a NumPy array (a torch tensor is detached and moved to the CPU)."""
    if hasattr(value, "detach"):
        value = value.detach()
    if hasattr(value, "cpu"):
        value = value.cpu()
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return np.asarray(value)


def _get(state_dict: Mapping, name: str, where: str, required: bool = True):
    if name in state_dict:
        return to_numpy(state_dict[name])
    if required:
        near = sorted(k for k in state_dict if k.startswith(name.rsplit(".", 1)[0]))[:8]
        raise KeyError(f"{where}: state_dict has no entry {name!r} (entries with that prefix: {near})")
    return None


def _arr(a: np.ndarray, dtype):
    return jnp.asarray(a, dtype=dtype if dtype is not None else a.dtype)


def linear(state_dict: Mapping, prefix: str = "", *, dtype=None) -> dict:
    """``nn.Linear`` -> ``nn.dense`` params: ``kernel = weight.T (in, out)``, ``bias``."""
    w = _get(state_dict, prefix + "weight", "linear")
    if w.ndim != 2:
        raise ValueError(f"linear: expected {prefix}weight of rank 2 (out, in), got shape {w.shape}")
    params = {"kernel": _arr(w.T, dtype)}
    b = _get(state_dict, prefix + "bias", "linear", required=False)
    if b is not None:
        params["bias"] = _arr(b, dtype)
    return params


def conv(state_dict: Mapping, prefix: str = "", *, dtype=None) -> dict:
    """``nn.Conv1d/2d/3d`` -> ``nn.conv`` params: torch's ``weight (out, in/groups, *window)``
    becomes ``kernel (*window, in/groups, out)``. Cross-correlation in both, so no flip."""
    w = _get(state_dict, prefix + "weight", "conv")
    if w.ndim not in (3, 4, 5):
        raise ValueError(f"conv: expected {prefix}weight of rank 3-5 (out, in, *window), got shape {w.shape}")
    params = {"kernel": _arr(np.transpose(w, tuple(range(2, w.ndim)) + (1, 0)), dtype)}
    b = _get(state_dict, prefix + "bias", "conv", required=False)
    if b is not None:
        params["bias"] = _arr(b, dtype)
    return params


def batch_norm(state_dict: Mapping, prefix: str = "", *, dtype=None) -> tuple[dict, dict]:
    """``nn.BatchNorm*d`` -> ``(params, state)`` of ``nn.batch_norm``:
    ``{"scale": weight, "bias": bias}`` (absent when ``affine=False``) and
    ``{"mean": running_mean, "var": running_var}`` (``num_batches_tracked`` is dropped;
    PyTorch's ``momentum=None`` cumulative average has no fnnet twin)."""
    params = {}
    w = _get(state_dict, prefix + "weight", "batch_norm", required=False)
    b = _get(state_dict, prefix + "bias", "batch_norm", required=False)
    if w is not None:
        params["scale"] = _arr(w, dtype)
    if b is not None:
        params["bias"] = _arr(b, dtype)
    state = {"mean": _arr(_get(state_dict, prefix + "running_mean", "batch_norm"), dtype),
             "var": _arr(_get(state_dict, prefix + "running_var", "batch_norm"), dtype)}
    return params, state


_GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def recurrent(state_dict: Mapping, prefix: str = "", *, kind: str | None = None, dtype=None) -> dict:
    """``nn.RNN/GRU/LSTM`` (any ``num_layers``, uni- or bidirectional) -> the params of
    ``nn.simple_rnn/gru/lstm(hidden, num_layers=..., bidirectional=...)``.

    ``w_ih = weight_ih_l{k}[_reverse].T``, ``w_hh = weight_hh_l{k}[_reverse].T``,
    ``b_ih``, ``b_hh`` as they are (zeros when ``bias=False``). Layout: the cell's
    params for one unidirectional layer, ``{"forward", "backward"}`` per bidirectional
    layer, ``{"0", "1", ...}`` for several layers. ``kind`` (``"lstm"``, ``"gru"``,
    ``"rnn"``) is checked against the gate count when given.
    """
    pattern = re.compile(re.escape(prefix) + r"weight_ih_l(\d+)(_reverse)?$")
    found = [pattern.match(k) for k in state_dict]
    layers = sorted({int(m.group(1)) for m in found if m})
    if not layers:
        raise KeyError(f"recurrent: no entry {prefix}weight_ih_l0 in the state_dict")
    if layers != list(range(len(layers))):
        raise ValueError(f"recurrent: layers {layers} under {prefix!r} are not numbered 0..{len(layers) - 1}")
    if any(k.startswith(prefix + "weight_hr_l") for k in state_dict):
        raise ValueError("recurrent: LSTMs with proj_size > 0 (weight_hr_l*) have no fnnet twin")
    bidir = any(m and m.group(2) for m in found)

    def cell(layer: int, suffix: str) -> dict:
        w_ih = _get(state_dict, f"{prefix}weight_ih_l{layer}{suffix}", "recurrent")
        w_hh = _get(state_dict, f"{prefix}weight_hh_l{layer}{suffix}", "recurrent")
        hidden = w_hh.shape[1]
        gates, rem = divmod(w_hh.shape[0], hidden)
        if rem or gates not in (1, 3, 4):
            raise ValueError(f"recurrent: {prefix}weight_hh_l{layer}{suffix} of shape {w_hh.shape} is not "
                             "(G*h, h) with G = 1 (RNN), 3 (GRU) or 4 (LSTM)")
        if kind is not None and _GATES[kind] != gates:
            raise ValueError(f"recurrent: expected a {kind} ({_GATES[kind]} gates), but {prefix}weight_hh_l"
                             f"{layer}{suffix} has shape {w_hh.shape} ({gates} gates)")
        zeros = np.zeros(w_hh.shape[:1], w_hh.dtype)
        b_ih = _get(state_dict, f"{prefix}bias_ih_l{layer}{suffix}", "recurrent", required=False)
        b_hh = _get(state_dict, f"{prefix}bias_hh_l{layer}{suffix}", "recurrent", required=False)
        return {"w_ih": _arr(w_ih.T, dtype), "w_hh": _arr(w_hh.T, dtype),
                "b_ih": _arr(zeros if b_ih is None else b_ih, dtype),
                "b_hh": _arr(zeros if b_hh is None else b_hh, dtype)}

    def layer_params(layer: int):
        if bidir:
            return {"forward": cell(layer, ""), "backward": cell(layer, "_reverse")}
        return cell(layer, "")

    if len(layers) == 1:
        return layer_params(0)
    return {str(k): layer_params(k) for k in layers}


def lstm(state_dict: Mapping, prefix: str = "", *, dtype=None) -> dict:
    """``nn.LSTM`` -> params of ``fnnet.nn.lstm`` (see :func:`recurrent`)."""
    return recurrent(state_dict, prefix, kind="lstm", dtype=dtype)


def gru(state_dict: Mapping, prefix: str = "", *, dtype=None) -> dict:
    """``nn.GRU`` -> params of ``fnnet.nn.gru`` (``reset_after=True``; see :func:`recurrent`)."""
    return recurrent(state_dict, prefix, kind="gru", dtype=dtype)


def rnn(state_dict: Mapping, prefix: str = "", *, dtype=None) -> dict:
    """``nn.RNN`` -> params of ``fnnet.nn.simple_rnn`` (same ``nonlinearity``; see :func:`recurrent`)."""
    return recurrent(state_dict, prefix, kind="rnn", dtype=dtype)


def layer_norm(state_dict: Mapping, prefix: str = "", *, dtype=None) -> dict:
    """``nn.LayerNorm`` -> ``nn.layer_norm`` params: ``{"scale": weight, "bias": bias}`` (each
    absent when PyTorch has none: ``elementwise_affine=False`` or ``bias=False``)."""
    params = {}
    for ours, theirs in (("scale", "weight"), ("bias", "bias")):
        value = _get(state_dict, prefix + theirs, "layer_norm", required=False)
        if value is not None:
            params[ours] = _arr(value, dtype)
    return params


def multi_head_attention(state_dict: Mapping, prefix: str = "", *, fused: bool = False,
                         dtype=None) -> dict:
    """``nn.MultiheadAttention`` -> params of ``nn.attention.multi_head_attention``.

    PyTorch's ``in_proj_weight (3E, E)`` stacks the query, key and value weights;
    ``fused=False`` gives ``query/key/value = {"kernel": W_i.T, "bias": b_i}``,
    ``fused=True`` one ``qkv = {"kernel": in_proj_weight.T (E, 3E), "bias": in_proj_bias}``.
    With ``kdim``/``vdim`` set, PyTorch keeps ``q/k/v_proj_weight`` apart (``fused``
    must be False). ``out = {"kernel": out_proj.weight.T, "bias": out_proj.bias}``.
    """
    where = "multi_head_attention"
    if prefix + "bias_k" in state_dict or prefix + "bias_v" in state_dict:
        raise ValueError(f"{where}: add_bias_kv=True ({prefix}bias_k, {prefix}bias_v) has no fnnet twin")
    bias = _get(state_dict, prefix + "in_proj_bias", where, required=False)
    if prefix + "in_proj_weight" in state_dict:
        w = _get(state_dict, prefix + "in_proj_weight", where)
        if w.ndim != 2 or w.shape[0] % 3:
            raise ValueError(f"{where}: expected {prefix}in_proj_weight of shape (3E, E), got {w.shape}")
        if fused:
            params = {"qkv": {"kernel": _arr(w.T, dtype)}}
            if bias is not None:
                params["qkv"]["bias"] = _arr(bias, dtype)
            ws = None
        else:
            ws = np.split(w, 3, axis=0)
    else:
        if fused:
            raise ValueError(f"{where}: fused=True needs in_proj_weight, but {prefix!r} holds separate "
                             "q/k/v_proj_weight (kdim or vdim differ from embed_dim)")
        ws = [_get(state_dict, f"{prefix}{n}_proj_weight", where) for n in "qkv"]
    if ws is not None:
        bs = [None] * 3 if bias is None else np.split(bias, np.cumsum([a.shape[0] for a in ws])[:2])
        params = {}
        for n, wi, bi in zip(("query", "key", "value"), ws, bs):
            params[n] = {"kernel": _arr(wi.T, dtype)}
            if bi is not None:
                params[n]["bias"] = _arr(bi, dtype)
    params["out"] = {"kernel": _arr(_get(state_dict, prefix + "out_proj.weight", where).T, dtype)}
    out_bias = _get(state_dict, prefix + "out_proj.bias", where, required=False)
    if out_bias is not None:
        params["out"]["bias"] = _arr(out_bias, dtype)
    return params


def _mlp_and_norms(state_dict, prefix, norms, dtype):
    params = {"mlp": {"hidden": linear(state_dict, prefix + "linear1.", dtype=dtype),
                      "output": linear(state_dict, prefix + "linear2.", dtype=dtype)}}
    for k in range(1, norms + 1):
        params[f"norm{k}"] = layer_norm(state_dict, f"{prefix}norm{k}.", dtype=dtype)
    return params


def transformer_encoder_layer(state_dict: Mapping, prefix: str = "", *, fused: bool = False,
                              dtype=None) -> dict:
    """``nn.TransformerEncoderLayer`` -> params of ``nn.transformer.transformer_encoder_block``:
    ``attention`` from ``self_attn`` (see :func:`multi_head_attention`), ``mlp.hidden``
    from ``linear1``, ``mlp.output`` from ``linear2``, ``norm1``, ``norm2``. Build the
    block with the same ``norm_first``, ``activation`` and ``layer_norm_eps``."""
    params = _mlp_and_norms(state_dict, prefix, 2, dtype)
    params["attention"] = multi_head_attention(state_dict, prefix + "self_attn.", fused=fused, dtype=dtype)
    return params


def transformer_decoder_layer(state_dict: Mapping, prefix: str = "", *, fused: bool = False,
                              dtype=None) -> dict:
    """``nn.TransformerDecoderLayer`` -> params of ``nn.transformer.transformer_decoder_block``:
    ``self_attention`` from ``self_attn``, ``cross_attention`` from ``multihead_attn``,
    ``mlp`` from ``linear1``/``linear2``, ``norm1..3``."""
    params = _mlp_and_norms(state_dict, prefix, 3, dtype)
    params["self_attention"] = multi_head_attention(state_dict, prefix + "self_attn.", fused=fused,
                                                    dtype=dtype)
    params["cross_attention"] = multi_head_attention(state_dict, prefix + "multihead_attn.",
                                                     fused=fused, dtype=dtype)
    return params


def convert(state_dict: Mapping, prefix: str = "", *, dtype=None) -> tuple[dict, dict]:
    """``(params, state)`` of the one PyTorch module under ``prefix``, its kind guessed from
    the names: ``running_mean`` -> batch norm, ``weight_ih_l0`` -> RNN/GRU/LSTM, a rank-2
    ``weight`` -> linear, rank 3-5 -> conv. Modules without entries give ``({}, {})``."""
    names = {k[len(prefix):] for k in state_dict if k.startswith(prefix)}
    if not names:
        return {}, {}
    if "running_mean" in names:
        return batch_norm(state_dict, prefix, dtype=dtype)
    if "weight_ih_l0" in names:
        return recurrent(state_dict, prefix, dtype=dtype), {}
    if "weight" in names:
        rank = to_numpy(state_dict[prefix + "weight"]).ndim
        if rank == 2:
            return linear(state_dict, prefix, dtype=dtype), {}
        if rank in (3, 4, 5):
            return conv(state_dict, prefix, dtype=dtype), {}
    raise ValueError(f"convert: cannot tell which layer has the entries {sorted(names)} under {prefix!r}; "
                     "call linear/conv/batch_norm/recurrent directly")


def sequential(state_dict: Mapping, num_modules: int, prefix: str = "", *, dtype=None) -> tuple[dict, dict]:
    """A PyTorch ``nn.Sequential`` of ``num_modules`` children (``"0.weight"``, ``"2.bias"``,
    ...) -> ``(params, state)`` of an fnnet ``serial`` with the same layers in the same
    order (parameterless children such as ``nn.ReLU`` get ``{}``). Children that are
    themselves containers are not handled: convert them with :func:`convert` and a prefix."""
    params, state = {}, {}
    for i in range(num_modules):
        params[str(i)], state[str(i)] = convert(state_dict, f"{prefix}{i}.", dtype=dtype)
    extra = {k for k in state_dict if k.startswith(prefix) and not re.match(re.escape(prefix) + r"\d+\.", k)}
    beyond = {k for k in state_dict if (m := re.match(re.escape(prefix) + r"(\d+)\.", k)) and int(m.group(1)) >= num_modules}
    if extra or beyond:
        raise ValueError(f"sequential: entries outside children 0..{num_modules - 1}: {sorted(extra | beyond)[:8]}")
    return params, state


def vgg(state_dict: Mapping, *, features_only: bool = False, prefix: str = "", dtype=None) -> tuple[dict, dict]:
    """A torchvision VGG (``vgg11`` ... ``vgg19``, with or without batch norm) ``state_dict``
    -> ``(params, state)`` of :func:`fnnet.models.vgg19` (or ``vgg16``; the same
    ``batch_norm``), or of :func:`fnnet.models.vgg.vgg_features` with ``features_only``.

    ``features.{i}`` becomes child ``str(i)`` (the fnnet layer list keeps torchvision's
    indices); the feature stack is the last indexed entry plus a ReLU and the final max
    pool. The classifier's three ``nn.Linear`` follow the adaptive pool and the
    flatten: ``classifier.0``, ``.3``, ``.6`` become children ``n + 2``, ``n + 5``,
    ``n + 8`` for ``n`` feature layers. PyTorch flattens the ``(512, 7, 7)`` map
    channels first and fnnet ``(7, 7, 512)`` channels last, so the first classifier
    kernel's rows are permuted: fnnet row ``(h * 7 + w) * 512 + c`` is PyTorch column
    ``c * 49 + h * 7 + w``.

    Args:
      state_dict: e.g. ``torchvision.models.vgg19(weights=...).state_dict()`` or a
        ``torch.load``-ed file of one.
      features_only: convert only ``features.*`` (other entries are ignored).
      prefix: the prefix of the VGG's entries inside a bigger ``state_dict``.
    """
    indices = sorted({int(m.group(1)) for k in state_dict
                      if (m := re.match(re.escape(prefix) + r"features\.(\d+)\.", k))})
    if not indices:
        near = sorted(state_dict)[:8]
        raise KeyError(f"vgg: state_dict has no entry {prefix + 'features.<i>.weight'!r} (a torchvision VGG's "
                       f"convolutions); its first entries are {near}")
    n = indices[-1] + 3                     # the last conv (or batch norm), its ReLU, the last max pool
    params, state = {}, {}
    for i in range(n):
        params[str(i)], state[str(i)] = convert(state_dict, f"{prefix}features.{i}.", dtype=dtype)
    if features_only:
        return params, state
    linears = {0: n + 2, 3: n + 5, 6: n + 8}
    for j, i in linears.items():
        params[str(i)] = linear(state_dict, f"{prefix}classifier.{j}.", dtype=dtype)
    kernel = np.asarray(params[str(n + 2)]["kernel"])                 # (C * 7 * 7, hidden), rows (c, h, w)
    channels = to_numpy(state_dict[f"{prefix}features.{indices[-1]}.weight"]).shape[0]
    side = int(round((kernel.shape[0] // channels) ** 0.5))
    if channels * side * side != kernel.shape[0]:
        raise ValueError(f"vgg: classifier.0 takes {kernel.shape[0]} inputs, expected {channels} channels times a "
                         "square map")
    kernel = kernel.reshape(channels, side, side, -1).transpose(1, 2, 0, 3).reshape(kernel.shape)
    params[str(n + 2)]["kernel"] = _arr(kernel, dtype)
    for i in range(n, n + 9):
        params.setdefault(str(i), {})
        state.setdefault(str(i), {})
    return params, state
