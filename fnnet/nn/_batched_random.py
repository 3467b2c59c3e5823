"""Evaluate a traced program with its Threefry hashes batched: one hash per wave.

A model's ``init`` draws every weight from its own key (``fold_in`` per child, then
``random_bits`` per leaf), and XLA generates code for each Threefry hash separately:
compile time grows with the number of draws, and it is most of a first ``init``.
Every such hash is elementwise in its (key, counter) pairs, so all the hashes whose
inputs are known can run as ONE ``threefry2x32`` over the concatenated pairs, giving
the same bits. :func:`batched_threefry` traces a function, then evaluates its jaxpr in
waves: the ordinary equations whose inputs are ready, then every ready hash together.
A program with ``D`` levels of keys (``fold_in`` of a ``fold_in`` ...) compiles ``D``
hashes instead of one per draw and per ``fold_in``.

What is batched, and how (with ``jax_threefry_partitionable``, JAX's default, and the
``threefry2x32`` key implementation; anything else is evaluated as traced):

- ``random_fold_in(key, d)`` is ``threefry2x32(key; 0, d)``, the pair of outputs the
  new key;
- ``random_bits(key, 32, shape)`` is ``b1 ^ b2`` of ``threefry2x32(key; hi(i), lo(i))``
  over the row-major index ``i`` of ``shape``, reshaped.

Calls to ``jax.jit``-ed functions inside the program are inlined first, so the draws
inside ``jax.random.normal`` join the waves. The bits, and so the parameters, are
bitwise those of the program evaluated as traced (tests/nn/test_fast_init.py).

Imports: jax.
"""
from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
try:  # public since JAX 0.4.36; older releases evaluate the trace as it is
    from jax.extend.core import Literal
    from jax.extend.random import threefry2x32_p
except ImportError:  # pragma: no cover
    Literal = threefry2x32_p = None

__all__: list[str] = []

_CALLS = ("jit", "pjit", "closed_call", "core_call")

# Draws up to this many numbers join a batch; a larger one keeps its own hash (a batch
# broadcasts every key to its draw's size, and copying millions of keys and counters
# costs more at run time than the compile it saves).
MAX_BATCHED_DRAW = 1 << 16


def batched_threefry(fn):
    """``fn(*args)`` (array arguments, pytree output) evaluated with its Threefry hashes
    batched in waves; the same values bit for bit. Meant to be traced (under ``jax.jit``)."""
    def run(*args):
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        flat_args = jax.tree.leaves(args)
        outs = _evaluate(closed, flat_args)
        return jax.tree.unflatten(jax.tree.structure(out_shape), outs)
    return run


def _flatten(jaxpr, scope, counter, nodes):
    """Nodes of ``jaxpr`` with calls inlined: ``("eqn", scope, eqn)``, ``("alias", dst,
    src)`` (``dst`` and ``src`` are ``(scope, atom)``) and ``("const", dst, value)``.
    Each inlined call gets its own scope, so a jaxpr reused by two calls does not mix
    their variables."""
    for eqn in jaxpr.eqns:
        inner = eqn.params.get("jaxpr") if eqn.primitive.name in _CALLS else None
        if inner is None or not hasattr(inner, "consts"):
            nodes.append(("eqn", scope, eqn))
            continue
        s = next(counter)
        for v, c in zip(inner.jaxpr.constvars, inner.consts):
            nodes.append(("const", (s, v), c))
        for v, a in zip(inner.jaxpr.invars, eqn.invars):
            nodes.append(("alias", (s, v), (scope, a)))
        _flatten(inner.jaxpr, s, counter, nodes)
        for v, a in zip(eqn.outvars, inner.jaxpr.outvars):
            nodes.append(("alias", (scope, v), (s, a)))


def _is_threefry(key) -> bool:
    try:
        return jax.random.key_impl(key) == jax.random.key_impl(jax.random.key(0, impl="threefry2x32"))
    except Exception:  # not a typed key
        return False


