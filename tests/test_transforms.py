"""Every kernel family under every JAX transform, against a plain-JAX reference, in float64.

The contract (DESIGN.md section 1): kernels and Modules work under ``jit``, ``vmap``,
``grad``, grad-of-grad, ``jvp``, ``jacfwd``, ``linearize``, ``hessian`` and
``jax.checkpoint`` by default, fused kernels with hand-written backward passes
included. Each cell of the matrix (kernel family x transform) applies one transform
to the fnnet kernel and to a textbook reference written with jnp ops in
``tests/_references.py`` (no fnnet code), and compares the two to ``rtol=1e-9``.

A kernel is a function ``f(params, x)`` of a dict of float arrays and one float array
(integer inputs such as labels and lengths are fixed); its output may be a pytree.
The transforms:

- ``jit``, ``vmap`` (over a leading batch of two inputs), ``jvp``, ``jacfwd`` (in
  ``params`` and ``x``) and ``linearize`` act on ``f`` itself;
- ``grad``, ``grad_of_grad``, ``hessian`` and ``checkpoint`` act on the scalar
  ``L = sum(c * y + y^2 / 2)`` over the output leaves ``y`` (``c`` fixed random), which
  is not linear in ``y``, so second derivatives pass through the kernel's own second
  derivative: ``grad_of_grad`` is the gradient of ``<grad L, v>`` (reverse over
  reverse), ``hessian`` is taken in a small subset (a kernel, ``w_hh``, or ``x``), and
  ``checkpoint`` is ``grad`` of ``L(jax.checkpoint(f))``.

Each transformed function is compiled with ``jax.jit`` (one compilation per cell).

Dropout cannot be reproduced without copying how the kernel draws its mask, so its
reference is ``x * m / (1 - rate)`` with the mask ``m = dropout(ones, rate, key) != 0``
read from the kernel's own output for the same key: the row checks that dropout is a
fixed linear map under every transform, not which entries it drops (the kept fraction
is tested in ``tests/functional/test_dropout.py``).
"""
import dataclasses
import functools
import os
import sys
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from fnnet import functional as F
from fnnet import losses
from fnnet import nn

sys.path.insert(0, os.path.dirname(__file__))
import _references as R  # noqa: E402

RTOL, ATOL = 1e-9, 1e-11


@dataclasses.dataclass
class Case:
    """One kernel family: ``fn`` (fnnet) and ``ref`` (plain JAX), both ``(params, x) ->
    pytree``; ``make_x(rng)`` draws an input; ``hessian_in`` is ``"x"`` or a tuple of
    params keys."""
    fn: Callable
    ref: Callable
    params: dict
    make_x: Callable
    hessian_in: object = "x"


def _normal(rng, *shape):
    return jnp.asarray(rng.standard_normal(shape))


def _impl(impl):
    """The ``impl=`` keyword: none for the default lowering."""
    return {} if impl == "default" else {"impl": impl}


# ---------------------------------------------------------------------------
# Kernel families

def _dense(rng):
    p = {"kernel": _normal(rng, 3, 4), "bias": _normal(rng, 4)}
    return Case(lambda p, x: F.dense(x, p["kernel"], p["bias"]),
                lambda p, x: R.dense(x, p["kernel"], p["bias"]),
                p, lambda rng: _normal(rng, 2, 3), ("kernel",))


# name: (kernel, x shape, kernel shape, stride, padding, dilation, groups)
CONVS = {
    "conv1d": (F.conv1d, (2, 5, 2), (3, 2, 4), 2, "SAME", 2, 1),
    "conv2d": (F.conv2d, (2, 5, 5, 2), (3, 3, 2, 4), 2, 1, 1, 1),
    "conv3d": (F.conv3d, (2, 4, 4, 4, 2), (2, 2, 2, 2, 3), 2, "SAME", 1, 1),
    # stride 1, few channels: the column-blocked matmul lowering on CPU today
    "conv2d_stride1": (F.conv2d, (2, 4, 7, 2), (2, 3, 2, 4), 1, "VALID", 1, 1),
    "conv2d_groups2": (F.conv2d, (2, 5, 5, 4), (3, 3, 2, 4), 2, "SAME", 1, 2),
    "depthwise_conv2d": (F.depthwise_conv, (2, 5, 5, 2), (3, 3, 1, 4), 2, "SAME", 1, 2),
}


