"""Sharding policies: where each leaf of a training state and each batch lives on a mesh.

A :class:`ShardingPolicy` maps a parameter's path (``"attention/query/kernel"``) and
shape to a ``PartitionSpec``; the functions below turn it into ``NamedSharding`` pytrees
for params, state, optimizer state and batches. Three policies:

- :func:`data_parallel`: batch split over ``data``; params, state and optimizer state
  replicated (XLA all-reduces the gradients).
- :func:`fully_sharded`: batch split over ``data``; every param and optimizer-state
  leaf split over ``data`` along its largest axis that ``data`` divides (ties: the
  first), the rest replicated; XLA all-gathers a weight where it is used and
  reduce-scatters its gradient (ZeRO-3 / FSDP).
- :func:`tensor_parallel`: batch split over ``data``; weights split over ``model`` by
  path rules, Megatron style: attention ``query/key/value`` and an MLP's ``hidden``
  kernel by columns (output features, i.e. heads), attention ``out`` and an MLP's
  ``output`` kernel by rows, so one block needs one all-reduce forward.

Optimizer-state leaves follow the param they mirror (an Adam moment at
``.../mu/0/kernel`` is placed like ``0/kernel``); leaves that mirror no param (step
counts) are replicated. Batch-norm statistics and other ``state`` are replicated.
A spec that does not fit a leaf (a rank too small, a dimension the axis does not
divide) falls back to replication for that leaf: the math is the same, only the
memory differs.

Imports: jax, fnnet.parallel.mesh, fnnet.train.placement.
"""
from __future__ import annotations

import re
from typing import Callable, NamedTuple, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from fnnet.parallel.mesh import axis_size, check_mesh
from fnnet.train.placement import Placement, place

__all__ = ["ShardingPolicy", "data_parallel", "fully_sharded", "tensor_parallel", "MEGATRON_RULES",
           "path_str", "param_shardings", "state_shardings", "opt_state_shardings",
           "train_state_shardings", "batch_sharding", "replicated", "check_batch",
           "shard_batch", "shard_state", "shard_population"]


class ShardingPolicy(NamedTuple):
    """``name``, the ``mesh``, and ``leaf_spec(path, shape) -> PartitionSpec`` for a param
    at ``path`` (``None`` for an optimizer-state leaf that mirrors no param)."""
    name: str
    mesh: jax.sharding.Mesh
    leaf_spec: Callable[[str | None, tuple], P]

    def placement(self, params, state, opt_state) -> Placement:
        """The :class:`fnnet.train.Placement` of a training run under this policy (what
        ``fnnet.train.fit(..., policy=...)`` uses): :func:`train_state_shardings`, the
        batch sharding, replication, and the size of the ``data`` axis."""
        return Placement(*train_state_shardings(self, params, state, opt_state), batch_sharding(self),
                         replicated(self), axis_size(self.mesh, "data"))


def path_str(path) -> str:
    """``"a/b/0"`` for a ``tree_flatten_with_path`` key path (dict keys, indices, fields)."""
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def _fits(mesh, spec: P, shape: tuple) -> bool:
    if len(spec) > len(shape):
        return False
    for dim, axes in zip(shape, spec):
        if axes is None:
            continue
        size = 1
        for a in (axes if isinstance(axes, tuple) else (axes,)):
            size *= axis_size(mesh, a)
        if dim % size:
            return False
    return True


def _batch_axis(mesh):
    return "data" if "data" in mesh.axis_names else None


def data_parallel(mesh) -> ShardingPolicy:
    """Batch split over ``data``; params, state and optimizer state replicated."""
    check_mesh("data_parallel", mesh)
    return ShardingPolicy("data_parallel", mesh, lambda path, shape: P())


