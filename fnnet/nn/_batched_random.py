"""Compile a random initialisation into a few kernels: all its Threefry hashes in one,
the transforms after them batched too, and the results cut out on the host.

A model's ``init`` derives one key per layer (``fold_in`` per child) and draws every
weight from its own key (``random_bits``, then ``uniform -> erf_inv -> scale``). Traced
as it is, XLA generates a Threefry kernel per draw and per ``fold_in`` and a transform
kernel per draw; on CPU each kernel costs 10-40 ms of code generation, and ResNet-18's
first ``init`` was mostly that (about 270 kernels). :func:`compile_batched` traces the
function and evaluates its jaxpr in passes, keeping every bit:

- ``random_fold_in(key, d)`` (``d`` a constant) is ``threefry2x32(key; 0, d)``, the pair
  of outputs the new key. It is not computed where it stands: the key becomes a root key
  and a path of ``d`` s, and the chains of the keys a wave needs are hashed together,
  one level at a time (``where`` past a chain's end), inside the wave's key gather;
- ``random_bits(key, 32, shape)`` is ``b1 ^ b2`` of ``threefry2x32(key; 0, i)`` over the
  row-major index ``i`` (``jax_threefry_partitionable``, JAX's default). All the draws
  whose keys are known run as ONE hash laid out in rows of ``ROW`` counters: draw ``p``
  owns ``ceil(n_p / ROW)`` rows, row ``r`` hashes the key of its draw with the counters
  ``ROW (r - start_p) + [0, ROW)``; keys and row bases are per-row vectors broadcast
  along the row, so no per-element key array is built. Draws wait while other parts of
  the program can progress, so that one wave holds them all;
- an elementwise equation (``shift``, ``or``, ``bitcast``, ``sub``, ``mul``, ``max``,
  ``erf_inv``, ``optimization_barrier``, ...) applied with the same parameters to
  draws of one wave runs once over the wave's buffer; a scalar operand that differs per
  draw becomes a per-row vector. Each element goes through the operations it went
  through in the traced program. XLA's algebraic simplifier may still treat a chain of
  constant multiplications differently (it folds ``c1 * (c2 * x)`` when ``c2 * x`` has
  one user, which a buffer shared by several draws may not), which ``fnnet.init``
  prevents with an optimisation barrier after each standard normal draw; the tests
  compare bitwise (tests/nn/test_fast_init.py, tests/nn/test_batched_random.py);
- outputs that depend on no argument (``zeros``, ``ones``: a ``broadcast_in_dim`` of a
  literal) are made on the host, and draws are returned as whole wave buffers that the
  host cuts into the parameters (NumPy views, ``jax.device_put``): no kernel per
  parameter. A draw that the program itself uses is sliced from its buffer behind a
  ``cond`` XLA cannot see through, so that its wave is computed once, not again inside
  every slice's kernel.

The Threefry-2x32 hash is written out here (20 rounds of uint32 add, rotate and xor,
unrolled): integer arithmetic gives JAX's bits (and the published known answers), in
one fusible loop, where JAX's CPU lowering is a rolled loop of several kernels per call.
Equations of any other kind, keys that are not scalar ``threefry2x32`` keys, a
``fold_in`` of traced data and other bit widths are evaluated as traced.

For ResNet-18 (224x224x3, 1000 classes) the program is 2 kernels: the gather of the
row keys (the ``fold_in`` chains fused in) and the hash with the normal transform.

Imports: jax, numpy.
"""
from __future__ import annotations

import itertools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
try:  # public since JAX 0.4.36
    from jax.extend.core import Literal
except ImportError:  # pragma: no cover
    from jax.core import Literal

__all__: list[str] = []

_CALLS = ("jit", "pjit", "closed_call", "core_call")

# Counters per row of a draw wave: a draw wastes at most ROW - 1 hashes of padding.
ROW = 1024

