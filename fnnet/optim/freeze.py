"""Train part of a model: masks over the params from layer names, and frozen optimizers.

A leaf's *path* is its keys joined by ``"/"``: ``"0/kernel"``, ``"features/3/bias"``
(the keys of ``serial``'s children are ``"0"``, ``"1"``, ...; ``nn.summary`` prints
the same paths). A *pattern* selects a leaf when it matches its whole path or any
leading run of its components, by ``fnmatch`` rules: ``"0"`` selects ``"0/kernel"``
and ``"0/bias"`` (but not ``"10/kernel"``), ``"block*"`` selects every leaf under
``"block1"``, ``"block2"``, ..., ``"*/bias"`` every bias one level down.

:func:`freeze_layers` wraps an optimizer so that the selected leaves never move: the inner
optimizer sees only the trainable leaves (``masked``, so its state holds only those:
Adam keeps no moments for a frozen backbone) and the frozen leaves' updates are
``-0.0``, the one float that ``apply_updates`` adds without changing a bit
(``p + (-0.0) == p`` for every ``p``, ``-0.0`` included; ``+0.0`` would turn ``-0.0``
into ``+0.0``).

:func:`stop_gradient` cuts the frozen leaves out of the backward pass
(``jax.lax.stop_gradient``): their weight gradients are never computed, and when the
frozen layers are the first ones (a pretrained feature extractor under a new head)
the backward pass ends at the first trainable layer. The optimizer mask is what
*guarantees* the frozen leaves stay put; ``stop_gradient`` is what saves the compute.

Imports: jax, numpy, fnnet.optim.base.
"""
from __future__ import annotations

import fnmatch
from typing import Any, Callable, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.optim.base import EmptyState, GradientTransformation, chain, masked

__all__ = ["param_paths", "mask_by_name", "check_mask", "freeze_layers", "stop_gradient", "set_to_negative_zero"]

Patterns = Union[str, Sequence[str]]


def _flatten(tree) -> list[tuple[str, Any]]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    out = []
    for path, leaf in flat:
        parts = []
        for k in path:
            if isinstance(k, jax.tree_util.DictKey):
                parts.append(str(k.key))
            elif isinstance(k, jax.tree_util.SequenceKey):
                parts.append(str(k.idx))
            elif isinstance(k, jax.tree_util.GetAttrKey):
                parts.append(k.name)
            else:
                parts.append(str(k))
        out.append(("/".join(parts), leaf))
    return out


def param_paths(params) -> list[str]:
    """The ``"/"``-joined path of every leaf of ``params``, in ``jax.tree`` order."""
    return [p for p, _ in _flatten(params)]


def _as_patterns(names: Patterns, where: str) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad or not names:
        raise TypeError(f"{where}: expected layer names or glob patterns (non-empty strings), "
                        f"got {bad if bad else 'none'}")
    return names


def _matches(path: str, pattern: str) -> bool:
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))


def _layers(paths: Sequence[str]) -> list[str]:
    """The distinct paths with their last component (the leaf name) dropped, in order."""
    seen: dict[str, None] = {}
    for p in paths:
        seen.setdefault(p.rsplit("/", 1)[0] if "/" in p else p, None)
    return list(seen)


def mask_by_name(params, names: Patterns) -> Any:
    """A bool tree over ``params``: True at every leaf selected by one of ``names``.

    Args:
      params: the params pytree (arrays or ``jax.ShapeDtypeStruct`` leaves).
      names: a layer name or glob pattern, or a sequence of them (see the module
        docstring for how a pattern selects leaves).

    Returns:
      A pytree of Python bools with the structure of ``params``.

    Raises:
      KeyError: a pattern selects no leaf (a misspelt layer name); the message lists
        the layers there are.
    """
    patterns = _as_patterns(names, "mask_by_name")
    flat = _flatten(params)
    paths = [p for p, _ in flat]
    unused = [pat for pat in patterns if not any(_matches(p, pat) for p in paths)]
    if unused:
        raise KeyError(f"mask_by_name: no parameter matches {unused}; the layers with parameters are "
                       f"{_layers(paths)}")
    selected = [any(_matches(p, pat) for pat in patterns) for p in paths]
    return jax.tree.unflatten(jax.tree.structure(params), selected)


