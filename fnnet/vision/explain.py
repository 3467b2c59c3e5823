"""Seeing inside a ConvNet: filters, saliency, Grad-CAM and occlusion maps.

- :func:`filters`: a conv layer's kernels as ``(out, kh, kw, in)`` images.
- Activation maps: :func:`fnnet.vision.features.layer_outputs` (any layer by name).
- :func:`saliency` (Simonyan, Vedaldi & Zisserman, 2014, "Deep inside convolutional
  networks"): ``M_ij = max_c |d S_y / d x_ijc|``, the gradient of the class score
  (the logit, before the softmax) with respect to the input pixels.
- :func:`grad_cam` (Selvaraju et al., 2017, "Grad-CAM: visual explanations from deep
  networks via gradient-based localization"): with ``A^k`` the maps of a conv layer,
  ``alpha_k = 1 / (h w) sum_ij d S_y / d A^k_ij`` and
  ``L = ReLU(sum_k alpha_k A^k)``.
- :func:`occlusion` (Zeiler & Fergus, 2014, "Visualizing and understanding
  convolutional networks"): ``D_ij = S_y(x) - S_y(x with a patch at (i, j) replaced
  by a constant)``, one forward pass per patch position, all of them in one compiled
  ``lax.map``.

A network is a function ``logits_fn(x) -> (N, classes)`` (saliency, occlusion) or a
layer list with the params of ``nn.serial(*layers)`` (Grad-CAM, which splits it at a
layer).

Imports: jax, fnnet.nn, fnnet.vision.features.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from fnnet import nn
from fnnet.vision.features import layer_index, run_layers

__all__ = ["filters", "saliency", "grad_cam", "occlusion", "class_scores"]


def filters(params, layer: str, *, layers: Sequence[nn.Module] | None = None,
            layer_names: Sequence[str] | None = None) -> jax.Array:
    """The kernels of conv layer ``layer`` as images ``(out, kh, kw, in)``.

    Args:
      params: the params of ``nn.serial(*layers)`` (children ``"0"``, ``"1"``, ...).
      layer: the position key (``"0"``) or, with ``layers`` and ``layer_names``, a name.

    Raises:
      KeyError: no such layer, or a layer without a 2-D conv kernel.
    """
    key = layer
    if layers is not None:
        key = str(layer_index(layers, layer, layer_names=layer_names, where="filters"))
    if key not in params or not isinstance(params[key], dict) or "kernel" not in params[key]:
        with_kernel = [k for k, v in params.items() if isinstance(v, dict) and "kernel" in v]
        raise KeyError(f"filters: no conv kernel at layer {layer!r}; layers with a kernel: {with_kernel}")
    kernel = params[key]["kernel"]
    if kernel.ndim != 4:
        raise KeyError(f"filters: layer {layer!r} has a kernel of shape {kernel.shape}, expected a 2-D conv "
                       f"kernel (kh, kw, in, out)")
    return jnp.transpose(kernel, (3, 0, 1, 2))


def _check_target(where: str, target, n: int):
    target = jnp.asarray(target)
    if not jnp.issubdtype(target.dtype, jnp.integer):
        raise TypeError(f"{where}: expected integer class indices, got dtype {target.dtype}")
    if target.ndim == 0:
        target = jnp.full((n,), target)
    if target.shape != (n,):
        raise ValueError(f"{where}: expected one class index per image, shape ({n},), got {target.shape}")
    return target


def _check_images(where: str, x):
    if jnp.ndim(x) != 4:
        raise ValueError(f"{where}: expected images (N, H, W, C), got shape {jnp.shape(x)}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise TypeError(f"{where}: expected floating images, got dtype {jnp.result_type(x)}")


def class_scores(logits: jax.Array, target: jax.Array) -> jax.Array:
    """``logits[n, target[n]]`` for each image ``n``."""
    return jnp.take_along_axis(logits, target[:, None], axis=1)[:, 0]


def saliency(logits_fn: Callable[[jax.Array], jax.Array], x: jax.Array, target, *,
             reduce: str | None = "max_abs") -> jax.Array:
    """The gradient of each image's class score with respect to its pixels.

    ``logits_fn`` must treat the images of a batch independently (evaluation mode, no
    batch statistics), so that the gradient of ``sum_n S_{y_n}(x_n)`` is each image's
    own.

    Args:
      logits_fn: ``x (N, H, W, C) -> logits (N, classes)``.
      x: the images.
      target: the class of each image ``(N,)`` (or one int for all).
      reduce: ``"max_abs"`` (Simonyan et al.'s map, ``max_c |g|``, shape ``(N, H, W)``)
        or None (the raw gradient ``(N, H, W, C)``).
    """
    _check_images("saliency", x)
    target = _check_target("saliency", target, x.shape[0])
    if reduce not in ("max_abs", None):
        raise ValueError(f"saliency: expected reduce 'max_abs' or None, got {reduce!r}")
    grad = jax.grad(lambda v: jnp.sum(class_scores(logits_fn(v), target)))(x)
    return grad if reduce is None else jnp.max(jnp.abs(grad), axis=-1)


def grad_cam(layers: Sequence[nn.Module], params, state, x: jax.Array, layer: str, target, *,
             layer_names: Sequence[str] | None = None, resize: bool = True) -> jax.Array:
    """Grad-CAM of ``nn.serial(*layers)`` at conv layer ``layer``.

    ``A = layers[:l+1](x)`` (``(N, h, w, K)``), ``S = layers[l+1:](A)[n, y_n]``,
    ``alpha_nk = mean_ij dS / dA_nijk``, ``L_n = ReLU(sum_k alpha_nk A_nk)``.

    Args:
      layers, params, state: the network as a layer list and its ``serial`` params.
      x: images ``(N, H, W, C)``.
      layer: the layer whose maps are weighted (name or position key).
      target: the class of each image ``(N,)`` (or one int).
      layer_names: one name per layer.
      resize: bilinearly resize the maps to ``(H, W)`` (else ``(h, w)``).

    Returns:
      ``(N, H, W)`` (or ``(N, h, w)``), unnormalised.

    Raises:
      KeyError: no such layer (listing the names).
      ValueError: its output is not a stack of maps ``(N, h, w, K)``.
    """
    _check_images("grad_cam", x)
    i = layer_index(layers, layer, layer_names=layer_names, where="grad_cam")
    target = _check_target("grad_cam", target, x.shape[0])
    maps, _ = run_layers(layers, params, state, x, 0, i + 1)
    if maps.ndim != 4:
        raise ValueError(f"grad_cam: expected layer {layer!r} to output maps (N, h, w, K), got shape {maps.shape}")

    def score(a):
        logits, _ = run_layers(layers, params, state, a, i + 1)
        return jnp.sum(class_scores(logits, target))

    alpha = jnp.mean(jax.grad(score)(maps), axis=(1, 2))                  # (N, K)
    cam = jax.nn.relu(jnp.einsum("nhwk,nk->nhw", maps, alpha))
    if resize and cam.shape[1:] != x.shape[1:3]:
        cam = jax.image.resize(cam, (x.shape[0],) + tuple(x.shape[1:3]), "bilinear")
    return cam


def occlusion(logits_fn: Callable[[jax.Array], jax.Array], x: jax.Array, target, *, patch: int,
              stride: int = 1, value: float = 0.0) -> jax.Array:
    """The drop of the class score when a ``patch x patch`` square is covered with ``value``.

    ``D[n, a, b] = S_y(x_n) - S_y(x_n with rows a s .. a s + patch - 1 and columns
    b s .. b s + patch - 1 set to value)``, for ``a < (H - patch) // s + 1`` (likewise
    ``b``). Large values mark the regions the class depends on.

    Args:
      logits_fn: ``x (N, H, W, C) -> logits (N, classes)``.
      x: images ``(N, H, W, C)``.
      target: the class of each image ``(N,)`` (or one int).
      patch: side of the square, pixels.
      stride: step between two patch positions.
      value: the fill (0 is the mean of standardised inputs).

    Returns:
      ``(N, (H - patch) // stride + 1, (W - patch) // stride + 1)``.
    """
    _check_images("occlusion", x)
    target = _check_target("occlusion", target, x.shape[0])
    h, w = x.shape[1:3]
    for name, v in (("patch", patch), ("stride", stride)):
        if not (isinstance(v, int) and v > 0):
            raise ValueError(f"occlusion: expected {name} > 0, got {v!r}")
    if patch > min(h, w):
        raise ValueError(f"occlusion: expected patch <= the image side {min(h, w)}, got {patch}")
    rows = jnp.arange(0, h - patch + 1, stride)
    cols = jnp.arange(0, w - patch + 1, stride)
    base = class_scores(logits_fn(x), target)
    r_idx, c_idx = jnp.arange(h), jnp.arange(w)

    def one(pos):
        r, c = pos
        inside = (((r_idx >= r) & (r_idx < r + patch))[:, None] & ((c_idx >= c) & (c_idx < c + patch))[None, :])
        covered = jnp.where(inside[None, :, :, None], jnp.asarray(value, x.dtype), x)
        return base - class_scores(logits_fn(covered), target)

    grid_r, grid_c = jnp.meshgrid(rows, cols, indexing="ij")
    drops = jax.lax.map(one, (grid_r.ravel(), grid_c.ravel()))          # (positions, N)
    return drops.T.reshape(x.shape[0], rows.shape[0], cols.shape[0])
