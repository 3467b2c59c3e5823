"""Recurrent Cells and the Modules that run them over time.

A **Cell** is one time step, usable on its own (sampling, beam search)::

    Cell(init, apply, initial_carry)
    init(key, x_t)                            -> params          (x_t: (N, F) array or spec)
    apply(params, carry, x_t, *, key=None)    -> (carry, y_t)
    initial_carry(params, x_t)                -> zero carry for a batch like x_t

Built-in cells: :func:`rnn_cell` (carry ``h``), :func:`gru_cell` (carry ``h``),
:func:`lstm_cell` (carry ``(h, c)``). Their params are PyTorch's fused weights
``w_ih (F, G*h)``, ``w_hh (h, G*h)``, ``b_ih``, ``b_hh`` (gate orders GRU ``r, z, n``,
LSTM ``i, f, g, o``), so :mod:`fnnet.interop` loads ``nn.RNN/GRU/LSTM`` checkpoints.

**Modules over sequences** (batch-major, ``x (N, T, F)``):

- :func:`rnn` lifts a Cell: ``rnn(lstm_cell(128))``; :func:`bidirectional` runs a
  forward and a backward Cell and concatenates (or sums) their outputs.
- :func:`lstm`, :func:`gru`, :func:`simple_rnn` build PyTorch-shaped layers with
  ``num_layers``, ``bidirectional`` and ``dropout`` between layers.
- Deep RNNs are also a ``serial`` of ``rnn`` s; ``lstm(h, num_layers=2)`` has the same
  params tree ``{"0": ..., "1": ...}`` as ``serial(rnn(lstm_cell(h)), rnn(lstm_cell(h)))``.

Input ``x`` of a recurrent Module is either the array ``(N, T, F)`` or a dict with key
``"inputs"`` and optional ``"lengths" (N,)`` (padded variable-length sequences: the
carry freezes and outputs are zero after each length) and ``"initial_carry"`` (e.g.
the final carry of the previous chunk, for truncated BPTT). Output:

- ``return_sequences=True`` (many-to-many): ``(N, T, H)``; if the input carried
  ``"lengths"`` the output is ``{"inputs": ys, "lengths": lengths}``, so the next
  recurrent layer of a ``serial`` sees the lengths too.
- ``return_sequences=False`` (many-to-one): ``(N, H)``, the output at each sequence's
  last valid step (for a backward direction: at ``t = 0``).
- ``return_carry=True``: the pair ``(y, final_carry)``.

Params: one Cell's params; ``{"forward", "backward"}`` for a bidirectional layer;
``{"0", "1", ...}`` (one entry per layer) for ``num_layers > 1``. Carries mirror this:
the cell's carry, ``(forward, backward)``, a tuple per layer. State is always ``{}``.

Imports: fnnet.functional, fnnet.init.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from fnnet import functional as F
from fnnet import init as initializers
from fnnet.functional._checks import as_int
from fnnet.nn.module import Module, require_key, spec_of

__all__ = ["Cell", "rnn_cell", "gru_cell", "lstm_cell", "rnn", "bidirectional", "lstm", "gru",
           "simple_rnn"]


@dataclasses.dataclass(frozen=True)
class Cell:
    """One recurrent time step: ``init(key, x_t) -> params``,
    ``apply(params, carry, x_t, *, key=None) -> (carry, y_t)``,
    ``initial_carry(params, x_t) -> carry``.

    ``sequence``, if given, runs the whole sequence at once,
    ``sequence(params, carry, xs, *, lengths, reverse, unroll) -> (carry, ys)`` with
    ``xs (N, T, F)``, and must equal the scan of ``apply``; :func:`rnn` uses it (the
    built-in cells hoist the input projection out of the loop). Leave it ``None`` for
    a cell that draws random numbers: then every time step gets its own key.
    """
    init: Callable[..., Any]
    apply: Callable[..., Any]
    initial_carry: Callable[..., Any]
    name: str = "cell"
    sequence: Callable[..., Any] | None = None


# ---------------------------------------------------------------------------
# Built-in cells

def _fused_init(key, shape_in: int, hidden: int, gates: int, kernel_init, recurrent_init, bias_init,
                dtype) -> dict:
    """Each gate's block drawn on its own, then fused along the last axis."""
    k_ih, k_hh, k_b = (jax.random.fold_in(key, i) for i in range(3))
    w_ih = jnp.concatenate([kernel_init(jax.random.fold_in(k_ih, g), (shape_in, hidden), dtype)
                            for g in range(gates)], axis=1)
    w_hh = jnp.concatenate([recurrent_init(jax.random.fold_in(k_hh, g), (hidden, hidden), dtype)
                            for g in range(gates)], axis=1)
    return {"w_ih": w_ih, "w_hh": w_hh,
            "b_ih": bias_init(jax.random.fold_in(k_b, 0), (gates * hidden,), dtype),
            "b_hh": bias_init(jax.random.fold_in(k_b, 1), (gates * hidden,), dtype)}


