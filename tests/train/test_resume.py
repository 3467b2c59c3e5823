"""fit(..., checkpoint=..., resume=True): a run interrupted at any step (an exception in
process, SIGKILL of a subprocess) and resumed ends bit-identical to the uninterrupted
run, early stopping included; a checkpoint of another run is refused naming the
difference; a non-finite update is never written to the checkpoint."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import losses, nn, optim, train
from fnnet.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# One problem, shared by the in-process tests and the subprocess script: 48 examples in
# batches of 8 (6 steps an epoch), dropout (so every step's key matters), Adam (an
# optimizer state), and a dev set whose loss is lowest at epoch 4, so early stopping
# has a best epoch, best params and a patience counter to carry over a resume.
PROBLEM = """
import numpy as np, jax, jax.numpy as jnp
from fnnet import losses, nn, optim, train

def problem(epochs, patience):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)
    xd = rng.normal(size=(16, 5)).astype(np.float32)
    yd = (xd[:, 0] > 0.3).astype(np.int32)
    model = nn.serial(nn.dense(8), nn.relu, nn.dropout(0.3), nn.dense(2))
    params, state = model.init(jax.random.key(0), x)
    accuracy = lambda out, t: jnp.mean(jnp.argmax(out, -1) == t)

    def run(checkpoint=None, resume=False, log=None, **changes):
        kw = dict(key=jax.random.key(1), epochs=epochs, batch_size=8, dev_data=(xd, yd),
                  metrics={"accuracy": accuracy}, early_stopping=train.EarlyStopping(patience=patience),
                  checkpoint=checkpoint, resume=resume, log=log)
        kw.update(changes)
        return train.fit(kw.pop("model", model), losses.softmax_cross_entropy_with_integer_labels,
                         kw.pop("optimizer", optim.adam(0.03)), kw.pop("params", params), state,
                         kw.pop("train_data", (x, y)), **kw)
    return run
"""
exec(PROBLEM)  # defines problem()

STEPS_PER_EPOCH = 6


def leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(la, lb):
        assert np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(np.asarray(x), np.asarray(y))


def assert_same_result(got, want):
    leaves_equal(got.params, want.params)
    leaves_equal(got.state, want.state)
    leaves_equal(got.opt_state, want.opt_state)
    assert got.history == want.history
    assert (got.best_epoch, got.stopped_early) == (want.best_epoch, want.stopped_early)


def saved_entry(path, name):
    """An entry of a checkpoint read with plain NumPy, by its tree path."""
    with np.load(path, allow_pickle=False) as f:
        paths = list(f["__paths__"])
        return f[f"leaf_{paths.index(name)}"]


class Interrupted(Exception):
    pass


def interrupt_at_call(monkeypatch, n):
    """Make the next fit's train step raise on its ``n``-th call (0-based)."""
    real = loop.make_train_step

    def make(*args, **kwargs):
        step, calls = real(*args, **kwargs), [0]

        def wrapped(*a):
            if calls[0] == n:
                raise Interrupted(f"step call {n}")
            calls[0] += 1
            return step(*a)
        return wrapped

    monkeypatch.setattr(loop, "make_train_step", make)


def test_resume_after_exceptions_at_chosen_steps_is_bit_identical(tmp_path, monkeypatch):
    run = problem(epochs=14, patience=4)
    full = run()
    # The defect this guards: the best epoch (4) comes before the interruptions below,
    # so the best value, best params and the patience count must come from the file.
    assert full.stopped_early and full.best_epoch == 4 and len(full.history) == 9
    path = tmp_path / "run.ckpt"
    # Interrupt at the last step of epoch 2, the first step of epoch 5, mid-epoch 6
    # (global steps 11, 24, 32), then in `log` after epoch 8's checkpoint; then finish.
    for resume_epoch, call, expect_epoch in ((0, 11, 1), (1, 24 - 6, 4), (4, 32 - 24, 5)):
        interrupt_at_call(monkeypatch, call)
        with pytest.raises(Interrupted):
            run(path, resume=True)
        monkeypatch.undo()
        assert int(saved_entry(path, "['epoch']")) == expect_epoch, (resume_epoch, call)

    def stop_at_epoch_8(entry):
        if entry["epoch"] == 8:
            raise Interrupted("log")

    with pytest.raises(Interrupted):
        run(path, resume=True, log=stop_at_epoch_8)
    assert int(saved_entry(path, "['epoch']")) == 8
    # What a write killed mid-way leaves behind (see the SIGKILL test) is cleared on resume.
    (tmp_path / ".run.ckpt.k1ll3d.tmp").write_bytes(b"PK\x03\x04 half")
    (tmp_path / ".other.ckpt.x.tmp").write_bytes(b"not ours")
    logged = []
    resumed = run(path, resume=True, log=logged.append)
    assert [e["epoch"] for e in logged] == [9]  # only the epoch this call ran
    assert_same_result(resumed, full)
    # A finished (early-stopped) run resumed again trains no more and returns the same.
    again = run(path, resume=True, log=logged.append)
    assert len(logged) == 1
    assert_same_result(again, full)
    assert sorted(os.listdir(tmp_path)) == [".other.ckpt.x.tmp", "run.ckpt"]


