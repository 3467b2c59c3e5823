"""The gradient-transformation protocol and its plumbing: ``GradientTransformation``,
``chain``, ``apply_updates``, ``identity``, ``scale``, ``scale_by_schedule``,
``scale_by_learning_rate``, ``masked`` and ``flatten``.

A gradient transformation is a named pair of pure functions, as in optax::

    init(params)                         -> state
    update(updates, state, params=None)  -> (updates, state)

``GradientTransformation`` is a ``NamedTuple`` with the same two fields as optax's, so
fnnet and optax transforms chain with each other in either direction
(``fnnet.optim.chain(optax.clip(1.0), fnnet.optim.adam(1e-3))`` and
``optax.chain(fnnet.optim.clip(1.0), optax.adam(1e-3))`` both work). States are
``NamedTuple``s whose array fields mirror the params tree.

Imports: jax only.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = ["GradientTransformation", "EmptyState", "ScaleByScheduleState", "MaskedState", "MaskedNode",
           "Schedule", "ScalarOrSchedule", "identity", "chain", "apply_updates", "scale",
           "scale_by_schedule", "scale_by_learning_rate", "masked", "flatten", "safe_increment"]

Params = Any
Updates = Any
OptState = Any
Schedule = Callable[[jax.typing.ArrayLike], jax.typing.ArrayLike]
ScalarOrSchedule = Union[float, jax.Array, Schedule]


class GradientTransformation(NamedTuple):
    """A pair of pure functions ``init(params) -> state`` and
    ``update(updates, state, params=None) -> (updates, state)``.

    ``updates`` enter as gradients and leave as the step to add to the params
    (:func:`apply_updates`); all memory between steps lives in ``state``.
    """
    init: Callable[[Params], OptState]
    update: Callable[..., tuple[Updates, OptState]]


class EmptyState(NamedTuple):
    """The state of a stateless transformation (an empty pytree)."""


class ScaleByScheduleState(NamedTuple):
    """The step counter ``count`` (int32 scalar) of a scheduled transformation."""
    count: jax.Array


def init_empty_state(params: Params) -> EmptyState:
    """``init`` of a stateless transformation."""
    del params
    return EmptyState()


def safe_increment(count: jax.Array) -> jax.Array:
    """``count + 1``, saturating at the largest value of ``count``'s dtype instead of wrapping."""
    count = jnp.asarray(count)
    if jnp.issubdtype(count.dtype, jnp.integer):
        top = jnp.iinfo(count.dtype).max
    elif jnp.issubdtype(count.dtype, jnp.floating):
        top = jnp.finfo(count.dtype).max
    else:
        raise TypeError(f"safe_increment: expected an integer or floating counter, got dtype {count.dtype}")
    top = jnp.array(top, count.dtype)
    return jnp.where(count < top, count + jnp.array(1, count.dtype), top)


def _zero_count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


def identity() -> GradientTransformation:
    """Leave the updates unchanged: ``u = g``."""

    def update(updates, state, params=None):
        del params
        return updates, state

    return GradientTransformation(init_empty_state, update)


def _accepts_extra_args(update: Callable) -> bool:
    try:
        parameters = inspect.signature(update).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _check_transform(name: str, tx) -> None:
    if not (hasattr(tx, "init") and hasattr(tx, "update")):
        raise TypeError(f"{name}: expected gradient transformations with init and update, "
                        f"got {type(tx).__name__}")


def chain(*transforms) -> GradientTransformation:
    """Apply transformations in order: ``u = t_n(... t_2(t_1(g)))``.

    The state is the tuple of the transforms' states (as in optax). Keyword arguments
    given to ``update`` (e.g. ``value=loss``) reach only the transforms whose ``update``
    accepts ``**kwargs`` (optax's ``GradientTransformationExtraArgs``).
    """
    for tx in transforms:
        _check_transform("chain", tx)
    init_fns = tuple(tx.init for tx in transforms)
    update_fns = tuple(tx.update for tx in transforms)
    extra = tuple(_accepts_extra_args(fn) for fn in update_fns)

    def init(params):
        return tuple(fn(params) for fn in init_fns)

    def update(updates, state, params=None, **extra_args):
        if not isinstance(state, tuple) or len(state) != len(update_fns):
            raise ValueError(f"chain: expected a state tuple of {len(update_fns)} transform states "
                             f"(call init first), got {type(state).__name__}"
                             f"{' of length %d' % len(state) if isinstance(state, tuple) else ''}")
        new_state = []
        for fn, s, takes_extra in zip(update_fns, state, extra):
            if takes_extra:
                updates, s = fn(updates, s, params, **extra_args)
            else:
                updates, s = fn(updates, s, params)
            new_state.append(s)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