def _make_cell(name, hidden, gates, step, sequence, kernel_init, recurrent_init, bias_init, dtype,
               lstm_carry=False, extra_init=None) -> Cell:
    hidden = as_int(name, "hidden size", hidden, minimum=1)
    kernel_init = kernel_init or initializers.xavier_uniform()
    recurrent_init = recurrent_init or initializers.orthogonal()
    bias_init = bias_init or initializers.zeros()

    def init(key, x_t):
        spec = spec_of(x_t)
        if len(spec.shape) < 1:
            raise ValueError(f"{name}: expected a step input (N, F), got shape {spec.shape}")
        params = _fused_init(key, spec.shape[-1], hidden, gates, kernel_init, recurrent_init, bias_init, dtype)
        if extra_init is not None:
            params = extra_init(jax.random.fold_in(key, 3), params)
        return params

    def initial_carry(params, x_t):
        spec = spec_of(x_t)
        h = jnp.zeros(tuple(spec.shape[:-1]) + (params["w_hh"].shape[0],), params["w_hh"].dtype)
        return (h, h) if lstm_carry else h

    def apply(params, carry, x_t, *, key=None):
        del key
        try:
            return step(params, carry, x_t)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None

    return Cell(init, apply, initial_carry, name, sequence)


def rnn_cell(hidden: int, *, activation: str = "tanh", kernel_init=None, recurrent_init=None,
             bias_init=None, dtype=jnp.float32, name: str = "rnn_cell") -> Cell:
    """Elman RNN cell ``h' = act(x W_ih + b_ih + h W_hh + b_hh)`` (PyTorch ``nn.RNNCell``).

    Args:
      hidden: hidden size ``h``.
      activation: ``"tanh"`` or ``"relu"``.
      kernel_init: ``w_ih`` initialiser, per gate block (default Xavier uniform).
      recurrent_init: ``w_hh`` initialiser, per ``(h, h)`` gate block (default orthogonal,
        Saxe et al. 2014).
      bias_init: both biases (default zeros).
    """
    if activation not in ("tanh", "relu"):
        raise ValueError(f"{name}: expected activation 'tanh' or 'relu', got {activation!r}")
    step = functools.partial(F.rnn_cell, activation=activation)
    seq = functools.partial(F.rnn_sequence, activation=activation)
    return _make_cell(name, hidden, 1, step, seq, kernel_init, recurrent_init, bias_init, dtype)


def gru_cell(hidden: int, *, reset_after: bool = True, kernel_init=None, recurrent_init=None,
             bias_init=None, dtype=jnp.float32, name: str = "gru_cell") -> Cell:
    """GRU cell in PyTorch's form (gates ``r, z, n``); see :func:`fnnet.functional.gru_cell`.

    ``reset_after=False`` is the Cho et al. (2014) form, reset gate before the
    recurrent matmul. Initialisers as in :func:`rnn_cell`.
    """
    step = functools.partial(F.gru_cell, reset_after=reset_after)
    seq = functools.partial(F.gru_sequence, reset_after=reset_after)
    return _make_cell(name, hidden, 3, step, seq, kernel_init, recurrent_init, bias_init, dtype)


def lstm_cell(hidden: int, *, peephole: bool = False, forget_bias: float = 0.0, kernel_init=None,
              recurrent_init=None, bias_init=None, dtype=jnp.float32, name: str = "lstm_cell") -> Cell:
    """LSTM cell in PyTorch's form (gates ``i, f, g, o``); see :func:`fnnet.functional.lstm_cell`.

    Carry ``(h, c)``. ``peephole=True`` adds ``w_peephole (3, h)`` (zeros at init;
    Gers & Schmidhuber, 2000). ``forget_bias`` is added to the forget block of
    ``b_ih`` at init (1.0 is Jozefowicz et al., 2015's advice; PyTorch uses 0).
    Initialisers as in :func:`rnn_cell`.
    """
    hidden = as_int(name, "hidden size", hidden, minimum=1)

    def extra(key, params):
        del key
        if forget_bias:
            params["b_ih"] = params["b_ih"].at[hidden:2 * hidden].add(forget_bias)
        if peephole:
            params["w_peephole"] = jnp.zeros((3, hidden), dtype)
        return params

    return _make_cell(name, hidden, 4, F.lstm_cell, F.lstm_sequence, kernel_init, recurrent_init,
                      bias_init, dtype, lstm_carry=True, extra_init=extra)


