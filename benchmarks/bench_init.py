"""The first ``init`` of LeNet-5 and ResNet-18: compiled, eager, Flax and Equinox.

The first call is what a user waits for, and JAX's Python-level caches survive
``jax.clear_caches()``, so every timing runs in a FRESH subprocess: it imports,
builds the model, then times one ``init`` up to ``block_until_ready`` (imports and,
for fnnet and Flax, model construction excluded). Rows:

- ``compiled``: ``model.init(key, spec)``, the whole initialisation as one program;
- ``eager``: ``model.init.eager(key, spec)``, as inits ran before, op by op, every
  random draw compiling its own kernel per shape;
- ``flax``: ``flax.linen`` ``Module.init(key, x)`` on a zero image (it runs the forward
  pass); ``equinox``: building the ``eqx.nn`` network (its constructor draws the
  weights). Both are the same layers (LeNet-5 classic with tanh and average pooling;
  ResNet-18 with batch norm), with those libraries' default initialisers.

Rounds are interleaved (one process per row per round, rows in turn) and the script
prints the median of the per-round ratios ``row / compiled`` with their range, and the
load average before and after. Input: LeNet-5 ``(1, 32, 32, 1)``, ResNet-18
``(1, 224, 224, 3)``, 1000 classes.

``--phases`` instead splits the compiled first init, in fresh processes, into its
phases (``fnnet.nn._batched_random.compile_batched``): ``trace`` (the init to a jaxpr,
shape inference included), ``rewrite`` (the batched evaluation of the jaxpr), ``lower``
(to StableHLO), ``compile`` (XLA), ``run`` and ``assemble`` (the parameters cut from
the buffers on the host).

``--before DIR`` adds a row ``before``: the compiled init of the fnnet package found in
``DIR`` (e.g. ``git archive <commit> fnnet | tar -x -C DIR``), in the same rounds.

Run: ``python benchmarks/bench_init.py [--rounds 5] [--models lenet5,resnet18] [--phases]
[--before DIR]``
(Flax and Equinox come with ``pip install -e '.[bench]'``; missing ones are skipped).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROWS = ("compiled", "eager", "flax", "equinox")
SHAPES = {"lenet5": (1, 32, 32, 1), "resnet18": (1, 224, 224, 3)}
CLASSES = {"lenet5": 10, "resnet18": 1000}


def _fnnet(model_name, row):
    import jax
    import jax.numpy as jnp
    from fnnet import models
    model = getattr(models, model_name)(CLASSES[model_name])
    spec = jax.ShapeDtypeStruct(SHAPES[model_name], jnp.float32)
    init = model.init if row == "compiled" else model.init.eager
    key = jax.random.key(0)
    start = time.perf_counter()
    jax.block_until_ready(init(key, spec))
    return time.perf_counter() - start


def _flax(model_name):
    import flax.linen as fnn
    import jax
    import jax.numpy as jnp

    class LeNet5(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            for f in (6, 16):
                x = fnn.avg_pool(jnp.tanh(fnn.Conv(f, (5, 5), padding="VALID")(x)), (2, 2), (2, 2))
            x = x.reshape(x.shape[0], -1)
            x = jnp.tanh(fnn.Dense(84)(jnp.tanh(fnn.Dense(120)(x))))
            return fnn.Dense(10)(x)

    class Block(fnn.Module):
        features: int
        stride: int

        @fnn.compact
        def __call__(self, x):
            bn = lambda: fnn.BatchNorm(use_running_average=True)  # noqa: E731
            y = fnn.relu(bn()(fnn.Conv(self.features, (3, 3), self.stride, padding=1, use_bias=False)(x)))
            y = bn()(fnn.Conv(self.features, (3, 3), padding=1, use_bias=False)(y))
            if self.stride != 1 or x.shape[-1] != self.features:
                x = bn()(fnn.Conv(self.features, (1, 1), self.stride, use_bias=False)(x))
            return fnn.relu(x + y)

    class ResNet18(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            x = fnn.Conv(64, (7, 7), 2, padding=3, use_bias=False)(x)
            x = fnn.relu(fnn.BatchNorm(use_running_average=True)(x))
            x = fnn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
            for i, f in enumerate((64, 128, 256, 512)):
                x = Block(f, 1 if i == 0 else 2)(x)
                x = Block(f, 1)(x)
            return fnn.Dense(1000)(x.mean(axis=(1, 2)))

    model = {"lenet5": LeNet5, "resnet18": ResNet18}[model_name]()
    x = jnp.zeros(SHAPES[model_name], jnp.float32)
    key = jax.random.key(0)
    start = time.perf_counter()
    jax.block_until_ready(model.init(key, x))
    return time.perf_counter() - start


def _equinox(model_name):
    import equinox as eqx
    import jax

    def build(key):
        keys = iter(jax.random.split(key, 64))
        if model_name == "lenet5":
            return [eqx.nn.Conv2d(1, 6, 5, key=next(keys)), eqx.nn.Conv2d(6, 16, 5, key=next(keys)),
                    eqx.nn.Linear(400, 120, key=next(keys)), eqx.nn.Linear(120, 84, key=next(keys)),
                    eqx.nn.Linear(84, 10, key=next(keys))]
        layers = [eqx.nn.Conv2d(3, 64, 7, 2, 3, use_bias=False, key=next(keys)),
                  eqx.nn.BatchNorm(64, "batch", inference=True, mode="batch")]
        c_in = 64
        for i, f in enumerate((64, 128, 256, 512)):
            for j in range(2):
                stride = 2 if i > 0 and j == 0 else 1
                layers += [eqx.nn.Conv2d(c_in, f, 3, stride, 1, use_bias=False, key=next(keys)),
                           eqx.nn.BatchNorm(f, "batch", inference=True, mode="batch"),
                           eqx.nn.Conv2d(f, f, 3, 1, 1, use_bias=False, key=next(keys)),
                           eqx.nn.BatchNorm(f, "batch", inference=True, mode="batch")]
                if stride != 1 or c_in != f:
                    layers += [eqx.nn.Conv2d(c_in, f, 1, stride, use_bias=False, key=next(keys)),
                               eqx.nn.BatchNorm(f, "batch", inference=True, mode="batch")]
                c_in = f
        return layers + [eqx.nn.Linear(512, 1000, key=next(keys))]

    key = jax.random.key(0)
    start = time.perf_counter()
    jax.block_until_ready(eqx.filter(build(key), eqx.is_array))
    return time.perf_counter() - start


def _phases(model_name):
    import jax
    import jax.numpy as jnp
    from fnnet import models
    from fnnet.nn._batched_random import compile_batched
    from fnnet.nn.module import _INIT_COMPILER_OPTIONS
    model = getattr(models, model_name)(CLASSES[model_name])
    spec = jax.ShapeDtypeStruct(SHAPES[model_name], jnp.float32)
    key = jax.random.key(0)
    timings = {}
    start = time.perf_counter()
    run = compile_batched(lambda k: model.init._traced(k, spec), key,
                          compiler_options=_INIT_COMPILER_OPTIONS, timings=timings)
    jax.block_until_ready(run(key))
    timings["total"] = time.perf_counter() - start
    return timings


def worker(model_name, row):
    if row == "phases":
        print(json.dumps(_phases(model_name)))
        return
    seconds = _fnnet(model_name, row) if row in ("compiled", "eager") else {
        "flax": _flax, "equinox": _equinox}[row](model_name)
    print(f"{seconds:.6f}")


def available(row):
    if row in ("compiled", "eager"):
        return True
    try:
        __import__({"flax": "flax.linen", "equinox": "equinox"}[row])
        return True
    except ImportError:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", default="lenet5,resnet18")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--phases", action="store_true", help="time the phases of the compiled init")
    parser.add_argument("--before", metavar="DIR", help="add a row: the compiled init of DIR/fnnet")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "ROW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    print(f"load average {os.getloadavg()[0]:.2f}")
    if args.phases:
        for model_name in args.models.split(","):
            runs = [json.loads(subprocess.run([sys.executable, __file__, "--worker", model_name, "phases"],
                                              check=True, capture_output=True, text=True).stdout.split("\n")[-2])
                    for _ in range(args.rounds)]
            print(f"{model_name}: compiled first init by phase, median of {args.rounds} fresh processes (s)")
            print("  " + "  ".join(f"{k} {statistics.median(r[k] for r in runs):.3f}" for k in runs[0]))
        print(f"load average {os.getloadavg()[0]:.2f}")
        return
    rows = [r for r in args.rows.split(",") if available(r)]
    if args.before:
        rows.insert(1, "before")
    for model_name in args.models.split(","):
        times = {r: [] for r in rows}
        for _ in range(args.rounds):
            for row in rows:
                env = dict(os.environ)
                if row == "before":
                    env["PYTHONPATH"] = os.path.abspath(args.before)
                out = subprocess.run([sys.executable, __file__, "--worker", model_name,
                                      "compiled" if row == "before" else row],
                                     check=True, capture_output=True, text=True, env=env).stdout
                times[row].append(float(out.split()[-1]))
        print(f"{model_name}: first init, {args.rounds} fresh processes per row, interleaved")
        for row in rows:
            ratios = [t / c for t, c in zip(times[row], times["compiled"])]
            print(f"  {row:9s} median {statistics.median(times[row]):7.2f} s  "
                  f"(min {min(times[row]):6.2f}, max {max(times[row]):6.2f})  "
                  f"median ratio / compiled {statistics.median(ratios):5.2f} "
                  f"(range {min(ratios):.2f}-{max(ratios):.2f})")
        print(f"load average {os.getloadavg()[0]:.2f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