def fully_sharded(mesh) -> ShardingPolicy:
    """Batch, params and optimizer state split over ``data`` (each leaf on its largest
    axis that ``data`` divides; a leaf with none is replicated)."""
    check_mesh("fully_sharded", mesh)
    n = axis_size(mesh, "data")

    def leaf_spec(path, shape):
        fits = [i for i, d in enumerate(shape) if d % n == 0 and d >= n]
        if n == 1 or not fits:
            return P()
        best = max(fits, key=lambda i: (shape[i], -i))
        return P(*([None] * best + ["data"]))

    return ShardingPolicy("fully_sharded", mesh, leaf_spec)


# Megatron-LM splits (Shoeybi et al., 2019, arXiv:1909.08053), for fnnet's param names:
# multi_head_attention {"query","key","value","out"}, transformer blocks' "mlp"
# {"hidden","output"}. Column: kernel (in, out) split on out, bias split; row: kernel
# split on in, bias replicated (added after the all-reduce).
MEGATRON_RULES: tuple[tuple[str, P], ...] = (
    (r"(^|/)(query|key|value|hidden)/kernel$", P(None, "model")),
    (r"(^|/)(query|key|value|hidden)/bias$", P("model")),
    (r"(^|/)(out|output)/kernel$", P("model", None)),
)


def tensor_parallel(mesh, rules: Sequence[tuple[str, P]] = ()) -> ShardingPolicy:
    """Weights split over ``model`` by path rules; batch split over ``data``.

    Args:
      mesh: a mesh with a ``model`` axis (``make_mesh(data=2, model=4)``).
      rules: ``(regex, PartitionSpec)`` pairs tried before :data:`MEGATRON_RULES`; the
        first whose regex ``re.search``-es a param's path (``"2/kernel"``,
        ``"block/attention/query/kernel"``) gives its spec; no match: replicated.
        E.g. a plain MLP ``serial(dense, relu, dense)``:
        ``[(r"^0/kernel$", P(None, "model")), (r"^0/bias$", P("model")),
        (r"^2/kernel$", P("model", None))]``.

    Raises:
      ValueError: the mesh has no ``model`` axis, or a rule names an axis the mesh lacks.
    """
    check_mesh("tensor_parallel", mesh)
    if "model" not in mesh.axis_names:
        raise ValueError(f"tensor_parallel: expected a mesh with a 'model' axis, got axes "
                         f"{tuple(mesh.axis_names)}")
    compiled = []
    for i, rule in enumerate(tuple(rules) + MEGATRON_RULES):
        if not (isinstance(rule, tuple) and len(rule) == 2 and isinstance(rule[1], P)):
            raise TypeError(f"tensor_parallel: expected rule {i} as (regex, PartitionSpec), got {rule!r}")
        pattern, spec = rule
        named = {a for axes in spec if axes is not None
                 for a in (axes if isinstance(axes, tuple) else (axes,))}
        unknown = sorted(named - set(mesh.axis_names))
        if unknown:
            raise ValueError(f"tensor_parallel: rule {pattern!r} names mesh axes {unknown}, "
                             f"expected axes among {tuple(mesh.axis_names)}")
        compiled.append((re.compile(pattern), spec))

    def leaf_spec(path, shape):
        if path is None:
            return P()
        for pattern, spec in compiled:
            if pattern.search(path):
                return spec
        return P()

    return ShardingPolicy("tensor_parallel", mesh, leaf_spec)


def _check_policy(who, policy):
    if not isinstance(policy, ShardingPolicy):
        raise TypeError(f"{who}: expected a ShardingPolicy (data_parallel, fully_sharded, "
                        f"tensor_parallel), got {type(policy).__name__}")


def _sharding(policy, path, leaf) -> NamedSharding:
    shape = tuple(np.shape(leaf))
    spec = policy.leaf_spec(path, shape)
    if not _fits(policy.mesh, spec, shape):
        spec = P()
    return NamedSharding(policy.mesh, spec)


def replicated(policy: ShardingPolicy) -> NamedSharding:
    """A copy on every device of the policy's mesh (scalars, keys, the loss)."""
    _check_policy("replicated", policy)
    return NamedSharding(policy.mesh, P())


def param_shardings(policy: ShardingPolicy, params):
    """``NamedSharding`` per param leaf, as the policy places it."""
    _check_policy("param_shardings", policy)
    return jax.tree_util.tree_map_with_path(lambda p, x: _sharding(policy, path_str(p), x), params)