_ELEMENTWISE = frozenset({
    "add", "sub", "mul", "div", "rem", "max", "min", "neg", "sign", "floor", "ceil", "round",
    "is_finite", "exp", "exp2", "log", "log1p", "expm1", "tanh", "logistic", "sin", "cos",
    "tan", "sqrt", "rsqrt", "cbrt", "pow", "integer_pow", "square", "abs", "erf", "erfc",
    "erf_inv", "and", "or", "xor", "not", "shift_left", "shift_right_logical",
    "shift_right_arithmetic", "population_count", "eq", "ne", "lt", "le", "gt", "ge",
    "select_n", "clamp", "convert_element_type", "bitcast_convert_type", "nextafter",
    "atan2", "copy", "copy_p", "reduce_precision", "optimization_barrier"})

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k1, k2, x1, x2):
    """Threefry-2x32 (Salmon et al., 2011), 20 rounds, on uint32 arrays (broadcast):
    ``(y1, y2)``, bitwise JAX's ``threefry2x32``. Key schedule ``k3 = k1 ^ k2 ^
    0x1BD11BDA``; each round ``x1 += x2; x2 = rotl(x2, r) ^ x1``; after every 4 rounds
    ``x1 += k_(s+1), x2 += k_(s+2) + s + 1``."""
    u = np.uint32
    ks = (k1, k2, k1 ^ k2 ^ u(0x1BD11BDA))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for s in range(5):
        for r in _ROTATIONS[s % 2]:
            x1 = x1 + x2
            x2 = ((x2 << u(r)) | (x2 >> u(32 - r))) ^ x1
        x1 = x1 + ks[(s + 1) % 3]
        x2 = x2 + ks[(s + 2) % 3] + u(s + 1)
    return x1, x2


def compile_batched(fn, *args, compiler_options=None, timings: dict | None = None):
    """``run(*args) == fn(*args)`` bit for bit, ``fn`` traced once for the avals of
    ``args`` and compiled as one program with its hashes and elementwise transforms
    batched (module docstring). ``run`` must be called outside a trace, with arguments
    of the same shapes and dtypes. ``timings``, if given, receives the seconds of each
    phase: ``trace`` (``fn`` to a jaxpr), ``rewrite`` (the batched evaluation),
    ``lower`` (the rest of lowering to StableHLO), ``compile`` (XLA), and at each call
    of ``run`` ``run`` (the program, to ``block_until_ready``) and ``assemble`` (the
    leaves cut from the buffers on the host)."""
    plan = {}
    clock = {} if timings is None else timings

    def traced(*a):
        start = time.perf_counter()
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*a)
        clock["trace"] = time.perf_counter() - start
        start = time.perf_counter()
        outs = _Evaluator().run(closed, jax.tree.leaves(a))
        plan["tree"] = jax.tree.structure(out_shape)
        bufs, arrays, plan["items"] = _split_outputs(outs, closed.jaxpr.outvars)
        clock["rewrite"] = time.perf_counter() - start
        return bufs, arrays

    start = time.perf_counter()
    lowered = jax.jit(traced).lower(*args)
    clock["lower"] = time.perf_counter() - start - clock["trace"] - clock["rewrite"]
    start = time.perf_counter()
    executable = lowered.compile(compiler_options) if compiler_options else lowered.compile()
    clock["compile"] = time.perf_counter() - start

    def run(*a):
        start = time.perf_counter()
        bufs, arrays = executable(*a)
        if timings is not None:
            jax.block_until_ready((bufs, arrays))
            timings["run"] = time.perf_counter() - start
            start = time.perf_counter()
        hosts = [np.asarray(b) for b in bufs]
        leaves = []
        for kind, *what in plan["items"]:
            if kind == "piece":
                b, first, n, shape = what
                leaves.append(jax.device_put(hosts[b][first:first + n].reshape(shape)))
            elif kind == "host":
                leaves.append(jax.device_put(np.array(what[0])))
            else:
                leaves.append(arrays[what[0]])
        out = jax.tree.unflatten(plan["tree"], leaves)
        if timings is not None:
            jax.block_until_ready(out)
            timings["assemble"] = time.perf_counter() - start
        return out

    run.compiled = executable
    return run


# ---------------------------------------------------------------------------
# Values of the evaluation besides tracers: pieces of a wave buffer, keys in the
# key table, and host (NumPy) arrays.