# ---------------------------------------------------------------------------
# Inputs and outputs of the recurrent Modules

_INPUT_KEYS = {"inputs", "lengths", "initial_carry"}


def _parse(name: str, x):
    """``(inputs, lengths, initial_carry, given_as_dict)`` of a recurrent Module's input."""
    if isinstance(x, dict):
        unknown = set(x) - _INPUT_KEYS
        if "inputs" not in x or unknown:
            raise ValueError(f"{name}: expected an array (N, T, F) or a dict with key 'inputs' and "
                             f"optional 'lengths', 'initial_carry'; got keys {sorted(x)}")
        xs, lengths, carry = x["inputs"], x.get("lengths"), x.get("initial_carry")
    elif isinstance(x, tuple):
        raise TypeError(f"{name}: got a tuple as input; only the last recurrent layer may use "
                        "return_carry=True (its output is the pair (y, carry))")
    else:
        xs, lengths, carry = x, None, None
    if len(xs.shape) != 3:
        raise ValueError(f"{name}: expected a batch-major input sequence (N, T, F), got shape {tuple(xs.shape)}")
    return xs, lengths, carry, isinstance(x, dict)


def _dropout(x, rate, key):
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


def _describe(tree) -> str:
    """A carry's structure for an error message: arrays by shape, tuples by their entries."""
    if isinstance(tree, (tuple, list)):
        return f"a {type(tree).__name__} of {len(tree)} (" + ", ".join(_describe(t) for t in tree) + ")"
    if hasattr(tree, "shape") and hasattr(tree, "dtype"):
        return f"an array of shape {tuple(tree.shape)}"
    return f"a {type(tree).__name__}"


def _check_initial_carry(name: str, cell: Cell, params, carry, spec) -> None:
    """A given initial carry has the structure of the cell's own (LSTM: a pair (h, c))."""
    want = jax.eval_shape(cell.initial_carry, params, spec)
    if jax.tree.structure(carry) != jax.tree.structure(want) or not all(
            hasattr(leaf, "shape") for leaf in jax.tree.leaves(carry)):
        pair = "a pair (h, c), " if "lstm" in cell.name else ""
        raise ValueError(f"{name}: expected initial_carry structured like the carry of {cell.name}, "
                         f"{pair}{_describe(want)}; got {_describe(carry)}")


def _one_direction(cell: Cell, params, xs, lengths, carry, reverse, unroll, key, name="rnn"):
    spec = jax.ShapeDtypeStruct(xs.shape[:1] + xs.shape[2:], xs.dtype)
    if carry is None:
        carry = cell.initial_carry(params, spec)
    else:
        _check_initial_carry(name, cell, params, carry, spec)
    if cell.sequence is not None:
        try:
            return cell.sequence(params, carry, xs, lengths=lengths, reverse=reverse, unroll=unroll)
        except ValueError as e:
            raise ValueError(f"{cell.name}: {e}") from None
    return F.scan(cell.apply, params, carry, xs, lengths=lengths, reverse=reverse, unroll=unroll, key=key)