def state_shardings(policy: ShardingPolicy, state):
    """Replicated ``NamedSharding`` per state leaf (batch-norm statistics are small)."""
    _check_policy("state_shardings", policy)
    return jax.tree.map(lambda x: replicated(policy), state)


def opt_state_shardings(policy: ShardingPolicy, opt_state, params):
    """``NamedSharding`` per optimizer-state leaf: a leaf whose path ends with a param's
    path and has its shape is placed like that param; any other is ``leaf_spec(None, shape)``."""
    _check_policy("opt_state_shardings", policy)
    shapes = {path_str(p): tuple(np.shape(x)) for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}

    def place(path, leaf):
        parts = path_str(path).split("/")
        shape = tuple(np.shape(leaf))
        for i in range(len(parts)):
            tail = "/".join(parts[i:])
            if shapes.get(tail) == shape:
                return _sharding(policy, tail, leaf)
        return _sharding(policy, None, leaf)

    return jax.tree_util.tree_map_with_path(place, opt_state)


def train_state_shardings(policy: ShardingPolicy, params, state, opt_state):
    """``(param_shardings, state_shardings, opt_state_shardings)``."""
    return (param_shardings(policy, params), state_shardings(policy, state),
            opt_state_shardings(policy, opt_state, params))


def batch_sharding(policy: ShardingPolicy) -> NamedSharding:
    """Leading (batch) axis split over ``data``, the rest replicated (over ``model`` too)."""
    _check_policy("batch_sharding", policy)
    return NamedSharding(policy.mesh, P(_batch_axis(policy.mesh)))


def check_batch(who: str, policy: ShardingPolicy, *batch) -> None:
    """Raise ``ValueError`` unless every leaf of ``batch`` has a leading axis that the
    ``data`` axis divides (the global batch is split evenly, nothing is padded)."""
    n = axis_size(policy.mesh, "data")
    for tree in batch:
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            shape = np.shape(leaf)
            if not shape or shape[0] % n:
                where = path_str(path) or "the batch"
                raise ValueError(f"{who}: expected a batch size divisible by the {n} devices of "
                                 f"the mesh's data axis, got {where} of shape {tuple(shape)}")


def shard_batch(policy: ShardingPolicy, *batch):
    """Place ``x, y, ...`` (the global batch, on this one process) with their leading axis
    split over ``data``; raises before any transfer if the batch size does not divide.
    For multi-process input use :func:`fnnet.parallel.process_batch`."""
    _check_policy("shard_batch", policy)
    check_batch("shard_batch", policy, *batch)
    sharding = batch_sharding(policy)
    placed = tuple(place(tree, sharding) for tree in batch)
    return placed[0] if len(placed) == 1 else placed


def shard_state(policy: ShardingPolicy, params, state, opt_state):
    """``(params, state, opt_state)`` placed on the mesh as the policy says."""
    _check_policy("shard_state", policy)
    shardings = train_state_shardings(policy, params, state, opt_state)
    return tuple(place(tree, sh) for tree, sh in zip((params, state, opt_state), shardings))


def shard_population(policy: ShardingPolicy, *trees):
    """Place population trees (``fit_population``'s params, state and ``keys``, leading
    axis = members) with the member axis split over ``data``: each device trains its
    share of the members and no data moves between them. ``fit_population`` called on
    them runs sharded and returns sharded results."""
    _check_policy("shard_population", policy)
    n = axis_size(policy.mesh, "data")
    for tree in trees:
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            shape = np.shape(leaf)
            if not shape or shape[0] % n:
                raise ValueError(f"shard_population: expected a member count divisible by the {n} "
                                 f"devices of the mesh's data axis, got {path_str(path) or 'a leaf'} "
                                 f"of shape {tuple(shape)}")
    sharding = batch_sharding(policy)
    placed = tuple(place(tree, sharding) for tree in trees)
    return placed[0] if len(placed) == 1 else placed