def _conv(name, impl, rng):
    kernel, x_shape, w_shape, stride, padding, dilation, groups = CONVS[name]
    nd = len(x_shape) - 2
    strides, dilations = (stride,) * nd, (dilation,) * nd
    if padding == "SAME":
        pads = R.same_pads(x_shape[1:-1], w_shape[:nd], strides, dilations)
    else:
        width = 0 if padding == "VALID" else padding
        pads = ((width, width),) * nd
    kw = dict(stride=stride, padding=padding, dilation=dilation, **_impl(impl))
    if kernel is not F.depthwise_conv:
        kw["groups"] = groups
    p = {"kernel": _normal(rng, *w_shape), "bias": _normal(rng, w_shape[-1])}
    return Case(lambda p, x: kernel(x, p["kernel"], p["bias"], **kw),
                lambda p, x: R.conv(x, p["kernel"], p["bias"], stride=strides, pads=pads,
                                    dilation=dilations, groups=groups),
                p, lambda rng: _normal(rng, *x_shape), ("kernel",))


def _conv_transpose(impl, rng):
    # A stride-2 transposed conv of padding 1: (2, 3, 3, 2) -> (2, 5, 5, 3).
    p = {"kernel": _normal(rng, 3, 3, 2, 3), "bias": _normal(rng, 3)}
    return Case(lambda p, x: F.conv_transpose(x, p["kernel"], p["bias"], stride=2, padding=1,
                                              **_impl(impl)),
                lambda p, x: R.conv_transpose(x, p["kernel"], p["bias"], stride=(2, 2),
                                              pads=((1, 1), (1, 1)), dilation=(1, 1)),
                p, lambda rng: _normal(rng, 2, 3, 3, 2), ("kernel",))


# name: (window, stride, padding); random normal inputs have no ties for max pool
POOLS = {"nonoverlap": (2, None, "VALID"), "overlap": (3, 2, 1)}


def _pool(kind, overlap, impl, rng):
    window, stride, padding = POOLS[overlap]
    kernel = F.max_pool if kind == "max" else F.avg_pool
    pads = ((padding, padding),) * 2 if isinstance(padding, int) else ((0, 0),) * 2
    return Case(lambda p, x: kernel(x, window, stride, padding, **_impl(impl)),
                lambda p, x: R.pool(x, (window,) * 2, (stride or window,) * 2, pads, kind),
                {}, lambda rng: _normal(rng, 2, 5, 5, 2))


def _norm_params(rng, c, running=False):
    p = {"scale": 1 + 0.3 * _normal(rng, c), "bias": _normal(rng, c)}
    if running:
        p.update(mean=_normal(rng, c), var=jnp.asarray(0.5 + rng.uniform(size=c)))
    return p


def _batch_norm_train(rng):
    return Case(lambda p, x: F.batch_norm_train(x, **p), lambda p, x: R.batch_norm_train(x, **p),
                _norm_params(rng, 2, running=True), lambda rng: _normal(rng, 2, 3, 3, 2))


def _batch_norm_eval(rng):
    return Case(lambda p, x: F.batch_norm_eval(x, **p), lambda p, x: R.batch_norm_eval(x, **p),
                _norm_params(rng, 3, running=True), lambda rng: _normal(rng, 4, 3), ("var",))


def _layer_norm(rng):
    return Case(lambda p, x: F.layer_norm(x, p["scale"], p["bias"]),
                lambda p, x: R.layer_norm(x, p["scale"], p["bias"]),
                _norm_params(rng, 4), lambda rng: _normal(rng, 2, 3, 4))


def _group_norm(rng):
    return Case(lambda p, x: F.group_norm(x, p["scale"], p["bias"], num_groups=2),
                lambda p, x: R.group_norm(x, p["scale"], p["bias"], num_groups=2),
                _norm_params(rng, 4), lambda rng: _normal(rng, 2, 3, 3, 4))