def _recurrent(name: str, layers: Sequence, *, dropout: float, merge: str, return_sequences: bool,
               return_carry: bool, reverse: bool, unroll: int) -> Module:
    """A stack of recurrent layers; each entry a Cell or a (forward, backward) pair of Cells."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{name}: expected dropout in [0, 1), got {dropout!r}")
    if merge not in ("concat", "sum"):
        raise ValueError(f"{name}: expected merge='concat' or 'sum', got {merge!r}")
    unroll = as_int(name, "unroll", unroll, minimum=1)
    for layer in layers:
        for c in (layer if isinstance(layer, tuple) else (layer,)):
            if not isinstance(c, Cell):
                raise TypeError(f"{name}: expected a Cell (e.g. nn.lstm_cell(64)), got {type(c).__name__}")
    nested = len(layers) > 1

    def init(key, x):
        xs, _, _, _ = _parse(name, x)
        spec = jax.ShapeDtypeStruct((xs.shape[0], xs.shape[2]), xs.dtype)
        params = {}
        for i, layer in enumerate(layers):
            k = jax.random.fold_in(key, i) if nested else key
            if isinstance(layer, tuple):
                p = {"forward": layer[0].init(jax.random.fold_in(k, 0), spec),
                     "backward": layer[1].init(jax.random.fold_in(k, 1), spec)}
                fw = layer[0].initial_carry(p["forward"], spec)
                bw = layer[1].initial_carry(p["backward"], spec)
                hid = jax.tree.leaves(fw)[0].shape[-1]
                if merge == "concat":
                    hid += jax.tree.leaves(bw)[0].shape[-1]
            else:
                p = layer.init(k, spec)
                hid = jax.tree.leaves(layer.initial_carry(p, spec))[0].shape[-1]
            params[str(i)] = p
            spec = jax.ShapeDtypeStruct((spec.shape[0], hid), spec.dtype)
        return (params if nested else params["0"]), {}

    def apply(params, state, x, *, key=None, train=False):
        xs, lengths, carry, as_dict = _parse(name, x)
        if dropout and train:
            require_key(name, key, train)
        if carry is not None and nested and not (isinstance(carry, tuple) and len(carry) == len(layers)):
            raise ValueError(f"{name}: expected initial_carry as a tuple of {len(layers)} per-layer carries")
        finals, y_last = [], None
        for i, layer in enumerate(layers):
            p = params[str(i)] if nested else params
            k = (jax.random.fold_in(key, i) if nested else key) if key is not None else None
            c0 = (carry[i] if nested else carry) if carry is not None else None
            if isinstance(layer, tuple):
                c0 = (None, None) if c0 is None else c0
                if not (isinstance(c0, tuple) and len(c0) == 2):
                    raise ValueError(f"{name}: expected initial_carry of a bidirectional layer as a pair "
                                     f"(forward, backward), got {_describe(c0)}")
                cf, yf = _one_direction(layer[0], p["forward"], xs, lengths, c0[0], False, unroll,
                                        None if k is None else jax.random.fold_in(k, 0), name)
                cb, yb = _one_direction(layer[1], p["backward"], xs, lengths, c0[1], True, unroll,
                                        None if k is None else jax.random.fold_in(k, 1), name)
                finals.append((cf, cb))
                if merge == "concat":
                    ys = jnp.concatenate([yf, yb], axis=-1)
                    y_last = jnp.concatenate([F.last_valid(yf, lengths), yb[:, 0]], axis=-1)
                else:
                    ys, y_last = yf + yb, F.last_valid(yf, lengths) + yb[:, 0]
            else:
                cf, ys = _one_direction(layer, p, xs, lengths, c0, reverse, unroll, k, name)
                finals.append(cf)
                y_last = ys[:, 0] if reverse else F.last_valid(ys, lengths)
            if dropout and train and i < len(layers) - 1:
                ys = _dropout(ys, dropout, jax.random.fold_in(k if nested else key, 2))
            xs = ys
        if return_sequences:
            y = {"inputs": xs, "lengths": lengths} if (as_dict and lengths is not None) else xs
        else:
            y = y_last
        if return_carry:
            y = (y, tuple(finals) if nested else finals[0])
        return y, state

    return Module(init, apply, name)


# ---------------------------------------------------------------------------
# Public Modules

def rnn(cell: Cell, *, return_sequences: bool = True, return_carry: bool = False, reverse: bool = False,
        unroll: int = 1, name: str | None = None) -> Module:
    """Run ``cell`` over a batch-major sequence with ``lax.scan`` (see the module docstring
    for the input dict, lengths, initial carry and outputs).

    Args:
      cell: a :class:`Cell`, e.g. ``lstm_cell(128)``.
      return_sequences: output every step ``(N, T, H)``, else the last valid one ``(N, H)``.
      return_carry: also return the final carry, as ``(y, carry)``.
      reverse: run from the last valid step back to the first.
      unroll: ``lax.scan`` unroll factor.
    """
    return _recurrent(name or f"rnn({cell.name})", [cell], dropout=0.0, merge="concat",
                      return_sequences=return_sequences, return_carry=return_carry, reverse=reverse,
                      unroll=unroll)


def bidirectional(forward: Cell, backward: Cell | None = None, *, merge: str = "concat",
                  return_sequences: bool = True, return_carry: bool = False, unroll: int = 1,
                  name: str | None = None) -> Module:
    """A forward and a backward Cell over the same sequence (Schuster & Paliwal, 1997).

    ``y_t = [f_t ; b_t]`` (``merge="concat"``, PyTorch's layout) or ``f_t + b_t``
    (``"sum"``). The backward cell defaults to ``forward`` (same settings, its own
    params). With lengths, the backward direction starts at each sequence's last valid
    step. Many-to-one output: ``[f_{L-1} ; b_0]`` (PyTorch's ``h_n``). Params
    ``{"forward", "backward"}``; carry ``(forward_carry, backward_carry)``.
    """
    backward = forward if backward is None else backward
    return _recurrent(name or f"bidirectional({forward.name})", [(forward, backward)], dropout=0.0,
                      merge=merge, return_sequences=return_sequences, return_carry=return_carry,
                      reverse=False, unroll=unroll)


def _layers(make: Callable[[], Cell], num_layers: int, bidirectional: bool, name: str) -> list:
    num_layers = as_int(name, "num_layers", num_layers, minimum=1)
    return [(make(), make()) if bidirectional else make() for _ in range(num_layers)]


def lstm(hidden: int, *, num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
         peephole: bool = False, forget_bias: float = 0.0, return_sequences: bool = True,
         return_carry: bool = False, unroll: int = 1, kernel_init=None, recurrent_init=None,
         bias_init=None, dtype=jnp.float32, name: str = "lstm") -> Module:
    """A (deep, bidirectional) LSTM layer shaped like PyTorch's ``nn.LSTM(batch_first=True)``.

    ``dropout`` is applied to the outputs of every layer but the last, in training
    only (like PyTorch). Params: the cell's for one layer, ``{"forward", "backward"}``
    if bidirectional, ``{"0", "1", ...}`` for several layers. Cell options as in
    :func:`lstm_cell`; outputs as in :func:`rnn`.
    """
    make = functools.partial(lstm_cell, hidden, peephole=peephole, forget_bias=forget_bias,
                             kernel_init=kernel_init, recurrent_init=recurrent_init, bias_init=bias_init,
                             dtype=dtype)
    return _recurrent(name, _layers(make, num_layers, bidirectional, name), dropout=dropout,
                      merge="concat", return_sequences=return_sequences, return_carry=return_carry,
                      reverse=False, unroll=unroll)


def gru(hidden: int, *, num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
        reset_after: bool = True, return_sequences: bool = True, return_carry: bool = False,
        unroll: int = 1, kernel_init=None, recurrent_init=None, bias_init=None, dtype=jnp.float32,
        name: str = "gru") -> Module:
    """A (deep, bidirectional) GRU layer shaped like PyTorch's ``nn.GRU(batch_first=True)``;
    see :func:`lstm` for layers, dropout and params."""
    make = functools.partial(gru_cell, hidden, reset_after=reset_after, kernel_init=kernel_init,
                             recurrent_init=recurrent_init, bias_init=bias_init, dtype=dtype)
    return _recurrent(name, _layers(make, num_layers, bidirectional, name), dropout=dropout,
                      merge="concat", return_sequences=return_sequences, return_carry=return_carry,
                      reverse=False, unroll=unroll)


def simple_rnn(hidden: int, *, activation: str = "tanh", num_layers: int = 1, bidirectional: bool = False,
               dropout: float = 0.0, return_sequences: bool = True, return_carry: bool = False,
               unroll: int = 1, kernel_init=None, recurrent_init=None, bias_init=None, dtype=jnp.float32,
               name: str = "simple_rnn") -> Module:
    """A (deep, bidirectional) Elman RNN shaped like PyTorch's ``nn.RNN(batch_first=True)``;
    see :func:`lstm` for layers, dropout and params."""
    make = functools.partial(rnn_cell, hidden, activation=activation, kernel_init=kernel_init,
                             recurrent_init=recurrent_init, bias_init=bias_init, dtype=dtype)
    return _recurrent(name, _layers(make, num_layers, bidirectional, name), dropout=dropout,
                      merge="concat", return_sequences=return_sequences, return_carry=return_carry,
                      reverse=False, unroll=unroll)
