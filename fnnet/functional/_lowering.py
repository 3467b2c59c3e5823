"""How convolution and pooling are lowered to XLA: an explicit, static choice.

Two lowerings compute the same function:

- ``"xla"``: ``lax.conv_general_dilated`` and ``lax.reduce_window``, XLA's native
  convolution and windowed reduction. Used on GPU and TPU, where they are fast. On
  CPU the convolution (groups = 1, and ``conv_transpose``) is a ``jax.custom_jvp``
  whose reverse-mode convolutions are written in the one layout XLA:CPU runs on its
  conv library (``fnnet.functional.conv._conv_canonical``): XLA:CPU rewrites other
  layouts into it only in a program's entry computation, so JAX's own backward convs
  ran as emitted loop nests inside ``lax.scan`` (``fit(compile_epochs=True)``,
  ``fit_population``, a style-transfer loop), 20-150x slower per step. Outside loops
  the gradients are bit-identical to JAX's.
- ``"matmul"``: convolution as one matmul of the patch matrix with the kernel (im2col:
  the patches are built one spatial axis at a time from strided slices of the padded
  input), with a ``jax.custom_jvp`` whose tangent is written so that JAX's transpose
  of it runs the backward matmuls on XLA:CPU's fast path (see
  ``fnnet.functional.conv._conv_im2col``); convs with few channels group blocks of
  output columns into one patch row (``_conv_column_blocks``); a 1x1 conv is a plain
  dot, a depthwise conv a weighted sum of shifted views; pooling over non-overlapping
  windows is a reshape and a reduction, over overlapping windows an elementwise chain
  over the shifted views. Every JAX transform applies to both, forward mode included.

``"auto"`` (the default) is resolved when the kernel is traced, from the backend and
the kernel's static shapes only: ``"xla"`` on GPU and TPU; on CPU
(``jax.default_backend() == "cpu"``) the lowering that measured faster in
``benchmarks/bench_conv.py``: ``"matmul"`` for 1x1 convs, convs with one input channel
per group (first layers, depthwise), small convs with few channels (at most 8 input
channels per group, 16 output channels and 32768 input pixels, e.g. LeNet's second
layer), convs with at most 16
output pixels per image (LeNet's C5, the 4x4 stage of a small ResNet) and all
pooling (the overlapping 3 / 2 max pool of ResNet's stem measured 4-13x faster than
``reduce_window`` and its select-and-scatter gradient); ``"xla"`` otherwise.

The choice is an argument of every kernel (``impl=``) and a field of every conv and
pool Module (``nn.conv(32, 3, impl="xla")``), so it is part of the traced function
and ``jax.jit`` caches correctly by construction. There is no global switch.

Imports: jax only.
"""
from __future__ import annotations

import jax

__all__ = ["cpu_compiler_options"]

IMPLS = ("auto", "xla", "matmul")


def check_impl(name: str, impl) -> None:
    """Raise unless ``impl`` is one of ``"auto"``, ``"xla"``, ``"matmul"``."""
    if impl not in IMPLS:
        raise ValueError(f"{name}: expected impl in {IMPLS}, got {impl!r}")


def resolve(name: str, impl: str, cpu_choice: str) -> str:
    """The lowering to trace: ``impl``, or for ``"auto"`` ``cpu_choice`` on CPU (the
    kernel's measured best for its shapes) and ``"xla"`` elsewhere."""
    check_impl(name, impl)
    if impl == "auto":
        return cpu_choice if jax.default_backend() == "cpu" else "xla"
    return impl


# XLA:CPU sends matmuls, reductions and some elementwise fusions to its YNNPACK library by
# default; keeping only the matmuls there made the LeNet-5 step about 1.25x faster.
_YNN_DOTS_ONLY = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
_SUPPORTED: dict = {}


def cpu_compiler_options() -> dict:
    """XLA compiler options for a small-network train step on CPU: ``jax.jit(step,
    compiler_options=cpu_compiler_options())`` or
    ``fnnet.train.make_train_step(..., compiler_options=cpu_compiler_options())``.

    They keep XLA:CPU's YNNPACK library for matmuls only and let XLA's own code do the
    reductions (pooling, bias gradients) and elementwise fusions, which it runs on both
    cores where YNNPACK's did not: the LeNet-5 step (batch 128) took 8.1-8.9 ms instead
    of 9.0-10.3 ms on 2 cores, 1.00-1.09x PyTorch's step instead of 1.11-1.24x
    (``benchmarks/RESULTS.md``). The MLP step was unchanged. Reductions then sum in
    another order, so results differ from the default compile in the last bits, and
    a training run takes another (equally valid) trajectory. Opt-in for that reason.

    Returns ``{}`` off CPU, or when this jaxlib does not know the option.
    """
    if jax.default_backend() != "cpu":
        return {}
    if "ok" not in _SUPPORTED:
        try:
            jax.jit(lambda v: v + 1).lower(1.0).compile(compiler_options=_YNN_DOTS_ONLY)
            _SUPPORTED["ok"] = True
        except Exception:  # an older or newer XLA without this option
            _SUPPORTED["ok"] = False
    return dict(_YNN_DOTS_ONLY) if _SUPPORTED["ok"] else {}
