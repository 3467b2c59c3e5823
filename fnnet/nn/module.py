"""The Module protocol and the combinators that build bigger Modules from smaller ones.

A Module is a named pair of pure functions::

    init(key, x)                                       -> (params, state)
    apply(params, state, x, *, key=None, train=False)  -> (y, state)

``x`` in ``init`` is an example input (an array or a ``jax.ShapeDtypeStruct``, batch
axis included); shapes flow through ``jax.eval_shape``, so no full-size forward pass
runs at initialisation. ``params`` and ``state`` are nested dicts of arrays.

``Module(init, apply)`` keeps the ``init`` it is given as ``module.init.raw`` and
stores a compiled front, :class:`CompiledInit`: ``module.init(key, x)`` traces the
whole initialisation (every child's init inlined) once, with the example input's shape
and dtype static, and runs it as one XLA program of a few kernels (all random draws in
one Threefry hash, :mod:`fnnet.nn._batched_random`). Eagerly every random draw would
compile on its own, per shape (2-5 s for LeNet-5 or ResNet-18); the cost now is one
small compile per new input shape and dtype (and key type), cached on the Module. The
parameters are bitwise those of the eager ``module.init.eager(key, x)`` (op by op, each
draw its own compiled kernel), as ``fnnet.init`` keeps each draw behind an optimisation
barrier.

Containers give child ``i`` the key ``fold_in(key, i)`` and call it through
:func:`call`, which also records layer outputs for :func:`summary`.

Imports: jax only.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from fnnet.nn._batched_random import compile_batched

Params = dict
State = dict

__all__ = ["Module", "CompiledInit", "call", "spec_of", "child_key", "require_key", "stateless",
           "serial", "parallel", "residual", "count_params", "summary"]


@dataclasses.dataclass(frozen=True)
class Module:
    """A layer or a model: ``init(key, x) -> (params, state)`` and
    ``apply(params, state, x, *, key=None, train=False) -> (y, state)``.

    A Module holds no arrays; it is hashable, so it may be a static argument of
    ``jax.jit``. ``name`` appears in error messages and in :func:`summary`.
    """
    init: Callable[..., tuple[Params, State]]
    apply: Callable[..., tuple[Any, State]]
    name: str = "module"

    def __post_init__(self):
        if not isinstance(self.init, CompiledInit):
            object.__setattr__(self, "init", CompiledInit(self.init))

    def __iter__(self):  # ``init, apply = module``, as in stax
        return iter((self.init, self.apply))


# The init program runs once: LLVM's level-1 optimisation compiles it faster than the
# default and rounds as the eagerly compiled draws do (tests compare bitwise); level 0
# contracts differently inside erf_inv, and runs the hash 5x slower.
_INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}

# True while an init is being traced or run eagerly as a whole: children's inits then
# run inline (their ops join the caller's program) instead of compiling on their own.
_INLINE: contextvars.ContextVar = contextvars.ContextVar("fnnet_init_inline", default=False)

# During one whole init: the output spec of each container whose init has run, keyed by
# (its apply, input spec), so that the parent's shape inference does not trace again the
# apply of a subtree whose output its own init has just inferred (for ResNet-18, 5
# levels of containers traced every conv's apply 5 times). Keyed by the apply, so a
# Module that reuses an init with another apply is traced as before.
_OUT_SPECS: contextvars.ContextVar = contextvars.ContextVar("fnnet_out_specs", default=None)


@contextlib.contextmanager
def _inline():
    token = _INLINE.set(True)
    specs = _OUT_SPECS.get()
    token_specs = _OUT_SPECS.set({} if specs is None else specs)
    try:
        yield
    finally:
        _OUT_SPECS.reset(token_specs)
        _INLINE.reset(token)


class CompiledInit:
    """``init(key, x) -> (params, state)`` compiled as one program per input spec.

    The first call for a shape and dtype (and key type) traces ``raw`` (children
    inline), evaluates the trace with its Threefry hashes and the transforms after them
    batched (the ``fold_in`` chains and all the draws in one hash, each elementwise step
    once over all the draws, constants and parameters cut out on the host:
    :func:`fnnet.nn._batched_random.compile_batched`; the same bits) and compiles it at
    LLVM optimisation level 1; later calls reuse the program. Under ``jax.vmap``,
    ``jax.jit`` and ``jax.eval_shape`` it is ``jax.jit(raw, static spec)``, a
    sub-program of the caller's, compiled with the caller's options. ``raw`` is the
    function the Module was built with;
    ``eager(key, x)`` runs it with every child inline and no compile of its own, op by op
    outside a trace, giving the same arrays bit for bit; it also serves an example input
    that is not one array (a recurrent layer's dict with lengths). Equal and hashed as
    ``raw``.
    """

    def __init__(self, raw: Callable[..., tuple[Params, State]]):
        if not callable(raw):
            raise TypeError(f"Module: expected init to be a function init(key, x), got {type(raw).__name__}")
        self.raw = raw
        functools.update_wrapper(self, raw)
        self._programs: dict = {}  # (spec, key type) -> compiled program
        self._nested = jax.jit(self._traced, static_argnums=1)  # inside a caller's trace

    def _traced(self, key, spec):
        with _inline():
            return self.raw(key, spec)

    def _program(self, key, spec):
        signature = (spec, jax.typeof(key))
        program = self._programs.get(signature)
        if program is None:
            program = compile_batched(lambda k: self._traced(k, spec), key,
                                      compiler_options=_INIT_COMPILER_OPTIONS)
            self._programs[signature] = program
        return program

    def __call__(self, key, x):
        if _INLINE.get():
            return self.raw(key, x)
        if not (hasattr(x, "shape") and hasattr(x, "dtype")) or jax.config.jax_disable_jit:
            # A structured input (e.g. a dict with lengths), or jit disabled: op by op.
            return self.eager(key, x)
        spec = spec_of(x)
        if isinstance(key, jax.core.Tracer) or not hasattr(key, "dtype"):
            # Under a caller's jit, vmap or eval_shape the program joins the caller's,
            # which alone may set compiler options.
            return self._nested(key, spec)
        return self._program(key, spec)(key)

    def eager(self, key, x):
        """``raw(key, x)`` with every child's init inline: outside a trace, op by op."""
        with _inline():
            return self.raw(key, x)

    def __eq__(self, other):
        return isinstance(other, CompiledInit) and self.raw == other.raw

    def __hash__(self):
        return hash(self.raw)

    def __repr__(self):
        return f"CompiledInit({self.raw!r})"


def spec_of(x) -> jax.ShapeDtypeStruct:
    """The shape and dtype of ``x`` (an array, a tracer or a ``ShapeDtypeStruct``)."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"expected an array or jax.ShapeDtypeStruct as example input, got {type(x).__name__}")
    return jax.ShapeDtypeStruct(tuple(x.shape), x.dtype)


def child_key(key, i: int):
    """The key of child ``i``: ``fold_in(key, i)``, or None when ``key`` is None."""
    return None if key is None else jax.random.fold_in(key, i)


def require_key(name: str, key, train: bool) -> None:
    """Raise if a layer that draws random numbers in training got no key."""
    if train and key is None:
        raise ValueError(f"{name}: train=True needs a random key; call apply(..., key=jax.random.key(seed), train=True)")


# ---------------------------------------------------------------------------
# Calling children, and recording what they return (for summary)

_RECORDER: contextvars.ContextVar = contextvars.ContextVar("fnnet_recorder", default=None)
_PATH: contextvars.ContextVar = contextvars.ContextVar("fnnet_path", default=())


def call(module: Module, name: str, params: Params, state: State, x, *, key=None, train=False):
    """Apply a child ``module`` that lives under ``name`` in its parent's params."""
    path = _PATH.get() + (name,)
    token = _PATH.set(path)
    try:
        y, new_state = module.apply(params, state, x, key=key, train=train)
    finally:
        _PATH.reset(token)
    records = _RECORDER.get()
    if records is not None:
        records.append((path, module.name, jax.tree.map(lambda a: tuple(a.shape), y), count_params(params)))
    return y, new_state


@contextlib.contextmanager
def _recording():
    records: list = []
    token = _RECORDER.set(records)
    try:
        yield records
    finally:
        _RECORDER.reset(token)


def _infer(module: Module, params, state, spec):
    """Output spec of ``module`` in evaluation mode, without running it."""
    specs = _OUT_SPECS.get()
    known = None if specs is None else specs.get((module.apply, spec))
    if known is not None:
        return known
    return jax.eval_shape(lambda p, s, x: module.apply(p, s, x)[0], params, state, spec)


def _record(apply: Callable, spec, out) -> None:
    """Remember that the container ``apply`` maps ``spec`` to ``out`` (in evaluation
    mode), as its init has just inferred."""
    specs = _OUT_SPECS.get()
    if specs is not None:
        specs[(apply, spec)] = out


# ---------------------------------------------------------------------------
# Leaves without parameters

def stateless(fn: Callable, name: str) -> Module:
    """A Module with no params and no state: ``y = fn(x)``."""
    def init(key, x):
        del key
        spec_of(x)
        return {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params, key, train
        return fn(x), state

    return Module(init, apply, name)


# ---------------------------------------------------------------------------
# Combinators

def serial(*modules: Module, name: str = "serial") -> Module:
    """Feed-forward chain ``y = m_n(... m_1(m_0(x)))``; params keyed ``"0"``, ``"1"``, ..."""
    _check_modules("serial", modules)

    def init(key, x):
        spec = first = spec_of(x)
        params, state = {}, {}
        for i, m in enumerate(modules):
            k = str(i)
            params[k], state[k] = m.init(jax.random.fold_in(key, i), spec)
            spec = _infer(m, params[k], state[k], spec)
        _record(apply, first, spec)  # the chain of outputs is the apply's output
        return params, state

    def apply(params, state, x, *, key=None, train=False):
        new_state = {}
        for i, m in enumerate(modules):
            k = str(i)
            x, new_state[k] = call(m, k, params[k], state[k], x, key=child_key(key, i), train=train)
        return x, new_state

    return Module(init, apply, name)


def parallel(*modules: Module, combine: str | Callable = "concat", axis: int = -1,
             name: str = "parallel") -> Module:
    """Branches on one input, combined: ``"concat"`` along ``axis`` (Inception),
    ``"sum"``, or a function of the list of branch outputs. Params keyed ``"0"``, ..."""
    _check_modules("parallel", modules)
    if combine == "concat":
        def combine_fn(ys):
            _check_same_shape(name, ys, skip_axis=axis)
            return jnp.concatenate(ys, axis=axis)
    elif combine == "sum":
        def combine_fn(ys):
            _check_same_shape(name, ys)
            return sum(ys[1:], ys[0])
    elif callable(combine):
        combine_fn = combine
    else:
        raise ValueError(f"{name}: expected combine='concat', 'sum' or a function, got {combine!r}")

    def init(key, x):
        spec = spec_of(x)
        params, state = {}, {}
        for i, m in enumerate(modules):
            params[str(i)], state[str(i)] = m.init(jax.random.fold_in(key, i), spec)
        return params, state

    def apply(params, state, x, *, key=None, train=False):
        ys, new_state = [], {}
        for i, m in enumerate(modules):
            k = str(i)
            y, new_state[k] = call(m, k, params[k], state[k], x, key=child_key(key, i), train=train)
            ys.append(y)
        return combine_fn(ys), new_state

    return Module(init, apply, name)


def residual(block: Module, shortcut: Module | None = None, name: str = "residual") -> Module:
    """``y = block(x) + shortcut(x)`` (He et al., 2016); identity shortcut by default.

    Params are ``{"block": ..., "shortcut": ...}`` (no ``"shortcut"`` entry for the
    identity). The two outputs must have the same shape: use a projection shortcut
    (e.g. a strided 1x1 conv) where the block changes the shape.
    """
    _check_modules("residual", (block,) if shortcut is None else (block, shortcut))
    branches = {"block": block} if shortcut is None else {"block": block, "shortcut": shortcut}

    def init(key, x):
        spec = spec_of(x)
        params, state = {}, {}
        for i, (k, m) in enumerate(branches.items()):
            params[k], state[k] = m.init(jax.random.fold_in(key, i), spec)
        out = {k: _infer(m, params[k], state[k], spec) for k, m in branches.items()}
        _check_same_shape(name, [out["block"], out.get("shortcut", spec)],
                          hint="; pass a projection shortcut")
        _record(apply, spec, jax.eval_shape(jnp.add, out["block"], out.get("shortcut", spec)))
        return params, state

    def apply(params, state, x, *, key=None, train=False):
        new_state, outs = {}, {}
        for i, (k, m) in enumerate(branches.items()):
            outs[k], new_state[k] = call(m, k, params[k], state[k], x, key=child_key(key, i), train=train)
        other = outs.get("shortcut", x)
        _check_same_shape(name, [outs["block"], other], hint="; pass a projection shortcut")
        return outs["block"] + other, new_state

    return Module(init, apply, name)


def _check_modules(name: str, modules: Sequence) -> None:
    if not modules:
        raise ValueError(f"{name}: expected at least one Module, got none")
    for i, m in enumerate(modules):
        if not isinstance(m, Module):
            hint = " (a layer constructor that was not called?)" if callable(m) else ""
            raise TypeError(f"{name}: argument {i} is {type(m).__name__}, expected a Module{hint}")


def _check_same_shape(name: str, ys, skip_axis: int | None = None, hint: str = "") -> None:
    shapes = [tuple(y.shape) for y in ys]

    def strip(s):
        if skip_axis is None:
            return s
        a = skip_axis % len(s)
        return s[:a] + s[a + 1:]

    if len({len(s) for s in shapes}) > 1 or len({strip(s) for s in shapes}) > 1:
        what = "all axes" if skip_axis is None else f"all axes but {skip_axis}"
        raise ValueError(f"{name}: branch outputs must agree on {what}, got shapes {shapes}{hint}")


# ---------------------------------------------------------------------------
# Inspection

def count_params(params) -> int:
    """Total number of scalars in a params pytree."""
    return sum(math.prod(jnp.shape(a)) for a in jax.tree.leaves(params))


def summary(model: Module, x, *, print_fn: Callable[[str], None] | None = print) -> list[dict]:
    """One row per layer: name, output shape, parameter count (like Keras' summary).

    Runs ``init`` and ``apply`` under ``jax.eval_shape`` only, so it costs no compute.
    Rows are the leaves of the Module tree in call order; each row's ``path`` is the
    key path into ``params``. Returns the rows and prints them unless ``print_fn`` is
    None.
    """
    spec = spec_of(x)
    params, state = jax.eval_shape(lambda k: model.init(k, spec), jax.random.key(0))
    with _recording() as records:
        out = jax.eval_shape(lambda p, s, v: call(model, "", p, s, v)[0], params, state, spec)
    is_parent = {path[:i] for path, *_ in records for i in range(1, len(path))}
    rows = [
        {"path": "/".join(p for p in path if p) or model.name, "layer": lname,
         "output_shape": shape, "params": n}
        for path, lname, shape, n in records if path not in is_parent
    ]
    total = count_params(params)
    if print_fn is not None:
        width = max([len(f"{r['path']} ({r['layer']})") for r in rows] + [len("Layer")])
        lines = [f"{'Layer':<{width}}  {'Output shape':<22}  {'Params':>12}", "-" * (width + 38)]
        for r in rows:
            lines.append(f"{r['path'] + ' (' + r['layer'] + ')':<{width}}  "
                         f"{str(r['output_shape']):<22}  {r['params']:>12,}")
        lines += ["-" * (width + 38),
                  f"Total params: {total:,}    input {tuple(spec.shape)} -> output "
                  f"{jax.tree.map(lambda a: tuple(a.shape), out)}"]
        print_fn("\n".join(lines))
    return rows
