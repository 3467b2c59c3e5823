"""One of two processes of a multi-process ``fit``: ``python _worker_fit_mp.py PORT PROCESS_ID OUT``.

Two CPU devices per process, joined by ``fnnet.parallel.initialize`` into one 4-device
mesh. ``fit`` trains ``_programs.mlp`` fully sharded for 2 epochs writing a checkpoint,
then a second ``fit`` call resumes from it for a third epoch; process 0 saves the
history and the final params (gathered from both processes) to ``OUT``.
"""
import os
import sys

import jax

jax.config.update("jax_num_cpu_devices", 2)

import fnnet.parallel as par  # noqa: E402

port, process_id, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
par.initialize(f"localhost:{port}", 2, process_id)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _programs as programs  # noqa: E402
from fnnet.train import fit, to_host  # noqa: E402

assert jax.process_count() == 2 and jax.device_count() == 4
model, loss_fn, optimizer, params, state, _ = programs.setup("mlp")
(x, y), dev = programs.fit_data()
policy = par.fully_sharded(par.make_mesh())
common = dict(key=jax.random.key(3), batch_size=programs.BATCH, dev_data=dev,
              metrics={"accuracy": programs.accuracy}, checkpoint=out + ".ckpt.npz", policy=policy)
fit(model, loss_fn, optimizer, params, state, (x, y), epochs=2, **common)
fitted = fit(model, loss_fn, optimizer, params, state, (x, y), epochs=3, resume=True, **common)
final = to_host(fitted.params)  # every process gathers
if process_id == 0:
    arrays = programs.flat(final, "params")
    arrays["train_loss"] = np.asarray([h["train_loss"] for h in fitted.history])
    arrays["dev_loss"] = np.asarray([h["dev_loss"] for h in fitted.history])
    np.savez(out, **arrays)