def _dropout(rng):
    rate, key_data = 0.5, jax.random.key_data(jax.random.key(7))
    # A fresh key object per call: the same key, and no key-reuse error across traces.
    drop = lambda x: F.dropout(x, rate, jax.random.wrap_key_data(key_data))
    mask = drop(jnp.ones((2, 3, 4))) != 0
    assert 0 < int(mask.sum()) < mask.size
    return Case(lambda p, x: drop(x), lambda p, x: jnp.where(mask, x / (1 - rate), 0.0),
                {}, lambda rng: _normal(rng, 2, 3, 4))



def _attention(rng):
    # q is x; a padding mask (lengths 4 and 3) and the causal mask leave every row some key
    p = {"k": _normal(rng, 2, 4, 2, 3), "v": _normal(rng, 2, 4, 2, 2), "bias": _normal(rng, 1, 2, 3, 4)}
    mask = F.padding_mask(jnp.asarray([4, 3]), 4)
    allowed = mask & (jnp.arange(4)[None, None, None, :] <= jnp.arange(3)[None, None, :, None])
    return Case(lambda p, x: F.dot_product_attention(x, p["k"], p["v"], mask=mask, bias=p["bias"],
                                                     is_causal=True),
                lambda p, x: R.dot_product_attention(x, p["k"], p["v"], allowed, p["bias"], 3 ** -0.5),
                p, lambda rng: _normal(rng, 2, 3, 2, 3), ("k",))


def _additive_attention(rng):
    # x is the decoder state; the encoder outputs serve as keys and values
    p = {"keys": _normal(rng, 2, 4, 3), "w_query": _normal(rng, 2, 5), "w_key": _normal(rng, 3, 5),
         "v": _normal(rng, 5)}
    allowed = jnp.arange(4)[None, :] < jnp.asarray([4, 2])[:, None]
    return Case(lambda p, x: F.additive_attention(x, p["keys"], p["keys"], p["w_query"], p["w_key"], p["v"],
                                                  mask=allowed)[0],
                lambda p, x: R.additive_attention(x, p["keys"], p["keys"], p["w_query"], p["w_key"], p["v"],
                                                  allowed),
                p, lambda rng: _normal(rng, 2, 2), ("v",))

N, T, FEATURES, HIDDEN = 2, 3, 3, 2
LENGTHS = (3, 2)
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def _recurrent(cell, masked, rng):
    g = GATES[cell]
    p = {"w_ih": 0.7 * _normal(rng, FEATURES, g * HIDDEN), "w_hh": 0.7 * _normal(rng, HIDDEN, g * HIDDEN),
         "b_ih": _normal(rng, g * HIDDEN), "b_hh": _normal(rng, g * HIDDEN), "h0": _normal(rng, N, HIDDEN)}
    if cell == "lstm":
        p["c0"] = _normal(rng, N, HIDDEN)
    lengths = jnp.asarray(LENGTHS) if masked else None
    kernel = {"rnn": F.rnn_sequence, "gru": F.gru_sequence, "lstm": F.lstm_sequence}[cell]
    ref = {"rnn": R.rnn_sequence, "gru": R.gru_sequence, "lstm": R.lstm_sequence}[cell]

    def split(p):
        weights = {k: p[k] for k in ("w_ih", "w_hh", "b_ih", "b_hh")}
        return weights, ((p["h0"], p["c0"]) if cell == "lstm" else p["h0"])

    return Case(lambda p, x: kernel(*split(p), x, lengths=lengths),
                lambda p, x: ref(*split(p), x, lengths), p,
                lambda rng: _normal(rng, N, T, FEATURES), ("w_hh",))


def _rnn_recurrence(rng):
    p = {"w_hh": 0.7 * _normal(rng, HIDDEN, HIDDEN), "h0": _normal(rng, N, HIDDEN)}
    lengths = jnp.asarray(LENGTHS)
    return Case(lambda p, x: F.rnn_recurrence(p["w_hh"], p["h0"], x, lengths=lengths),
                lambda p, x: R.rnn_recurrence(p["w_hh"], p["h0"], x, lengths), p,
                lambda rng: _normal(rng, N, T, HIDDEN), ("w_hh",))


