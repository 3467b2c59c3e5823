"""How convolution and pooling are lowered to XLA, chosen per backend at trace time.

Two lowerings compute the same function:

- ``"xla"``: ``lax.conv_general_dilated`` and ``lax.reduce_window``, XLA's native
  convolution and windowed reduction. Used on GPU and TPU, where they are fast.
- ``"matmul"``: convolution as shifted strided slices of the padded input followed by
  ``dot_general`` (im2col), with a hand-written backward pass that is also made of
  matmuls and slices; non-overlapping pooling as a reshape and a reduction. Used on
  CPU, where XLA's native convolutions run far below the matmul peak.

``"auto"`` (the default) picks ``"matmul"`` when ``jax.default_backend() == "cpu"``
and ``"xla"`` otherwise. The choice is made when a function is traced: a function
already compiled by ``jax.jit`` keeps the lowering it was traced with.

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

__all__ = ["conv_lowering"]

_IMPLS = ("auto", "xla", "matmul")
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("fnnet_conv_lowering", default="auto")


@contextlib.contextmanager
def conv_lowering(impl: str):
    """Within the block, trace convolution and pooling with ``impl``.

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


def resolve(impl: str | None) -> str:
    """The lowering to use now: ``impl`` if given, else the context's, with ``"auto"``
    resolved against the default backend."""
    if impl is None:
        impl = _CURRENT.get()
    _check(impl)
    if impl == "auto":
        return "matmul" if jax.default_backend() == "cpu" else "xla"
    return impl