def _hash_inputs(eqn, invals):
    """``(k1, k2, x1, x2, n)`` (flat uint32 arrays of ``n`` entries) if ``eqn`` is a hash
    that can join a batch, else ``None``."""
    name = eqn.primitive.name
    if name not in ("random_fold_in", "random_bits") or not jax.config.jax_threefry_partitionable:
        return None
    key = invals[0]
    if getattr(key, "shape", None) != () or not _is_threefry(key):
        return None
    k1, k2 = jax.random.key_data(key)
    if name == "random_fold_in":
        data = invals[1]
        if getattr(data, "shape", None) != () or jnp.dtype(data.dtype) != jnp.uint32:
            return None
        return k1[None], k2[None], jnp.zeros((1,), jnp.uint32), data[None], 1
    if eqn.params["bit_width"] != 32:
        return None
    n = math.prod(eqn.params["shape"])
    if not 0 < n <= MAX_BATCHED_DRAW:
        return None
    return (jnp.broadcast_to(k1, (n,)), jnp.broadcast_to(k2, (n,)), jnp.zeros((n,), jnp.uint32),
            jax.lax.iota(jnp.uint32, n), n)


def _hash_outputs(eqn, key, b1, b2):
    if eqn.primitive.name == "random_fold_in":
        return jax.random.wrap_key_data(jnp.concatenate([b1, b2]), impl=jax.random.key_impl(key))
    return (b1 ^ b2).reshape(eqn.params["shape"])


def _evaluate(closed, args):
    env = {}
    counter = itertools.count(1)
    nodes = [("const", (0, v), c) for v, c in zip(closed.jaxpr.constvars, closed.consts)]
    nodes += [("const", (0, v), a) for v, a in zip(closed.jaxpr.invars, args)]
    _flatten(closed.jaxpr, 0, counter, nodes)

    def read(scope, atom):
        return atom.val if isinstance(atom, Literal) else env[(scope, atom)]

    def ready(scope, atom):
        return isinstance(atom, Literal) or (scope, atom) in env

    def run_eqn(scope, eqn, invals):
        params = eqn.primitive.get_bind_params(eqn.params)
        subfuns = ()
        if isinstance(params, tuple):  # JAX before 0.7: (subfuns, params)
            subfuns, params = params
        with eqn.ctx.manager:
            out = eqn.primitive.bind(*subfuns, *invals, **params)
        for v, x in zip(eqn.outvars, out if eqn.primitive.multiple_results else [out]):
            env[(scope, v)] = x

    pending = nodes
    while pending:
        waiting, hashes = [], []
        for node in pending:
            kind, a, b = node
            if kind == "const":
                env[a] = b
            elif kind == "alias":
                if ready(*b):
                    env[a] = read(*b)
                else:
                    waiting.append(node)
            else:
                scope, eqn = a, b
                if not all(ready(scope, v) for v in eqn.invars):
                    waiting.append(node)
                    continue
                invals = [read(scope, v) for v in eqn.invars]
                inputs = _hash_inputs(eqn, invals)
                if inputs is None:
                    run_eqn(scope, eqn, invals)
                else:
                    hashes.append((scope, eqn, invals[0], inputs))
        if hashes:
            k1, k2, x1, x2 = (jnp.concatenate([h[3][i] for h in hashes]) for i in range(4))
            b1, b2 = threefry2x32_p.bind(k1, k2, x1, x2)
            offset = 0
            for scope, eqn, key, (*_, n) in hashes:
                env[(scope, eqn.outvars[0])] = _hash_outputs(eqn, key, b1[offset:offset + n],
                                                             b2[offset:offset + n])
                offset += n
        elif len(waiting) == len(pending):
            raise RuntimeError("batched_threefry: the program cannot make progress (a cycle?)")
        pending = waiting
    return [read(0, v) for v in closed.jaxpr.outvars]