def check_mask(mask, params, *, where: str = "check_mask") -> None:
    """Raise unless ``mask`` is a tree of bools with the structure of ``params``, or a
    prefix of it (a bool standing for a whole sub-tree, as ``optim.masked`` allows).

    Raises:
      ValueError: a node whose keys differ from the params' (naming the path, the keys
        only in the mask and the keys only in the params), or a list of another length.
      TypeError: a leaf that is not a bool (a 0/1 integer or an array would be taken
        for a sub-tree or broadcast silently).
    """
    def walk(m, p, path):
        where_ = f"at {path!r}" if path else "at the root"
        if isinstance(m, (bool, np.bool_)):
            return
        if isinstance(m, dict):
            if not isinstance(p, dict):
                raise ValueError(f"{where}: mask {where_} is a dict, but the params there are "
                                 f"{type(p).__name__}")
            only_mask, only_params = sorted(set(m) - set(p)), sorted(set(p) - set(m))
            if only_mask or only_params:
                raise ValueError(f"{where}: mask does not match the params {where_}: keys only in the mask "
                                 f"{only_mask}, keys only in the params {only_params}")
            for k in m:
                walk(m[k], p[k], f"{path}/{k}" if path else str(k))
            return
        if isinstance(m, (list, tuple)):
            if not isinstance(p, (list, tuple)) or len(p) != len(m):
                raise ValueError(f"{where}: mask {where_} is a {type(m).__name__} of {len(m)}, but the params "
                                 f"there are {type(p).__name__}"
                                 f"{' of %d' % len(p) if isinstance(p, (list, tuple)) else ''}")
            for i, (a, b) in enumerate(zip(m, p)):
                walk(a, b, f"{path}/{i}" if path else str(i))
            return
        raise TypeError(f"{where}: expected a bool in the mask {where_}, got {type(m).__name__} "
                        f"{m!r:.40}")

    walk(mask, params, "")


def set_to_negative_zero() -> GradientTransformation:
    """Updates ``-0.0`` everywhere: ``apply_updates`` then leaves every bit of the params as
    it was (``p + (-0.0) == p``, whereas ``-0.0 + 0.0`` is ``+0.0``). Stateless."""
    def init(params):
        del params
        return EmptyState()

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: jnp.full_like(g, -0.0), updates), state

    return GradientTransformation(init, update)


MaskLike = Union[Any, Patterns, Callable[[Any], Any]]


def _resolve(frozen: MaskLike, params, where: str):
    if isinstance(frozen, str) or (isinstance(frozen, (list, tuple)) and frozen
                                   and all(isinstance(n, str) for n in frozen)):
        return mask_by_name(params, frozen)
    if callable(frozen):
        frozen = frozen(params)
    check_mask(frozen, params, where=where)
    return frozen


def _invert(mask):
    return jax.tree.map(lambda m: not m, mask)


def freeze_layers(optimizer: GradientTransformation, frozen: MaskLike) -> GradientTransformation:
    """``optimizer`` on the trainable leaves; the ``frozen`` ones stay bit-identical.

    ``chain(masked(optimizer, trainable), masked(set_to_negative_zero(), frozen))``:
    the inner optimizer's state holds only the trainable leaves, and every frozen leaf
    gets the update ``-0.0``.

    Args:
      optimizer: any gradient transformation (fnnet's or optax's).
      frozen: which leaves to freeze: a layer name or glob pattern, or a sequence of
        them (:func:`mask_by_name`), a bool tree (True = frozen) over the params or a
        prefix of them, or a function ``params -> such a tree``. Names and trees are
        checked against the params at ``init`` (and a tree again at ``update``).

    Returns:
      A gradient transformation. Raises at ``init`` when the mask does not fit the
      params (a ``KeyError`` for a name that selects nothing, a ``ValueError`` naming
      the keys that differ, a ``TypeError`` for a non-bool leaf).
    """
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"freeze_layers: expected a gradient transformation, got {type(optimizer).__name__}")

    def frozen_mask(tree):      # resolved (and checked) while tracing init and update
        return _resolve(frozen, tree, "freeze_layers")

    def trainable_mask(tree):
        return _invert(_resolve(frozen, tree, "freeze_layers"))

    inner = chain(masked(optimizer, trainable_mask), masked(set_to_negative_zero(), frozen_mask))
    return GradientTransformation(inner.init, inner.update)


def stop_gradient(params, frozen: MaskLike):
    """``params`` with ``jax.lax.stop_gradient`` on the frozen leaves.

    Call it inside the loss (or wrap a model's apply, see docs/howto/freeze-layers.md):
    ``jax.grad`` then gives exact zeros for the frozen leaves without computing their
    weight gradients, and a frozen first block costs no backward pass at all. The
    forward values are unchanged.

    Args:
      params: the params pytree.
      frozen: as in :func:`freeze_layers`.
    """
    mask = _resolve(frozen, params, "stop_gradient")
    return jax.tree.map(lambda m, sub: jax.tree.map(jax.lax.stop_gradient, sub) if m else sub,
                        mask, params)