def _softmax_cross_entropy(rng):
    labels = jnp.asarray([0, 2, 1, 2])
    return Case(lambda p, x: losses.softmax_cross_entropy_with_integer_labels(x, labels),
                lambda p, x: R.softmax_cross_entropy_with_integer_labels(x, labels),
                {}, lambda rng: _normal(rng, 4, 3))


def _binary_cross_entropy(rng):
    labels = jnp.asarray(rng.uniform(size=(2, 3)))
    return Case(lambda p, x: losses.binary_cross_entropy(x, labels),
                lambda p, x: R.binary_cross_entropy(x, labels),
                {}, lambda rng: jnp.asarray(rng.uniform(0.1, 0.9, (2, 3))))


def _mse(rng):
    target = _normal(rng, 2, 3)
    return Case(lambda p, x: losses.mse(x, target), lambda p, x: R.mse(x, target),
                {}, lambda rng: _normal(rng, 2, 3))


def _penalties(rng):
    # x is the penalised kernel; the bias is left out by the default mask.
    def fn(p, x):
        tree = {"kernel": x, "bias": p["bias"]}
        return losses.l1_penalty(tree, coefficient=0.3) + losses.l2_penalty(tree, coefficient=0.7)

    return Case(fn, lambda p, x: 0.3 * jnp.sum(jnp.abs(x)) + 0.35 * jnp.sum(x * x),
                {"bias": _normal(rng, 3)}, lambda rng: _normal(rng, 2, 3))


FAMILIES = {"dense": _dense}
for _name in CONVS:
    for _impl_name in ("matmul",) if _name == "conv2d_stride1" else ("default", "xla", "matmul"):
        FAMILIES[f"{_name}-{_impl_name}"] = functools.partial(_conv, _name, _impl_name)
for _impl_name in ("default", "xla", "matmul"):
    FAMILIES[f"conv_transpose2d-{_impl_name}"] = functools.partial(_conv_transpose, _impl_name)
for _kind in ("max", "avg"):
    for _overlap in POOLS:
        for _impl_name in ("xla", "matmul"):  # the default picks one of the two by window
            FAMILIES[f"{_kind}_pool_{_overlap}-{_impl_name}"] = functools.partial(
                _pool, _kind, _overlap, _impl_name)
FAMILIES.update({
    "batch_norm_train": _batch_norm_train, "batch_norm_eval": _batch_norm_eval,
    "layer_norm": _layer_norm, "group_norm": _group_norm, "dropout": _dropout,
    "dot_product_attention": _attention, "additive_attention": _additive_attention,
})
for _cell in GATES:
    FAMILIES[f"{_cell}_sequence"] = functools.partial(_recurrent, _cell, False)
    FAMILIES[f"{_cell}_sequence_lengths"] = functools.partial(_recurrent, _cell, True)
FAMILIES.update({
    "rnn_recurrence_lengths": _rnn_recurrence,
    "softmax_cross_entropy_with_integer_labels": _softmax_cross_entropy,
    "binary_cross_entropy": _binary_cross_entropy, "mse": _mse, "l1_l2_penalty": _penalties,
})


# ---------------------------------------------------------------------------
# Transforms: each maps (f, params, x, data) to a pytree of arrays

@dataclasses.dataclass
class Data:
    """The fixed random data of one cell: a second input ``x2`` (for vmap), output
    cotangents ``c``, and tangents ``(tp, tx)`` of params and input."""
    x2: jax.Array
    c: object
    tp: dict
    tx: jax.Array


def _scalar(out, c):
    """``L = sum(c * y + y^2 / 2)`` over the output leaves."""
    return sum(jnp.sum(ci * y + 0.5 * y * y) for ci, y in zip(jax.tree.leaves(c), jax.tree.leaves(out)))


def _loss(f, d):
    return lambda p, x: _scalar(f(p, x), d.c)


def _grad(f, p, x, d):
    return jax.grad(_loss(f, d), argnums=(0, 1))(p, x)


