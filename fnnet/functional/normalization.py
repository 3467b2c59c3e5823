"""Normalisation kernels: batch norm, layer norm, group norm.

All three compute ``y = scale * (x - mu) / sqrt(sigma^2 + eps) + bias`` and differ in
the axes ``mu`` and ``sigma^2`` are taken over:

- batch norm (Ioffe & Szegedy, 2015, arXiv:1502.03167): every axis but the feature
  (last) axis, i.e. over the batch and, for conv inputs, the spatial axes;
- layer norm (Ba et al., 2016, arXiv:1607.06450): the feature axis (or axes) of each
  example;
- group norm (Wu & He, 2018, arXiv:1803.08494): the spatial axes and the channels of
  one group, per example.

Statistics are computed in at least float32 (bfloat16 inputs are upcast for the
reduction) and the output has the input's dtype. Batch norm follows PyTorch: the
running statistics are updated as ``running = (1 - momentum) * running + momentum *
batch`` with the *unbiased* batch variance, while the batch itself is normalised with
the biased one.

Imports: jax only.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from fnnet.functional._checks import as_int, as_ints, check_floating

__all__ = ["batch_norm", "batch_norm_train", "batch_norm_eval", "layer_norm", "group_norm"]


def _compute_dtype(x):
    return jnp.promote_types(x.dtype, jnp.float32)


def _channel_vector(name: str, what: str, v, x):
    """``v`` of shape ``(C,)`` reshaped to broadcast against ``x (..., C)``, or None."""
    if v is None:
        return None
    if jnp.shape(v) != x.shape[-1:]:
        raise ValueError(f"{name}: expected {what} of shape {x.shape[-1:]} (the feature axis of "
                         f"input {x.shape}), got {jnp.shape(v)}")
    return jnp.reshape(v, (1,) * (x.ndim - 1) + x.shape[-1:])


def _affine(name: str, xhat, scale, bias, x):
    s = _channel_vector(name, "scale", scale, x)
    b = _channel_vector(name, "bias", bias, x)
    if s is not None:
        xhat = xhat * s.astype(xhat.dtype)
    if b is not None:
        xhat = xhat + b.astype(xhat.dtype)
    return xhat.astype(x.dtype)


def _check_input(name: str, x):
    check_floating(name, "input", x)
    if x.ndim < 2:
        raise ValueError(f"{name}: expected input of shape (batch, ..., features), got {x.shape}")


def batch_norm_eval(x, scale, bias, mean, var, *, eps: float = 1e-5):
    """Batch norm in evaluation: normalise with the running statistics.

    ``y = scale * (x - mean) / sqrt(var + eps) + bias`` over the last axis of ``x``.

    Args:
      x: input ``(N, C)`` or ``(N, *spatial, C)``.
      scale, bias: ``(C,)`` or None (no affine part).
      mean, var: running statistics ``(C,)``.
      eps: added to the variance.

    Returns:
      ``y`` with the shape and dtype of ``x``.
    """
    name = "batch_norm"
    _check_input(name, x)
    ct = _compute_dtype(x)
    m = _channel_vector(name, "running mean", mean, x).astype(ct)
    v = _channel_vector(name, "running var", var, x).astype(ct)
    xhat = (x.astype(ct) - m) * jax.lax.rsqrt(v + eps)
    return _affine(name, xhat, scale, bias, x)


def batch_norm_train(x, scale, bias, mean, var, *, momentum: float = 0.1, eps: float = 1e-5,
                     axis_name=None):
    """Batch norm in training: normalise with batch statistics, update the running ones.

    With ``mu_B``, ``sigma_B^2`` the mean and (biased) variance over every axis but the
    last, and ``n`` the number of values per feature::

        y            = scale * (x - mu_B) / sqrt(sigma_B^2 + eps) + bias
        new_mean     = (1 - momentum) * mean + momentum * mu_B
        new_var      = (1 - momentum) * var  + momentum * sigma_B^2 * n / (n - 1)

    (PyTorch's convention: ``momentum`` is the weight of the new batch; Keras' and
    Flax's ``momentum`` is ``1 -`` this one.)

    Args:
      x: input ``(N, C)`` or ``(N, *spatial, C)``.
      scale, bias: ``(C,)`` or None.
      mean, var: running statistics ``(C,)``; the returned ones keep their dtype.
      momentum: weight of the batch in the running averages, in [0, 1].
      eps: added to the variance.
      axis_name: if given (inside ``pmap``/``shard_map``), the batch statistics are
        averaged over that mapped axis with ``lax.pmean`` (synchronised batch norm).

    Returns:
      ``(y, new_mean, new_var)``.
    """
    name = "batch_norm"
    _check_input(name, x)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{name}: expected momentum in [0, 1], got {momentum}")
    _channel_vector(name, "running mean", mean, x)
    _channel_vector(name, "running var", var, x)
    ct = _compute_dtype(x)
    xc = x.astype(ct)
    axes = tuple(range(x.ndim - 1))
    n = 1
    for a in axes:
        n *= x.shape[a]
    if axis_name is not None:
        n = n * jax.lax.psum(1, axis_name)   # the axis size, static under vmap/pmap
    if isinstance(n, int) and n == 1:
        # The batch variance of one value is 0 and its unbiased form 0/0 (PyTorch refuses too).
        raise ValueError(f"{name}: expected more than 1 value per channel when training, got "
                         f"input of shape {x.shape} (N * spatial = 1)")
    mu = jnp.mean(xc, axis=axes)
    if axis_name is not None:
        mu = jax.lax.pmean(mu, axis_name)
    centred = xc - jnp.reshape(mu, (1,) * (x.ndim - 1) + mu.shape)
    sigma2 = jnp.mean(jnp.square(centred), axis=axes)
    if axis_name is not None:
        sigma2 = jax.lax.pmean(sigma2, axis_name)
    xhat = centred * jnp.reshape(jax.lax.rsqrt(sigma2 + eps), (1,) * (x.ndim - 1) + mu.shape)
    y = _affine(name, xhat, scale, bias, x)
    mu_s = jax.lax.stop_gradient(mu)
    unbiased = jax.lax.stop_gradient(sigma2) * (n / jnp.maximum(n - 1, 1))
    new_mean = ((1 - momentum) * mean.astype(ct) + momentum * mu_s).astype(mean.dtype)
    new_var = ((1 - momentum) * var.astype(ct) + momentum * unbiased).astype(var.dtype)
    return y, new_mean, new_var


def batch_norm(x, scale, bias, mean, var, *, train: bool, momentum: float = 0.1,
               eps: float = 1e-5, axis_name=None):
    """Batch norm in either mode: ``(y, new_mean, new_var)``.

    ``train=True`` is :func:`batch_norm_train`; ``train=False`` is
    :func:`batch_norm_eval` and returns ``mean`` and ``var`` unchanged.
    """
    if train:
        return batch_norm_train(x, scale, bias, mean, var, momentum=momentum, eps=eps,
                                axis_name=axis_name)
    return batch_norm_eval(x, scale, bias, mean, var, eps=eps), mean, var


def _normalise(xc, axes, eps):
    mu = jnp.mean(xc, axis=axes, keepdims=True)
    centred = xc - mu
    sigma2 = jnp.mean(jnp.square(centred), axis=axes, keepdims=True)
    return centred * jax.lax.rsqrt(sigma2 + eps)


def layer_norm(x, scale=None, bias=None, *, axis: int | tuple[int, ...] = -1, eps: float = 1e-5):
    """Layer norm: normalise each example over ``axis``.

    ``y = scale * (x - mu) / sqrt(sigma^2 + eps) + bias`` with ``mu``, ``sigma^2`` the
    mean and biased variance over ``axis`` (Ba et al., 2016). ``scale`` and ``bias``
    have the shape of ``x`` on ``axis`` (``(C,)`` for the default), as PyTorch's
    ``LayerNorm(normalized_shape)`` when ``axis`` is the trailing axes.

    The derivative is written out (a ``jax.custom_jvp``, so forward mode, ``vmap`` and
    higher derivatives pass). With ``xhat = (x - mu) r``, ``r = (sigma^2 + eps)^(-1/2)``
    and means over ``axis``, the tangent map is

        dy = scale * (r dx - r mean(dx) - r xhat mean(xhat dx)) + xhat dscale + dbias,

    the layer norm's symmetric Jacobian applied to ``dx``, so its transpose (the
    backward) has the same three terms. Automatic differentiation of the forward
    instead spreads the input gradient over the mean and variance paths, and XLA's CPU
    fusion then recomputes a transformer's residual-stream gradients inside each
    consumer: the baby GPT's train step reads 487 MB instead of 462 MB, and takes 16%
    more CPU time (``benchmarks/RESULTS.md``).

    Args:
      x: input of any rank >= 1.
      scale, bias: ``tuple(x.shape[a] for a in axis)`` or None.
      axis: an axis or a tuple of axes.
      eps: added to the variance.
    """
    name = "layer_norm"
    check_floating(name, "input", x)
    axis = as_ints(name, "axis", axis)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if not axes or any(not -x.ndim <= a < x.ndim for a in axes):
        raise ValueError(f"{name}: axis {axis} out of range for input of shape {x.shape}")
    axes = tuple(sorted({a % x.ndim for a in axes}))
    pshape = tuple(x.shape[a] for a in axes)
    bshape = tuple(x.shape[a] if a in axes else 1 for a in range(x.ndim))
    for what, v in (("scale", scale), ("bias", bias)):
        if v is not None and jnp.shape(v) != pshape:
            raise ValueError(f"{name}: expected {what} of shape {pshape} (input {x.shape} on axes "
                             f"{axes}), got {jnp.shape(v)}")
    ct = _compute_dtype(x)
    scale = jnp.ones(bshape, ct) if scale is None else jnp.reshape(scale, bshape).astype(ct)
    y = _scaled_layer_norm(x.astype(ct), scale, axes, float(eps))
    if bias is not None:
        y = y + jnp.reshape(bias, bshape).astype(ct)
    return y.astype(x.dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _scaled_layer_norm(x, scale, axes, eps):
    """``scale * xhat``, with the derivative of :func:`layer_norm`'s docstring."""
    return _normalise(x, axes, eps) * scale


