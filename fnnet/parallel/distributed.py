"""Several processes, one program: ``jax.distributed`` set-up and host-local batches.

Each process runs the same script; after :func:`initialize`, ``jax.devices()`` lists
every device of every process, a mesh spans them all, and a jitted step runs as one
program. Each process loads only its rows of the global batch
(:func:`process_rows`) and :func:`process_batch` assembles the global array from them
(``jax.make_array_from_process_local_data``).

Launch (two processes on one machine, or one per host with the first host's address):

    FNNET_COORDINATOR=localhost:12355 FNNET_NUM_PROCESSES=2 FNNET_PROCESS_ID=0 python train.py &
    FNNET_COORDINATOR=localhost:12355 FNNET_NUM_PROCESSES=2 FNNET_PROCESS_ID=1 python train.py

where ``train.py`` calls ``fnnet.parallel.initialize()`` before anything else touches
JAX. On a TPU pod slice, or a Slurm / Open MPI / Kubernetes GPU cluster, JAX finds all
three values itself: ``initialize()`` with nothing set calls
``jax.distributed.initialize()``, which reads them from the cluster (run the same
command on every host: ``gcloud compute tpus tpu-vm ssh NAME --worker=all
--command="python train.py"``, or ``srun python train.py``).

Imports: jax, numpy, fnnet.parallel.policies.
"""
from __future__ import annotations

import os

import jax
import numpy as np

from fnnet.parallel.mesh import axis_size
from fnnet.parallel.policies import ShardingPolicy, batch_sharding

__all__ = ["initialize", "process_rows", "process_batch"]

ENV = {"coordinator_address": "FNNET_COORDINATOR", "num_processes": "FNNET_NUM_PROCESSES",
       "process_id": "FNNET_PROCESS_ID"}


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, local_device_ids=None) -> None:
    """``jax.distributed.initialize`` from arguments, else ``FNNET_COORDINATOR``
    (``host:port`` of process 0), ``FNNET_NUM_PROCESSES``, ``FNNET_PROCESS_ID``, else
    JAX's own detection (``JAX_COORDINATOR_ADDRESS``..., TPU, Slurm, MPI).

    Call it once per process, before any other JAX call. CPU devices exchange data
    across processes through gloo (set here; GPUs and TPUs use their own).

    Raises:
      ValueError: an environment variable that is not an integer, or a process id
        outside ``[0, num_processes)``, before any connection is made.
    """
    given = {"coordinator_address": coordinator_address, "num_processes": num_processes,
             "process_id": process_id}
    for name, var in ENV.items():
        if given[name] is None and os.environ.get(var):
            value = os.environ[var]
            if name != "coordinator_address":
                try:
                    value = int(value)
                except ValueError:
                    raise ValueError(f"initialize: expected an integer in {var}, got {value!r}") from None
            given[name] = value
    n, pid = given["num_processes"], given["process_id"]
    if n is not None and n < 1:
        raise ValueError(f"initialize: expected num_processes >= 1, got {n}")
    if n is not None and pid is not None and not 0 <= pid < n:
        raise ValueError(f"initialize: expected process_id in [0, {n}), got {pid}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU backend only
    jax.distributed.initialize(local_device_ids=local_device_ids, **given)


def process_rows(policy: ShardingPolicy, global_batch_size: int) -> slice:
    """The rows ``[start, stop)`` of a global batch that this process's devices hold
    under the policy's batch sharding: load only these on this process.

    Raises:
      ValueError: the batch size does not divide over the ``data`` axis, or this
        process's rows are not one contiguous block (a mesh whose devices are not
        ordered by process).
    """
    n = axis_size(policy.mesh, "data")
    if global_batch_size % n:
        raise ValueError(f"process_rows: expected a global batch size divisible by the {n} devices "
                         f"of the mesh's data axis, got {global_batch_size}")
    sharding = batch_sharding(policy)
    indices = sharding.addressable_devices_indices_map((global_batch_size,)).values()
    rows = sorted({(i[0].start or 0, global_batch_size if i[0].stop is None else i[0].stop)
                   for i in indices})
    start, stop = rows[0][0], rows[-1][1]
    covered = sum(b - a for a, b in rows)
    if covered != stop - start:
        raise ValueError(f"process_rows: expected this process's devices to hold one contiguous "
                         f"block of rows, got {rows}; build the mesh over jax.devices() in order")
    return slice(start, stop)


def process_batch(policy: ShardingPolicy, *local, global_batch_size: int):
    """The global batch arrays, split over ``data``, from each process's own rows
    (``local`` arrays of ``process_rows(policy, global_batch_size)`` rows each)."""
    rows = process_rows(policy, global_batch_size)
    sharding = batch_sharding(policy)
    out = []
    for tree in local:
        def place(a):
            a = np.asarray(a)
            if a.shape[0] != rows.stop - rows.start:
                raise ValueError(f"process_batch: expected {rows.stop - rows.start} local rows "
                                 f"(rows {rows.start}:{rows.stop} of {global_batch_size}), got "
                                 f"shape {a.shape}")
            return jax.make_array_from_process_local_data(sharding, a,
                                                          (global_batch_size, *a.shape[1:]))
        out.append(jax.tree.map(place, tree))
    return out[0] if len(out) == 1 else tuple(out)
