"""Where the training loop's arrays live when it runs on a device mesh.

:func:`fnnet.train.fit` takes ``policy=`` (a sharding policy from
:mod:`fnnet.parallel`: ``data_parallel(mesh)``, ``fully_sharded(mesh)``,
``tensor_parallel(mesh)``); the policy's ``placement(params, state, opt_state)`` gives
a :class:`Placement`, and the loop compiles the very steps it runs on one device with
those shardings (GSPMD): params, state and optimizer state stay where the policy put
them, every batch is split over the mesh's ``data`` axis, the data set, keys and losses
are replicated. The loss is the mean over the global batch, so the numbers equal the
single-device run up to the order of floating-point sums.

This module only describes placements (``jax.sharding`` objects); the policies that
build them live in :mod:`fnnet.parallel`, which imports this package, not the reverse.

In a run over several processes (``fnnet.parallel.initialize``) every process calls
``fit`` with the same arguments and the same data; each global batch is taken from the
replicated data set inside the compiled step, so no process loads rows by hand.

Imports: jax, numpy.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

__all__ = ["Placement", "place", "to_host"]


class Placement(NamedTuple):
    """Shardings for one training run.

    Attributes:
      params, state, opt_state: pytrees of ``jax.sharding.Sharding`` matching the
        training variables.
      batch: the sharding of a batch (leading axis split over the data axis).
      replicated: a copy on every device (the data set, keys, losses, metrics).
      data_devices: devices along the data axis; every batch size must divide by it.
    """
    params: Any
    state: Any
    opt_state: Any
    batch: jax.sharding.Sharding
    replicated: jax.sharding.Sharding
    data_devices: int

    def put(self, params, state, opt_state):
        """``(params, state, opt_state)`` moved to their shardings."""
        return place(params, self.params), place(state, self.state), place(opt_state, self.opt_state)

    def check_batches(self, who: str, n: int, batch_size: int, drop_last: bool) -> None:
        """Raise ``ValueError`` unless every batch of ``n`` examples divides over the data axis."""
        d = self.data_devices
        if batch_size % d:
            raise ValueError(f"{who}: expected a batch_size divisible by the {d} devices of the "
                             f"mesh's data axis, got {batch_size}")
        last = n % batch_size
        if last and not drop_last and last % d:
            raise ValueError(f"{who}: the last batch of an epoch has {n} % {batch_size} = {last} "
                             f"examples, not divisible by the {d} devices of the mesh's data "
                             "axis; pass drop_last=True or another batch_size")


def place(tree, sharding):
    """``jax.device_put(tree, sharding)`` (one sharding, or a tree of them matching
    ``tree``), also onto the devices of several processes.

    JAX moves an array that one process holds onto devices of other processes only from
    host memory, so such an array goes through the host first; in a multi-process run
    every process must pass the same values.
    """
    def one(leaf, target):
        if (isinstance(target, jax.sharding.Sharding) and not target.is_fully_addressable
                and isinstance(leaf, jax.Array) and leaf.is_fully_addressable):
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                data = jax.device_put(np.asarray(jax.random.key_data(leaf)), target)
                return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
            return jax.device_put(np.asarray(leaf), target)
        return jax.device_put(leaf, target)

    if isinstance(sharding, jax.sharding.Sharding):
        return jax.tree.map(lambda leaf: one(leaf, sharding), tree)
    return jax.tree.map(one, tree, sharding)


def to_host(tree):
    """``tree`` with every array as a NumPy array on this host.

    An array split over the devices of several processes (fully sharded params in a
    multi-process run) is gathered from all of them: a collective, so every process must
    call it at the same point. Arrays this process can read whole (single-process
    arrays, replicated ones) are copied without communication; PRNG keys stay keys.
    """
    def fetch(leaf):
        if (isinstance(leaf, jax.Array) and not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
                and not leaf.is_fully_addressable and not leaf.is_fully_replicated):
            from jax.experimental import multihost_utils
            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return leaf
        return np.asarray(leaf) if isinstance(leaf, (jax.Array, np.ndarray)) else leaf

    return jax.tree.map(fetch, tree)


def placement_of(who: str, policy, params, state, opt_state) -> Placement:
    """``policy.placement(params, state, opt_state)``, with a clear error for anything
    that is not a sharding policy."""
    make = getattr(policy, "placement", None)
    if not callable(make):
        raise TypeError(f"{who}: expected a sharding policy as policy (fnnet.parallel."
                        f"data_parallel(mesh), fully_sharded(mesh) or tensor_parallel(mesh)), "
                        f"got {type(policy).__name__}")
    placement = make(params, state, opt_state)
    if not isinstance(placement, Placement):
        raise TypeError(f"{who}: policy.placement(...) must return a fnnet.train.Placement, "
                        f"got {type(placement).__name__}")
    return placement
