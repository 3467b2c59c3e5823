"""How convolution and pooling are lowered to XLA, chosen per backend at trace time.

Two lowerings compute the same function:

- ``"xla"``: ``lax.conv_general_dilated`` and ``lax.reduce_window``, XLA's native
  convolution and windowed reduction. Used on GPU and TPU, where they are fast.
- ``"matmul"``: convolution as one matmul of the patch matrix with the kernel (im2col:
  the patches are built one spatial axis at a time from strided slices of the padded
  input), with a ``jax.custom_vjp`` whose backward matmuls XLA:CPU runs on its fast
  path (see ``fnnet.functional.conv._conv_im2col``); convs with few channels group
  blocks of output columns into one patch row (``_conv_column_blocks``); a 1x1 conv is
  a plain dot, a
  depthwise conv a weighted sum of shifted views; pooling over non-overlapping
  windows is a reshape and a reduction, over overlapping windows an elementwise chain
  over the shifted views. Forward-mode autodiff (``jax.jvp``) is not available
  through the custom_vjp of the im2col conv: force ``"xla"`` for it.

``"auto"`` (the default) uses ``"xla"`` on GPU and TPU. On CPU
(``jax.default_backend() == "cpu"``) each kernel picks, from its static shapes, the
lowering that measured faster in ``benchmarks/bench_conv.py``: ``"matmul"`` for 1x1
convs, convs with one input channel per group (first layers, depthwise), small convs
with few input channels (at most 8 per group and 32768 input pixels, e.g. LeNet's
second layer) and non-overlapping pooling; ``"xla"`` otherwise. The choice is made when a function is
traced: a function already compiled by ``jax.jit`` keeps the lowering it was traced
with.

Force one lowering for a block of code with :func:`conv_lowering`, or for one call
with the ``impl=`` argument of the kernels::

    with fnnet.functional.conv_lowering("xla"):
        y = model.apply(params, state, x)[0]

Imports: jax only.
"""
from __future__ import annotations

import contextlib
import contextvars

import jax

__all__ = ["conv_lowering", "cpu_compiler_options"]

_IMPLS = ("auto", "xla", "matmul")
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("fnnet_conv_lowering", default="auto")


@contextlib.contextmanager
def conv_lowering(impl: str):
    """Within the block, trace convolution and pooling with ``impl``.

    The choice takes effect when a function is traced. JAX reuses what it has traced
    before, keyed by the function object: a ``jax.jit``-compiled function, and also a
    ``lax.scan`` body already traced elsewhere, keeps the lowering of its first trace.
    Enter the block before the first trace (or call ``jax.clear_caches()``), or pass
    ``impl=`` to the kernel, to be sure of the lowering.

    Args:
      impl: ``"auto"`` (``"matmul"`` on CPU, ``"xla"`` elsewhere), ``"xla"`` or
        ``"matmul"``.
    """
    _check(impl)
    token = _CURRENT.set(impl)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def _check(impl) -> None:
    if impl not in _IMPLS:
        raise ValueError(f"conv_lowering: expected impl in {_IMPLS}, got {impl!r}")


def resolve(impl: str | None, cpu_choice: str = "matmul") -> str:
    """The lowering to use now: ``impl`` if given, else the context's; ``"auto"`` gives
    ``cpu_choice`` on CPU (the kernel's measured best for its shapes) and ``"xla"``
    elsewhere."""
    if impl is None:
        impl = _CURRENT.get()
    _check(impl)
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
