"""The im2col conv's reverse-mode speed, before and after it became forward-mode safe.

Until the transform-safety change, ``fnnet.functional.conv._conv_im2col`` was a
``jax.custom_vjp`` with a hand-written backward (``dK = (dY^T P)^T``,
``dx = im2col^T(dY K^T)``), so ``jax.jvp`` through it raised. It is now a
``jax.custom_jvp`` whose tangent is written so that JAX's transpose of it is the same
backward. This benchmark keeps the old kernel here (``_custom_vjp_im2col``), swaps it in
for the ``before`` rows, and times the LeNet-5 train step of ``bench_conv.py`` and a
LeNet-style single conv layer's gradient with each, side by side in interleaved rounds.
It prints the median per-round ratio ``now / before`` (1.00 = unchanged).

Run: ``python benchmarks/bench_conv_jvp.py [--rounds 9]``.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import bench_conv
from fnnet import functional as F

conv_module = sys.modules["fnnet.functional.conv"]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _custom_vjp_im2col(x, kernel, stride, pads, dilation):
    """The kernel as it was: ``P K`` with a hand-written backward (custom_vjp)."""
    return _fwd(x, kernel, stride, pads, dilation)[0]


def _fwd(x, kernel, stride, pads, dilation):
    nd = x.ndim - 2
    patches = conv_module._im2col_input(x, kernel.shape[:nd], stride, pads, dilation)
    return conv_module._matmul_patches(patches, kernel), (x, patches, kernel)


def _bwd(stride, pads, dilation, residuals, dy):
    x, patches, kernel = residuals
    nd = x.ndim - 2
    k, f = patches.shape[-1], kernel.shape[-1]
    p2, dy2 = patches.reshape(-1, k), dy.reshape(-1, f)
    dkernel_t = conv_module._matmul(lax.optimization_barrier(dy2.T), p2)
    dkernel = lax.optimization_barrier(dkernel_t).T.reshape(kernel.shape)
    dpatches = conv_module._matmul(dy2, lax.optimization_barrier(kernel.reshape(k, f).T))
    _, extract_vjp = jax.vjp(lambda v: conv_module._im2col_input(v, kernel.shape[:nd], stride, pads,
                                                                 dilation), x)
    (dx,) = extract_vjp(dpatches.reshape(patches.shape))
    return dx, dkernel


_custom_vjp_im2col.defvjp(_fwd, _bwd)


@contextlib.contextmanager
def before():
    """Trace with the old custom_vjp kernel in place of the current one."""
    now = conv_module._conv_im2col
    conv_module._conv_im2col = _custom_vjp_im2col
    try:
        yield
    finally:
        conv_module._conv_im2col = now


def conv_grad(x, k):
    """The gradient of one LeNet-style conv layer (both arguments), jitted."""
    step = jax.jit(jax.grad(lambda a, b: jnp.sum(jnp.tanh(F.conv(a, b, impl="matmul"))), (0, 1)))
    jax.block_until_ready(step(x, k))
    return lambda: jax.block_until_ready(step(x, k))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    x, y = bench_conv.lenet_data()
    rng = np.random.default_rng(0)
    cx = jnp.asarray(rng.normal(size=(128, 14, 14, 6)), jnp.float32)
    ck = jnp.asarray(rng.normal(size=(5, 5, 6, 16)), jnp.float32)
    runs = {"lenet_now": bench_conv.fnnet_lenet(x, y), "conv_now": conv_grad(cx, ck)}
    with before():
        runs["lenet_before"] = bench_conv.fnnet_lenet(x, y)
        runs["conv_before"] = conv_grad(cx, ck)
    print(f"load average {bench_conv.load_average()}")
    for what in ("lenet", "conv"):
        now, old = f"{what}_now", f"{what}_before"
        medians, ratios = bench_conv.timed_rounds({now: runs[now], old: runs[old]}, args.rounds,
                                                  {now: 20, old: 20}, base=now)
        print(f"{what:6s} now {medians[now]:.2f} ms, before {medians[old]:.2f} ms, "
              f"median per-round ratio now/before {ratios[old]:.3f}")

if __name__ == "__main__":
    main()