def apply_updates(params: Params, updates: Updates) -> Params:
    """``params + updates`` leaf by leaf, keeping each param's dtype."""
    return jax.tree.map(
        lambda p, u: None if p is None else jnp.asarray(p + u).astype(jnp.asarray(p).dtype),
        params, updates, is_leaf=lambda x: x is None)


def scale(step_size: jax.typing.ArrayLike) -> GradientTransformation:
    """Multiply by a constant: ``u = step_size * g``."""

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: step_size * g, updates), state

    return GradientTransformation(init_empty_state, update)


def scale_by_schedule(step_size_fn: Schedule) -> GradientTransformation:
    """Multiply by a schedule of the step count: ``u_t = s(t) g_t``, ``t = 0, 1, ...``.

    The state counts the updates done; ``s(t)`` is cast to each leaf's dtype.
    """
    if not callable(step_size_fn):
        raise TypeError(f"scale_by_schedule: expected a schedule count -> value, got "
                        f"{type(step_size_fn).__name__}")

    def init(params):
        del params
        return ScaleByScheduleState(count=_zero_count())

    def update(updates, state, params=None):
        del params
        step_size = step_size_fn(state.count)
        updates = jax.tree.map(lambda g: jnp.array(step_size, dtype=g.dtype) * g, updates)
        return updates, ScaleByScheduleState(count=safe_increment(state.count))

    return GradientTransformation(init, update)


def scale_by_learning_rate(learning_rate: Optional[ScalarOrSchedule], *,
                           flip_sign: bool = True) -> GradientTransformation:
    """``u = -lr g`` (``+lr g`` with ``flip_sign=False``) for a float or a schedule.

    ``None`` gives the identity (optax's convention, used by ``adadelta``).
    """
    if learning_rate is None:
        return identity()
    sign = -1 if flip_sign else 1
    if callable(learning_rate):
        return scale_by_schedule(lambda count: sign * learning_rate(count))
    return scale(sign * learning_rate)


class MaskedState(NamedTuple):
    """State of :func:`masked`: the inner transform's state on the selected leaves."""
    inner_state: Any


class MaskedNode(NamedTuple):
    """Placeholder for a leaf left out by a mask (a pytree node without children)."""


def _mask_is_callable(mask) -> bool:
    leaves = jax.tree.leaves(jax.tree.map(callable, mask))
    return len(leaves) > 0 and all(leaves)


def masked(inner, mask) -> GradientTransformation:
    """Apply ``inner`` only to the leaves where ``mask`` is True; pass the rest through.

    ``mask`` is a pytree of bools with the params' structure (or a prefix of it), or a
    function ``params -> such a pytree``. The inner state holds the selected leaves only.
    """
    _check_transform("masked", inner)
    takes_extra = _accepts_extra_args(inner.update)

    def select(tree, mask_tree):
        return jax.tree.map(lambda m, x: x if m else MaskedNode(), mask_tree, tree)

    def init(params):
        mask_tree = mask(params) if _mask_is_callable(mask) else mask
        return MaskedState(inner_state=inner.init(select(params, mask_tree)))

    def update(updates, state, params=None, **extra_args):
        mask_tree = mask(updates) if _mask_is_callable(mask) else mask
        sub_params = None if params is None else select(params, mask_tree)
        args = (select(updates, mask_tree), state.inner_state, sub_params)
        new_sub, inner_state = inner.update(*args, **extra_args) if takes_extra else inner.update(*args)
        new_updates = jax.tree.map(lambda m, new, old: new if m else old, mask_tree, new_sub, updates)
        return new_updates, MaskedState(inner_state=inner_state)

    return GradientTransformation(init, update)


def flatten(inner) -> GradientTransformation:
    """Run ``inner`` on all parameters raveled into one vector (optax's ``flatten``).

    ``v = concat_i ravel(g_i)``; ``inner`` updates ``v``; the result is split back into
    the params' tree. For an elementwise ``inner`` (clipping, SGD, Adagrad, Adam...) the
    updates are bitwise those of ``inner`` itself; what changes is the compiled program:
    one fused update over one vector instead of one per leaf, which is faster for models
    with many small leaves, where the per-leaf launches dominate. A transform that
    treats leaves separately sees the whole vector as one leaf; leaves of mixed dtypes
    are promoted to a common one (``jax.flatten_util.ravel_pytree``).
    """
    _check_transform("flatten", inner)
    takes_extra = _accepts_extra_args(inner.update)

    def init(params):
        return inner.init(ravel_pytree(params)[0])

    def update(updates, state, params=None, **extra_args):
        flat, unravel = ravel_pytree(updates)
        flat_params = None if params is None else ravel_pytree(params)[0]
        args = (flat, state, flat_params)
        flat, state = inner.update(*args, **extra_args) if takes_extra else inner.update(*args)
        return unravel(flat), state

    return GradientTransformation(init, update)
