"""Device meshes with the named axes ``("data", "model")``.

``data`` splits the batch (data parallel, fully sharded); ``model`` splits weight
matrices (tensor parallel). Both axes are ``AxisType.Auto``: the program is written
for one device and XLA's partitioner (GSPMD) inserts the collectives, so a sharded
step computes the same function as the single-device one.

Imports: jax, numpy.
"""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

__all__ = ["AXES", "make_mesh", "axis_size", "check_mesh"]

AXES = ("data", "model")


def make_mesh(data: int | None = None, model: int = 1, devices: Sequence | None = None) -> Mesh:
    """A ``data x model`` mesh with axes ``("data", "model")``.

    Args:
      data: devices along the batch axis; default ``len(devices) // model``.
      model: devices along the tensor-parallel axis (1: no tensor parallelism).
      devices: the devices to lay out, in order; default ``jax.devices()`` (every
        device of every process). With ``devices`` omitted and ``data * model`` smaller
        than the device count, the first ``data * model`` devices are used (e.g. a
        4-device mesh on an 8-device host, to restore a checkpoint onto it).

    Returns:
      ``jax.sharding.Mesh`` of shape ``(data, model)``.

    Raises:
      ValueError: a size below 1, a device count that ``model`` does not divide, or
        more devices asked for than there are, before any device is touched.
    """
    explicit = devices is not None
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    for name, size in (("data", data), ("model", model)):
        if size is not None and (not isinstance(size, (int, np.integer)) or size < 1):
            raise ValueError(f"make_mesh: expected {name} to be a positive int, got {size!r}")
    if data is None:
        if n % model:
            raise ValueError(f"make_mesh: expected a device count divisible by model={model}, "
                             f"got {n} devices")
        data = n // model
    want = data * model
    if want > n or (explicit and want != n):
        raise ValueError(f"make_mesh: expected data * model = {data} * {model} = {want} "
                         f"{'devices' if explicit else 'devices at most'}, got {n} devices")
    grid = np.asarray(devices[:want], dtype=object).reshape(data, model)
    auto = jax.sharding.AxisType.Auto
    return Mesh(grid, AXES, axis_types=(auto, auto))


def check_mesh(who: str, mesh) -> None:
    """Raise if ``mesh`` is not a ``Mesh`` or has an axis other than ``data``/``model``."""
    if not isinstance(mesh, Mesh):
        raise TypeError(f"{who}: expected a jax.sharding.Mesh (see fnnet.parallel.make_mesh), "
                        f"got {type(mesh).__name__}")
    unknown = [a for a in mesh.axis_names if a not in AXES]
    if unknown:
        raise ValueError(f"{who}: expected mesh axes among {AXES}, got {tuple(mesh.axis_names)} "
                         f"(unknown: {unknown})")


def axis_size(mesh: Mesh, axis: str) -> int:
    """Devices along ``axis``; 1 for an axis the mesh lacks."""
    return int(dict(mesh.shape).get(axis, 1))