def test_resume_refuses_another_run_naming_the_difference(tmp_path):
    run = problem(epochs=2, patience=4)
    path = tmp_path / "run.ckpt"
    run(path)
    before = path.read_bytes()
    x = np.asarray(jax.random.normal(jax.random.key(5), (40, 5)), np.float32)
    wide = nn.serial(nn.dense(9), nn.relu, nn.dropout(0.3), nn.dense(2))
    deep = nn.serial(nn.dense(8), nn.relu, nn.dropout(0.3), nn.dense(2), nn.relu, nn.dense(2))
    cases = [
        (dict(model=wide, params=wide.init(jax.random.key(0), x)[0]),
         r"holds params\['0'\]\['bias'\] as float32\[8\], but fit was given float32\[9\]"),
        (dict(model=deep, params=deep.init(jax.random.key(0), x)[0]),
         r"different params structure: leaves only in the checkpoint: \[\]; only in fit's arguments: "
         r"\[\"params\['5'\]\['bias'\]\", \"params\['5'\]\['kernel'\]\"\]"),
        (dict(optimizer=optim.sgd(0.1, momentum=0.9)), r"different opt_state structure"),
        (dict(key=jax.random.key(2)),
         r"was written with key data \[0, 1\] but fit was given \[0, 2\]"),
        (dict(train_data=(x, np.zeros(40, np.int32))),
         r"was written with train_data x float32\[48, 5\], y int32\[48\] but fit was given "
         r"x float32\[40, 5\], y int32\[40\]"),
        (dict(batch_size=16), r"was written with batch_size 8 but fit was given 16"),
        (dict(early_stopping=train.EarlyStopping(patience=3)), r"was written with early_stopping .*patience=4"),
        (dict(epochs=1), r"holds epoch 2 \(step 12\) but fit was given epochs=1 \(6 steps\)"),
    ]
    for changes, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            run(path, resume=True, **changes)
        assert str(path) in str(info.value)
        assert path.read_bytes() == before  # refused before any training
    # A file that save_checkpoint wrote, not fit, and a damaged one.
    other = tmp_path / "other.ckpt"
    train.save_checkpoint(other, {"w": np.ones(2)})
    with pytest.raises(train.CheckpointError, match=r"other.ckpt lacks \['settings'\].*not written by fit"):
        run(other, resume=True)
    other.write_bytes(before[:len(before) // 3])
    with pytest.raises(train.CheckpointError, match=r"other.ckpt is damaged or truncated"):
        run(other, resume=True)


def test_a_non_finite_update_is_never_written_full_batch(tmp_path):
    # Linear least squares in full batch (one step an epoch), with a learning rate that
    # blows up to inf at step 3: the loss of step 3 is computed before its update and
    # is finite; the update makes the weights infinite.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    y = x @ np.asarray([1.0, -2.0, 0.5], np.float32)
    model = nn.dense(1)
    params, state = model.init(jax.random.key(0), x)
    mse = lambda out, t: jnp.mean((out[:, 0] - t) ** 2)
    rate = lambda count: jnp.where(count < 3, 0.05, jnp.inf)
    path = tmp_path / "run.ckpt"
    with pytest.raises(FloatingPointError,
                       match=r"the update of step 3 \(epoch 4, batch 0\) made params\['(bias|kernel)'\] "
                             r"(inf|nan) \(the step's loss was finite, [0-9.e+-]+\); the checkpoint .*run.ckpt "
                             r"holds epoch 3, the last with finite numbers"):
        train.fit(model, mse, optim.sgd(rate), params, state, (x, y), key=jax.random.key(0), epochs=6,
                  batch_size=32, shuffle=False, checkpoint=path)
    assert int(saved_entry(path, "['epoch']")) == 3
    kernel, bias = saved_entry(path, "['params']['kernel']"), saved_entry(path, "['params']['bias']")
    # Reference: three steps of full-batch gradient descent in float64 NumPy.
    w, b = np.asarray(params["kernel"], np.float64), np.asarray(params["bias"], np.float64)
    for _ in range(3):
        r = x @ w[:, 0] + b[0] - y
        w, b = w - 0.05 * (2 / len(x)) * (x.T @ r)[:, None], b - 0.05 * 2 * np.mean(r)
    np.testing.assert_allclose(kernel, w, rtol=1e-5)
    np.testing.assert_allclose(bias, b, rtol=1e-5)
    assert sorted(os.listdir(tmp_path)) == ["run.ckpt"]


CHILD = PROBLEM + """
import json, sys
out, path, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "resume"
run = problem(epochs=30, patience=14)
sys.stdin.readline()  # started early (imports done), trains when told
result = run(path if path != "-" else None, resume=resume, log=lambda e: print(e["epoch"], flush=True))
np.savez(out + ".npz", *[np.asarray(l) for l in jax.tree.leaves((result.params, result.state, result.opt_state))])
with open(out + ".json", "w") as f:
    json.dump({"history": result.history, "best_epoch": result.best_epoch,
               "stopped_early": result.stopped_early}, f)
"""


def test_resume_after_sigkill_at_random_moments_is_bit_identical(tmp_path):
    """One run killed (SIGKILL) three times at random moments, each time resumed by a
    new process, against an uninterrupted process. The processes share a persistent
    compilation cache (the same executables, loaded instead of recompiled) to keep the
    test short."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = run_dir / "run.ckpt"

    def start(out, checkpoint, mode):
        """A process that imports and builds the problem, then trains on a line of stdin."""
        return subprocess.Popen([sys.executable, str(script), str(tmp_path / out), str(checkpoint), mode],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, cwd=tmp_path)

    def go(proc):
        proc.stdin.write("go\n")
        proc.stdin.flush()

    def finish(proc):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err

    def result(out):
        with np.load(tmp_path / f"{out}.npz") as f:
            leaves = [f[f"arr_{i}"] for i in range(len(f.files))]
        return leaves, json.loads((tmp_path / f"{out}.json").read_text())

    reference = start("reference", "-", "fresh")
    proc = start("run0", path, "resume")
    go(reference)
    assert reference.stdout.readline() == "1\n", reference.communicate()[1]  # compiled, cache filled
    rng = np.random.default_rng(0)
    killed_at = []
    for attempt in range(1, 4):
        following = start(f"run{attempt}", path, "resume")  # imports while `proc` trains
        go(proc)
        seen = []
        while True:
            line = proc.stdout.readline()
            if not line:  # the run finished before its kill (or failed)
                finish(proc)
                break
            assert line.strip().isdigit(), (line, proc.communicate()[1])
            seen.append((int(line), time.monotonic()))
            if len(seen) == 1:
                target = seen[0][0] + int(rng.integers(2, 4))
            if seen[-1][0] == target:
                # Anywhere in the next two epochs: mid-epoch, mid-evaluation or mid-write.
                epoch_time = float(np.median(np.diff([t for _, t in seen[1:]])))
                time.sleep(rng.uniform(0, 2 * epoch_time))
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                if proc.returncode == -signal.SIGKILL:
                    killed_at.append(int(saved_entry(path, "['epoch']")))
                break
        proc = following
        if not line:
            break
    go(proc)  # the last one is not killed
    assert len(killed_at) >= 2, killed_at  # killed mid-run, at increasing epochs
    assert killed_at == sorted(killed_at) and 0 < killed_at[0] and killed_at[-1] < 20
    finish(reference)
    finish(proc)
    want_leaves, want = result("reference")
    got_leaves, got = result(f"run{attempt}")
    assert want["stopped_early"] and want["best_epoch"] < len(want["history"]) < 30
    assert got == want
    assert len(got_leaves) == len(want_leaves)
    for a, b in zip(got_leaves, want_leaves):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert os.listdir(run_dir) == ["run.ckpt"]  # resume cleared any file a killed write left
