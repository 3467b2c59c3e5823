"""One of two processes of a multi-process run: ``python _worker_mp.py PORT PROCESS_ID OUT``.

Two CPU devices per process, joined by ``fnnet.parallel.initialize`` into one 4-device
mesh; trains ``_programs.mlp`` fully sharded for ``STEPS`` steps from each process's own
rows of the global batch, writes a sharded checkpoint (each process its shards), and
process 0 saves the losses and final params to ``OUT``.
"""
import os
import sys

import jax

jax.config.update("jax_num_cpu_devices", 2)

import fnnet.parallel as par  # noqa: E402

port, process_id, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
par.initialize(f"localhost:{port}", 2, process_id)

import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _programs as programs  # noqa: E402

assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
policy = par.fully_sharded(par.make_mesh())
model, loss_fn, optimizer, params, state, opt_state = programs.setup("mlp")
step = par.make_sharded_train_step(model, loss_fn, optimizer, policy, params, state, opt_state)
params, state, opt_state = par.shard_state(policy, params, state, opt_state)
x, y = programs.data("mlp")
rows = par.process_rows(policy, len(x))
gx, gy = par.process_batch(policy, x[rows], y[rows], global_batch_size=len(x))
key = jax.random.key(7)
losses = []
for i in range(programs.STEPS):
    params, state, opt_state, loss = step(params, state, opt_state, gx, gy, jax.random.fold_in(key, i))
    losses.append(np.asarray(loss.addressable_data(0)))
try:
    import orbax.checkpoint  # noqa: F401  (the optional extra fnnet[parallel])
    par.save_sharded_checkpoint(out + ".ckpt", {"params": params, "opt_state": opt_state})
except ImportError:
    pass
full = multihost_utils.process_allgather(params, tiled=True)
if process_id == 0:
    arrays = programs.flat(full, "params")
    arrays["losses"] = np.asarray(losses)
    arrays["rows"] = np.asarray([rows.start, rows.stop])
    np.savez(out, **arrays)
else:
    np.save(out + ".rows1.npy", np.asarray([rows.start, rows.stop]))
