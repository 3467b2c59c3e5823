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

Imports: jax.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax

__all__ = ["Placement"]


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
        return (jax.device_put(params, self.params), jax.device_put(state, self.state),
                jax.device_put(opt_state, self.opt_state))

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
