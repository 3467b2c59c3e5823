"""The sharded train step: the single-device program of ``fnnet.train.make_train_step``
compiled with input and output shardings (GSPMD).

``jax.jit(step, in_shardings=..., out_shardings=...)`` partitions the same jaxpr that
runs on one device; XLA inserts the collectives (gradient all-reduce for data
parallel, all-gather / reduce-scatter for fully sharded, the Megatron all-reduces for
tensor parallel). So the step computes the same function as on one device:

- Global-batch semantics: ``x`` and ``y`` are the global batch (``B`` rows split over
  the ``data`` axis); the loss is its mean over all ``B`` rows and the gradient is that
  of the global loss, whatever the device count. A learning rate tuned on one device
  at batch ``B`` carries over unchanged.
- Batch norm: the statistics are the mean and variance over the global batch (XLA
  all-reduces the partial sums), exactly as on one device. Leave ``batch_norm``'s
  ``axis_name`` at ``None`` here: it names a ``shard_map``/``pmap`` axis and is for a
  hand-written per-device program, not for this one.
- Dropout: the mask is drawn for the global batch from the step's key; with
  ``jax_threefry_partitionable`` (JAX's default since 0.5) each device generates only
  its shard of the same bits, so the masks equal the single-device run's.

The results equal the single-device run up to the order of floating-point sums
(an all-reduce adds partial sums in another order): about 1e-7 relative per step
in float32.

Imports: jax, fnnet.train (make_train_step), fnnet.parallel.policies.
"""
from __future__ import annotations

from typing import Callable

import re

import jax

from fnnet.parallel.policies import (ShardingPolicy, batch_sharding, check_batch, replicated,
                                     train_state_shardings)
from fnnet.train.step import make_eval_step, make_train_step

__all__ = ["make_sharded_train_step", "make_sharded_eval_step", "collective_bytes"]

_BYTES = {"f64": 8, "f32": 4, "bf16": 2, "f16": 2, "s64": 8, "s32": 4, "u32": 4, "u64": 8, "s16": 2,
          "u16": 2, "s8": 1, "u8": 1, "pred": 1}
_COLLECTIVE = re.compile(r"^\s*(?:ROOT )?%\S+ = (\(.*?\)|\S+) (all-reduce|all-gather|reduce-scatter|"
                         r"all-to-all|collective-permute)(?:-start)?\(", re.MULTILINE)


def make_sharded_train_step(model, loss_fn, optimizer, policy: ShardingPolicy, params, state,
                            opt_state, **train_step_options) -> Callable:
    """A jitted, sharded ``(params, state, opt_state, x, y, key) -> (params, state, opt_state, loss)``.

    The step of ``make_train_step(model, loss_fn, optimizer, **train_step_options)``
    (``penalty``, ``batch_hook``, ``compiler_options``), compiled with the policy's
    shardings: params, state and optimizer state in and out as
    :func:`train_state_shardings` places them (so they stay put across steps), ``x``
    and ``y`` split over ``data`` on their leading axis, ``key`` and ``loss``
    replicated. ``params, state, opt_state`` are templates giving the tree structure
    and shapes (e.g. the initial values). Arguments not yet placed are moved by ``jit``;
    place them once with :func:`fnnet.parallel.shard_state` / ``shard_batch`` to avoid
    a transfer per step.

    The returned function checks that the batch size divides the ``data`` axis before
    it runs (``ValueError`` naming the shapes). Its ``.shardings`` attribute holds
    ``(params, state, opt_state, batch, replicated)`` shardings; ``.jitted`` is the
    ``jax.jit`` object (``.jitted.lower(...)`` for the compiled HLO).
    """
    if not isinstance(policy, ShardingPolicy):
        raise TypeError(f"make_sharded_train_step: expected a ShardingPolicy as policy, got "
                        f"{type(policy).__name__}")
    if "jit" in train_step_options:
        raise TypeError("make_sharded_train_step: got an unexpected option 'jit' (the step is "
                        "always compiled with the policy's shardings)")
    step = make_train_step(model, loss_fn, optimizer, jit=False, **{
        k: v for k, v in train_step_options.items() if k != "compiler_options"})
    p_sh, s_sh, o_sh = train_state_shardings(policy, params, state, opt_state)
    b_sh, r_sh = batch_sharding(policy), replicated(policy)
    jitted = jax.jit(step, in_shardings=(p_sh, s_sh, o_sh, b_sh, b_sh, r_sh),
                     out_shardings=(p_sh, s_sh, o_sh, r_sh),
                     compiler_options=train_step_options.get("compiler_options"))

    def sharded_step(params, state, opt_state, x, y, key):
        check_batch("make_sharded_train_step", policy, x, y)
        return jitted(params, state, opt_state, x, y, key)

    sharded_step.shardings = (p_sh, s_sh, o_sh, b_sh, r_sh)
    sharded_step.jitted = jitted
    return sharded_step


def make_sharded_eval_step(model, policy: ShardingPolicy, params, state, loss_fn=None,
                           metrics=None) -> Callable:
    """A jitted ``(params, state, x, y) -> {"loss": ..., name: ...}`` in eval mode: the
    step of ``fnnet.train.make_eval_step`` with the policy's shardings (metrics over the
    global batch, replicated results). ``params, state`` are templates, as above."""
    if not isinstance(policy, ShardingPolicy):
        raise TypeError(f"make_sharded_eval_step: expected a ShardingPolicy as policy, got "
                        f"{type(policy).__name__}")
    evaluate = make_eval_step(model, loss_fn, metrics)
    p_sh, s_sh, _ = train_state_shardings(policy, params, state, {})
    b_sh = batch_sharding(policy)
    jitted = jax.jit(evaluate, in_shardings=(p_sh, s_sh, b_sh, b_sh), out_shardings=replicated(policy))

    def sharded_eval(params, state, x, y):
        check_batch("make_sharded_eval_step", policy, x, y)
        return jitted(params, state, x, y)

    return sharded_eval


def collective_bytes(compiled) -> dict[str, int]:
    """Bytes per device that each kind of collective (``all-reduce``, ``all-gather``,
    ``reduce-scatter``, ``all-to-all``, ``collective-permute``) produces in one run of a
    compiled program: the sum of its result shapes. ``compiled`` is a
    ``jax.stages.Compiled`` (``jax.jit(f).lower(...).compile()``) or its HLO text. Data
    parallel training all-reduces the gradient bytes (plus batch-norm sums), once per
    step."""
    text = compiled if isinstance(compiled, str) else compiled.as_text()
    out: dict[str, int] = {}
    for shapes, kind in _COLLECTIVE.findall(text):
        size = 0
        for dtype, dims in re.findall(r"(\w+)\[([\d,]*)\]", shapes):
            count = 1
            for d in dims.split(","):
                count *= int(d) if d else 1
            size += _BYTES.get(dtype, 4) * count
        out[kind] = out.get(kind, 0) + size
    return out
