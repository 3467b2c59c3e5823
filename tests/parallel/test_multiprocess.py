"""A real multi-process run: two processes on localhost, two CPU devices each, joined
by ``fnnet.parallel.initialize`` (``jax.distributed``), train the MLP of ``_programs``
fully sharded from each process's own half of the batch; losses and params equal the
single-process, single-device run, and the checkpoint that both processes wrote
(each its shards) restores in this process onto one device.
"""
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _programs as programs  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(worker: str, out: str, timeout: int = 300) -> None:
    """``python WORKER PORT PROCESS_ID OUT`` as processes 0 and 1, joined on a free port;
    fails with both processes' output unless both exit 0."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, worker), str(port), str(i), out],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    logs = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=timeout)
            logs.append(stdout + stderr[-3000:])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), "\n---\n".join(logs)


def test_two_processes_train_like_one(tmp_path):
    out = str(tmp_path / "mp.npz")
    run_two_processes("_worker_mp.py", out)

    got = dict(np.load(out))
    assert got["rows"].tolist() == [0, 8] and np.load(out + ".rows1.npy").tolist() == [8, 16]
    reference = programs.run("mlp")
    np.testing.assert_allclose(got["losses"], reference["losses"], rtol=1e-6)
    for name, want in reference.items():
        if name.startswith("params"):
            err = np.linalg.norm(got[name] - want) / np.linalg.norm(want)
            assert err <= 1e-6, f"{name}: relative error {err:.2e}"

    pytest.importorskip("orbax.checkpoint")
    # Orbax's layout: one ocdbt store per writing process
    assert sorted(n for n in os.listdir(out + ".ckpt") if n.startswith("ocdbt.process_")) == [
        "ocdbt.process_0", "ocdbt.process_1"]
    import fnnet.parallel as par
    _, _, _, params, _, opt_state = programs.setup("mlp")
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    restored = par.load_sharded_checkpoint(out + ".ckpt", {"params": params, "opt_state": opt_state},
                                           jax.tree.map(lambda _: device, {"params": params, "opt_state": opt_state}))
    for name, leaf in programs.flat(restored["params"], "params").items():
        np.testing.assert_array_equal(leaf, got[name])
    assert int(restored["opt_state"][0].count) == programs.STEPS