@_scaled_layer_norm.defjvp
def _scaled_layer_norm_jvp(axes, eps, primals, tangents):
    x, scale = primals
    dx, dscale = tangents
    mean = functools.partial(jnp.mean, axis=axes, keepdims=True)
    mu = mean(x)
    centred = x - mu
    r = jax.lax.rsqrt(mean(jnp.square(centred)) + eps)
    xhat = centred * r
    dxhat = r * dx - r * mean(dx) - (r * xhat) * mean(xhat * dx)
    return xhat * scale, dxhat * scale + xhat * dscale


def group_norm(x, scale=None, bias=None, *, num_groups: int, eps: float = 1e-5):
    """Group norm: normalise each example over its spatial axes and a group of channels.

    The ``C`` channels of ``x (N, *spatial, C)`` are split into ``num_groups``
    consecutive groups of ``C / num_groups``; each (example, group) is normalised
    with its own mean and biased variance, then ``scale``/``bias`` ``(C,)`` apply per
    channel (Wu & He, 2018; PyTorch's ``GroupNorm`` with channels last).
    ``num_groups=1`` is layer norm over all non-batch axes; ``num_groups=C`` is
    instance norm.
    """
    name = "group_norm"
    _check_input(name, x)
    c = x.shape[-1]
    num_groups = as_int(name, "num_groups", num_groups, minimum=1)
    if c % num_groups:
        raise ValueError(f"{name}: num_groups must be a positive divisor of the {c} channels of "
                         f"input {x.shape}, got {num_groups!r}")
    ct = _compute_dtype(x)
    xg = jnp.reshape(x.astype(ct), x.shape[:-1] + (num_groups, c // num_groups))
    axes = tuple(range(1, x.ndim - 1)) + (x.ndim,)
    xhat = jnp.reshape(_normalise(xg, axes, eps), x.shape)
    return _affine(name, xhat, scale, bias, x)