class _Layout:
    """Rows of ``width`` elements; piece ``p`` starts at row ``starts[p]`` and holds
    ``sizes[p]`` elements; ``owner[r]`` is the piece of row ``r``."""

    def __init__(self, sizes, width):
        self.width, self.sizes = width, list(sizes)
        rows = [-(-n // width) for n in self.sizes]
        self.starts = [0, *itertools.accumulate(rows)][:-1]
        self.rows = sum(rows)
        self.owner = np.repeat(np.arange(len(rows), dtype=np.int32), rows)
        self.row_in_piece = (np.arange(self.rows) - np.repeat(self.starts, rows)).astype(np.uint32)

    def per_element(self, values, dtype):
        """The per-piece scalars ``values`` spread over the buffer (one per row)."""
        vec = jnp.stack([jnp.reshape(jnp.asarray(v, dtype), ()) for v in values])
        rows = vec[self.owner]
        return jax.lax.broadcast_in_dim(rows, (self.rows, self.width), (0,)).reshape(-1)


class _Buf:
    """A wave's flat buffer (``layout.rows * layout.width`` elements)."""

    def __init__(self, flat, layout):
        self.flat, self.layout, self.solid = flat, layout, None


class _Piece:
    __slots__ = ("buf", "i", "shape")

    def __init__(self, buf, i, shape):
        self.buf, self.i, self.shape = buf, i, tuple(shape)


class _Key:
    """``fold_in(... fold_in(root, path[0]) ..., path[-1])`` of root key ``root``."""
    __slots__ = ("root", "path")

    def __init__(self, root, path=()):
        self.root, self.path = root, tuple(path)


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


_THREEFRY = None


def _is_threefry_key(x) -> bool:
    global _THREEFRY
    try:
        if _THREEFRY is None:
            _THREEFRY = jax.random.key_impl(jax.random.key(0, impl="threefry2x32"))
        return getattr(x, "shape", None) == () and jax.random.key_impl(x) == _THREEFRY
    except Exception:  # not a typed key
        return False


def _is_scalar(x) -> bool:
    return not isinstance(x, (_Piece, _Key)) and math.prod(np.shape(x)) == 1


def _params_key(params):
    items = []
    for k, v in sorted(params.items()):
        try:
            hash(v)
        except TypeError:
            v = repr(v)
        items.append((k, v))
    return tuple(items)


class _Evaluator:
    def __init__(self):
        self.env = {}
        self.r1 = self.r2 = None  # uint32 words of the traced root keys
        self.registered = {}  # id(traced key) -> (key, root index)
        self.keys = {}  # (root, path) -> materialised typed key
        self.pieces = {}  # (id(buf), i, shape) -> materialised array
        self.pred = None
        self.batch = jax.config.jax_threefry_partitionable

    # -- reading ---------------------------------------------------------------
    def raw(self, scope, atom):
        return atom.val if isinstance(atom, Literal) else self.env[(scope, atom)]

    def ready(self, scope, atom):
        return isinstance(atom, Literal) or (scope, atom) in self.env

    def operand(self, x):
        """``x`` as an argument of ``bind``."""
        if isinstance(x, _Piece):
            return self.materialise(x)
        if isinstance(x, _Key):
            return self.key_value(x)
        if isinstance(x, np.ndarray) and x.size > 1 and not any(x.strides):
            return jax.lax.broadcast_in_dim(x.reshape(-1)[0], x.shape, ())
        return x

    def materialise(self, p):
        cached = self.pieces.get((id(p.buf), p.i, p.shape))
        if cached is not None:
            return cached
        buf = p.buf
        if buf.solid is None:
            # A cond XLA cannot see through: the buffer is computed once, and each slice
            # reads it, instead of every slice's kernel recomputing the whole wave.
            buf.solid = self.solid(buf.flat)
        start = buf.layout.starts[p.i] * buf.layout.width
        n = buf.layout.sizes[p.i]
        out = jax.lax.slice(buf.solid, (start,), (start + n,)).reshape(p.shape)
        self.pieces[(id(p.buf), p.i, p.shape)] = out
        return out

    def solid(self, x):
        """``x``, behind a ``cond`` XLA cannot see through (its predicate is always true):
        ``x`` is computed once and stored, instead of being recomputed inside every
        kernel that reads it (XLA fuses elementwise producers into each consumer)."""
        if self.pred is None:
            self.pred = (self.r1[0] | np.uint32(1)) != 0
        return jax.lax.cond(self.pred, lambda f: f, jnp.zeros_like, x)

    def key_value(self, key):
        if (key.root, key.path) not in self.keys:
            words = self.key_words([key])[0]
            self.keys[(key.root, key.path)] = jax.random.wrap_key_data(words, impl="threefry2x32")
        return self.keys[(key.root, key.path)]

    def key_words(self, keys):
        """uint32 ``[len(keys), 2]``: the words of each key, every ``fold_in`` chain
        computed at once (one hash per level, ``where`` past a chain's end). XLA fuses
        it into the kernel that gathers the keys of a draw wave's rows."""
        roots = np.array([k.root for k in keys])
        k1, k2 = self.r1[roots], self.r2[roots]
        depth = np.array([len(k.path) for k in keys])
        data = np.zeros((len(keys), max(depth)), np.uint32)
        for j, k in enumerate(keys):
            data[j, :len(k.path)] = k.path
        for level in range(data.shape[1]):
            d = jnp.asarray(data[:, level])
            n1, n2 = threefry2x32(k1, k2, jnp.zeros_like(d), d)
            if (depth > level).all():
                k1, k2 = n1, n2
            else:
                more = jnp.asarray(depth > level)
                k1, k2 = jnp.where(more, n1, k1), jnp.where(more, n2, k2)
        return jnp.stack([k1, k2], axis=1)

    def as_key(self, key):
        """``key`` (a ``_Key`` or a traced threefry key) as a ``_Key``."""
        if isinstance(key, _Key):
            return key
        hit = self.registered.get(id(key))
        if hit is not None and hit[0] is key:
            return _Key(hit[1])
        data = jax.random.key_data(key).reshape(2)
        if self.r1 is None:
            self.r1, self.r2 = data[:1], data[1:]
        else:
            self.r1, self.r2 = jnp.concatenate([self.r1, data[:1]]), jnp.concatenate([self.r2, data[1:]])
        index = self.r1.shape[0] - 1
        self.registered[id(key)] = (key, index)
        return _Key(index)

    # -- one equation ------------------------------------------------------------
    def run_eqn(self, scope, eqn, invals):
        params = eqn.primitive.get_bind_params(eqn.params)
        subfuns = ()
        if isinstance(params, tuple):  # JAX before 0.7: (subfuns, params)
            subfuns, params = params
        with eqn.ctx.manager:
            out = eqn.primitive.bind(*subfuns, *[self.operand(x) for x in invals], **params)
        for v, x in zip(eqn.outvars, out if eqn.primitive.multiple_results else [out]):
            self.env[(scope, v)] = x

    def classify(self, eqn, vals):
        """What to do with a ready equation: ``("draw", key, n)``, ``("group",
        signature, piece, vals)``, ``("now", value)`` (its output, known now) or None
        (bind it)."""
        name = eqn.primitive.name
        if name in ("random_fold_in", "random_bits") and self.batch:
            key = vals[0]
            if not (isinstance(key, _Key) or _is_threefry_key(key)):
                return None
            if name == "random_fold_in":
                data = vals[1]
                if not isinstance(data, (int, np.integer, np.ndarray)) or np.shape(data) != () \
                        or jnp.dtype(eqn.invars[1].aval.dtype) != jnp.uint32:
                    return None  # traced data: the fold_in is computed as traced
                key = self.as_key(key)
                return ("now", _Key(key.root, key.path + (int(data),)))
            n = math.prod(eqn.params["shape"])
            if eqn.params["bit_width"] != 32 or n == 0 or n >= 2 ** 32:
                return None
            return ("draw", key, n)
        if name == "broadcast_in_dim" and isinstance(vals[0], (np.ndarray, np.generic, int, float, bool)) \
                and eqn.params.get("sharding") is None and len(eqn.invars) == 1:
            aval = eqn.outvars[0].aval
            a = np.asarray(vals[0], aval.dtype)
            dims = tuple(eqn.params["broadcast_dimensions"])
            expanded = a.reshape([a.shape[dims.index(d)] if d in dims else 1
                                  for d in range(len(aval.shape))])
            return ("now", np.broadcast_to(expanded, aval.shape))
        pieces = [x for x in vals if isinstance(x, _Piece)]
        if not pieces:
            return None
        p = pieces[0]
        if name in ("reshape", "squeeze") and eqn.params.get("dimensions") is None:
            return ("now", _Piece(p.buf, p.i, eqn.outvars[0].aval.shape))
        if name not in _ELEMENTWISE or len(eqn.outvars) != 1:
            return None
        if name == "optimization_barrier" and len(vals) != 1:
            return None
        if tuple(eqn.outvars[0].aval.shape) != p.shape:
            return None
        kinds = []
        for x, v in zip(vals, eqn.invars):
            if isinstance(x, _Piece):
                if x.buf is not p.buf or x.i != p.i or x.shape != p.shape:
                    return None
                kinds.append("P")
            elif _is_scalar(x) and len(np.shape(x)) <= len(p.shape):
                kinds.append(("S", str(v.aval.dtype)))
            else:
                return None
        sig = (id(p.buf), eqn.primitive, _params_key(eqn.params), tuple(kinds))
        return ("group", sig, p, vals)

    # -- waves -------------------------------------------------------------------
    def draw_wave(self, draws):
        words = self.key_words([self.as_key(key) for _, _, key, _ in draws])
        sizes = [n for *_, n in draws]
        width = min(ROW, 1 << (max(sizes) - 1).bit_length())
        layout = _Layout(sizes, width)
        keys = words[layout.owner]  # [rows, 2]: one gather
        k1, k2 = keys[:, :1], keys[:, 1:]
        counters = (jnp.asarray(layout.row_in_piece * np.uint32(width))[:, None]
                    + jax.lax.broadcasted_iota(jnp.uint32, (1, width), 1))
        b1, b2 = threefry2x32(k1, k2, jnp.zeros_like(counters), counters)
        buf = _Buf((b1 ^ b2).reshape(-1), layout)
        for j, (scope, eqn, _, _) in enumerate(draws):
            self.env[(scope, eqn.outvars[0])] = _Piece(buf, j, eqn.params["shape"])

    def group_wave(self, members):
        """Equations of one signature over pieces of one buffer: one op on the buffer."""
        _, eqn0, p0, vals0 = members[0]
        buf = p0.buf
        operands = []
        for pos, x0 in enumerate(vals0):
            if isinstance(x0, _Piece):
                operands.append(buf.flat)
                continue
            column = [m[3][pos] for m in members]
            if all(x is x0 for x in column) or all(
                    isinstance(x, (int, float, bool, np.generic)) and type(x) is type(x0) and x == x0
                    for x in column):
                operands.append(jnp.reshape(self.operand(x0), ()) if hasattr(x0, "shape") else x0)
                continue
            values = [x0] * len(buf.layout.sizes)
            for m in members:
                values[m[2].i] = m[3][pos]
            values = [self.operand(v) for v in values]
            operands.append(buf.layout.per_element(values, eqn0.invars[pos].aval.dtype))
        params = eqn0.primitive.get_bind_params(eqn0.params)
        if isinstance(params, tuple):  # JAX before 0.7: (subfuns, params)
            params = params[1]
        with eqn0.ctx.manager:
            out = eqn0.primitive.bind(*operands, **params)
        if eqn0.primitive.multiple_results:
            out = out[0]
        new = _Buf(out, buf.layout)
        for scope, eqn, p, _ in members:
            self.env[(scope, eqn.outvars[0])] = _Piece(new, p.i, p.shape)

    def run(self, closed, args):
        counter = itertools.count(1)
        nodes = [("const", (0, v), c) for v, c in zip(closed.jaxpr.constvars, closed.consts)]
        nodes += [("const", (0, v), a) for v, a in zip(closed.jaxpr.invars, args)]
        _flatten(closed.jaxpr, 0, counter, nodes)
        pending = list(enumerate(nodes))
        while pending:
            waiting, draws, groups = [], [], {}
            progressed = False
            for order, node in pending:
                kind, a, b = node
                if kind == "const":
                    self.env[a] = b
                    progressed = True
                    continue
                if kind == "alias":
                    if self.ready(*b):
                        self.env[a] = self.raw(*b)
                        progressed = True
                    else:
                        waiting.append((order, node))
                    continue
                scope, eqn = a, b
                if not all(self.ready(scope, v) for v in eqn.invars):
                    waiting.append((order, node))
                    continue
                vals = [self.raw(scope, v) for v in eqn.invars]
                what = self.classify(eqn, vals)
                if what is None:
                    self.run_eqn(scope, eqn, vals)
                    progressed = True
                elif what[0] == "now":
                    self.env[(scope, eqn.outvars[0])] = what[1]
                    progressed = True
                elif what[0] == "draw":
                    draws.append(((order, node), (scope, eqn, what[1], what[2])))
                else:
                    groups.setdefault(what[1], []).append((scope, eqn, what[2], what[3]))
            for members in groups.values():
                self.group_wave(members)
            if draws and not (groups or progressed):
                self.draw_wave([d for _, d in draws])
            elif draws:  # other parts can progress: later, more draws join this wave
                waiting = sorted(waiting + [n for n, _ in draws], key=lambda on: on[0])
            elif not (groups or progressed):
                raise RuntimeError("compile_batched: the program cannot make progress (a cycle?)")
            pending = waiting
        outs = [self.raw(0, v) for v in closed.jaxpr.outvars]
        return [self.key_value(x) if isinstance(x, _Key) else x for x in outs]


def _split_outputs(outs, outvars):
    """Program outputs ``(buffers, arrays)`` and the plan to rebuild the leaves."""
    bufs, arrays, items, index = [], [], [], {}
    for x, v in zip(outs, outvars):
        if isinstance(x, _Piece):
            b = index.get(id(x.buf))
            if b is None:
                b = index[id(x.buf)] = len(bufs)
                bufs.append(x.buf.flat if x.buf.solid is None else x.buf.solid)
            start = x.buf.layout.starts[x.i] * x.buf.layout.width
            items.append(("piece", b, start, x.buf.layout.sizes[x.i], x.shape))
        elif isinstance(x, (np.ndarray, np.generic, int, float, bool)):
            items.append(("host", np.asarray(x, v.aval.dtype)))
        else:
            items.append(("array", len(arrays)))
            arrays.append(x)
    return bufs, arrays, items