def _grad_of_grad(f, p, x, d):
    def inner(p, x):
        gp, gx = jax.grad(_loss(f, d), argnums=(0, 1))(p, x)
        return (sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(gp), jax.tree.leaves(d.tp)))
                + jnp.vdot(gx, d.tx))
    return jax.grad(inner, argnums=(0, 1))(p, x)


def _linearize(f, p, x, d):
    y, lin = jax.linearize(f, p, x)
    return y, lin(d.tp, d.tx)


def _jacfwd(f, p, x, d):
    """The Jacobian of the flattened output in the flattened ``(params, x)``: one matrix."""
    flat, unravel = ravel_pytree((p, x))
    return jax.jacfwd(lambda v: ravel_pytree(f(*unravel(v)))[0])(flat)


def _hessian(f, p, x, d, keys):
    """The Hessian of ``L`` in ``x`` or in the params ``keys``, flattened: one matrix."""
    loss = _loss(f, d)
    if keys == "x":
        return jax.hessian(lambda v: loss(p, v.reshape(x.shape)))(x.reshape(-1))
    flat, unravel = ravel_pytree({k: p[k] for k in keys})
    return jax.hessian(lambda v: loss({**p, **unravel(v)}, x))(flat)


def _checkpoint(f, p, x, d):
    return jax.grad(_loss(jax.checkpoint(f), d), argnums=(0, 1))(p, x)


TRANSFORMS = {
    "jit": lambda f, p, x, d: f(p, x),
    "vmap": lambda f, p, x, d: jax.vmap(f, in_axes=(None, 0))(p, jnp.stack([x, d.x2])),
    "grad": _grad,
    "grad_of_grad": _grad_of_grad,
    "jvp": lambda f, p, x, d: jax.jvp(f, (p, x), (d.tp, d.tx)),
    "jacfwd": _jacfwd,
    "linearize": _linearize,
    "hessian": None,  # needs the case's subset: see _apply
    "checkpoint": _checkpoint,
}


# The references are compiled with XLA's backend optimisations off (about 1.5x faster
# to compile; the oracle's speed does not matter), the kernels with the defaults.
_REFERENCE_OPTIONS = {"xla_backend_optimization_level": 0}


def _apply(name, case, f, p, x, d, options=None):
    if name == "hessian":
        transform = functools.partial(_hessian, keys=case.hessian_in)
    else:
        transform = TRANSFORMS[name]
    return jax.jit(lambda p, x: transform(f, p, x, d), compiler_options=options)(p, x)


def _assert_trees_close(actual, expected):
    a_leaves, a_def = jax.tree.flatten(actual)
    e_leaves, e_def = jax.tree.flatten(expected)
    assert a_def == e_def, f"structure {a_def} != {e_def}"
    for a, e in zip(a_leaves, e_leaves):
        assert a.dtype == e.dtype == jnp.float64, (a.dtype, e.dtype)
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=RTOL, atol=ATOL)


def _data(ref, p, x, x2, rng):
    out = jax.eval_shape(ref, p, x)
    return Data(x2=x2,
                c=jax.tree.map(lambda s: jnp.asarray(rng.standard_normal(s.shape)), out),
                tp=jax.tree.map(lambda v: _normal(rng, *v.shape), p),
                tx=_normal(rng, *x.shape))


_EXPECTED = {}


def _slow(family: str) -> bool:
    """Rows left to ``make reproduce`` to keep the fast suite's compile time down: a
    conv's ``"default"`` row is, on a given backend, one of its explicit ``"xla"`` and
    ``"matmul"`` rows (kept: conv2d's, which checks the dispatch), and the unmasked
    recurrent rows are the masked ones with every length full."""
    return ((family.endswith("-default") and not family.startswith("conv2d-"))
            or family in ("rnn_sequence", "gru_sequence", "lstm_sequence"))


@pytest.mark.parametrize("family, transform", [
    pytest.param(fam, tr, id=f"{fam}-{tr}", marks=pytest.mark.slow if _slow(fam) else ())
    for fam in FAMILIES for tr in TRANSFORMS])
def test_kernel_transform(family, transform, x64):
    rng = np.random.default_rng(0)
    case = FAMILIES[family](rng)
    x = case.make_x(rng)
    d = _data(case.ref, case.params, x, case.make_x(rng), rng)
    # The lowerings of one kernel ("conv2d-xla", "conv2d-matmul", ...) draw the same
    # data and share the reference's result.
    key = (family.split("-")[0], transform)
    if key not in _EXPECTED:
        _EXPECTED[key] = _apply(transform, case, case.ref, case.params, x, d, _REFERENCE_OPTIONS)
    expected = _EXPECTED[key]
    actual = _apply(transform, case, case.fn, case.params, x, d)
    _assert_trees_close(actual, expected)


# ---------------------------------------------------------------------------
# Modules: grad, jvp and Hessian-vector products against the same network by hand

def _module_cnn(rng):
    model = nn.serial(nn.conv(4, 3, stride=2, padding=1), nn.relu, nn.flatten, nn.dense(3))
    x = _normal(rng, 2, 5, 5, 2)
    params, state = jax.eval_shape(model.init, jax.random.key(0), x)

    def ref(p, x):
        h = R.conv(x, p["0"]["kernel"], p["0"]["bias"], stride=(2, 2), pads=((1, 1), (1, 1)),
                   dilation=(1, 1))
        h = jnp.maximum(h, 0.0)
        return R.dense(h.reshape(h.shape[0], -1), p["3"]["kernel"], p["3"]["bias"])

    return model, params, state, x, False, ref


def _module_batch_norm(rng):
    model = nn.batch_norm()
    x = _normal(rng, 2, 3, 3, 2)
    params, state = jax.eval_shape(model.init, jax.random.key(0), x)

    def ref(p, x, s):
        y, mean, var = R.batch_norm_train(x, p["scale"], p["bias"], s["mean"], s["var"])
        return y, {"mean": mean, "var": var}

    return model, params, state, x, True, ref


def _module_lstm(rng):
    model = nn.lstm(HIDDEN)
    x = _normal(rng, N, T, FEATURES)
    params, state = jax.eval_shape(model.init, jax.random.key(0), x)
    zeros = jnp.zeros((N, HIDDEN))
    return model, params, state, x, False, lambda p, x: R.lstm_sequence(p, (zeros, zeros), x)[1]


MODULES = {"serial_conv_relu_flatten_dense": _module_cnn, "batch_norm_train": _module_batch_norm,
           "lstm": _module_lstm}


def _hvp(f, p, x, d):
    """``(H (tp, tx))``: forward over reverse."""
    return jax.jvp(lambda p, x: jax.grad(_loss(f, d), argnums=(0, 1))(p, x), (p, x), (d.tp, d.tx))[1]


MODULE_TRANSFORMS = {"grad": _grad, "jvp": TRANSFORMS["jvp"], "hvp": _hvp}


@pytest.mark.parametrize("module, transform", [
    pytest.param(m, tr, id=f"{m}-{tr}") for m in MODULES for tr in MODULE_TRANSFORMS])
def test_module_transform(module, transform, x64):
    rng = np.random.default_rng(1)
    model, params, state, x, train, ref = MODULES[module](rng)
    # Random float64 params (nonzero biases too) of the initialised shapes; batch norm's
    # running statistics at their initial values (zeros, ones).
    params = jax.tree.map(lambda v: _normal(rng, *v.shape), params)
    state = jax.tree_util.tree_map_with_path(
        lambda path, v: jnp.full(v.shape, 1.0 if path[-1].key == "var" else 0.0), state)
    fn = lambda p, x: model.apply(p, state, x, train=train)
    reference = (lambda p, x: ref(p, x, state)) if train else ref
    d = _data(reference, params, x, x, rng)
    transform = MODULE_TRANSFORMS[transform]
    expected = jax.jit(lambda p, x: transform(reference, p, x, d),
                       compiler_options=_REFERENCE_OPTIONS)(params, x)
    if train:
        actual = jax.jit(lambda p, x: transform(fn, p, x, d))(params, x)
    else:
        actual = jax.jit(lambda p, x: transform(lambda p, x: fn(p, x)[0], p, x, d))(params, x)
    _assert_trees_close(actual, expected)
