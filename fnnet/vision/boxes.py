"""Bounding boxes: format conversion, area, pairwise IoU and generalised IoU, clipping,
validation.

Boxes are ``(x1, y1, x2, y2)`` corners in pixels (``"xyxy"``) with ``x1 <= x2`` and
``y1 <= y2``; the other two forms are the centre form ``"cxcywh"`` ``(cx, cy, w, h)``
and COCO's ``"xywh"`` ``(x1, y1, w, h)``. Every function takes boxes as the last axis
of size 4 and any leading batch axes, and is safe under ``jit``, ``vmap`` and ``grad``.

For two boxes ``a`` and ``b`` with intersection ``I``, union ``U = |a| + |b| - I`` and
smallest enclosing box ``C``::

    IoU  = I / U                      (0 where U = 0: two empty boxes overlap nowhere)
    GIoU = IoU - (|C| - U) / |C|      (Rezatofighi et al. 2019; the fraction is 0 where |C| = 0)

so IoU is in ``[0, 1]`` and GIoU in ``[-1, 1]``. IoU follows ``pycocotools``' box IoU
(no "+1" pixel convention; a box of zero width has zero area and overlaps nothing).

Bad boxes (``x2 < x1``, ``y2 < y1``, a non-finite coordinate) raise a ``ValueError``
naming the first offending box when the values are known (outside ``jit``); under
``jit`` they cannot raise and are the caller's to keep out (:func:`check_boxes`).

Imports: jax, numpy.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["BOX_FORMATS", "box_convert", "box_area", "box_iou", "generalized_box_iou", "clip_boxes",
           "check_boxes"]

BOX_FORMATS = ("xyxy", "cxcywh", "xywh")


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_shape(name: str, what: str, boxes) -> None:
    shape = jnp.shape(boxes)
    if len(shape) < 1 or shape[-1] != 4:
        raise ValueError(f"{name}: expected {what} of shape (..., 4), got shape {shape}")
    if not jnp.issubdtype(jnp.result_type(boxes), jnp.floating):
        raise TypeError(f"{name}: expected {what} of a floating dtype, got {jnp.result_type(boxes)}")


def check_boxes(boxes, name: str = "check_boxes", what: str = "boxes", fmt: str = "xyxy") -> None:
    """Raise unless ``boxes`` is a float array ``(..., 4)`` of finite, well-ordered boxes.

    Well ordered: ``x1 <= x2`` and ``y1 <= y2`` for ``"xyxy"``, ``w >= 0`` and ``h >= 0``
    for ``"cxcywh"`` and ``"xywh"``. The shape and dtype are checked always; the values
    only when they are concrete (not inside ``jit``), so the check costs nothing
    compiled.

    Raises:
      ValueError: a wrong shape, or the first bad box with its index and coordinates.
      TypeError: a non-floating dtype.
    """
    if fmt not in BOX_FORMATS:
        raise ValueError(f"{name}: expected a box format in {BOX_FORMATS}, got {fmt!r}")
    _check_shape(name, what, boxes)
    if not _is_concrete(boxes) or np.size(boxes) == 0:
        return
    b = np.asarray(boxes).reshape(-1, 4)
    finite = np.isfinite(b).all(axis=1)
    if fmt == "xyxy":
        ordered = (b[:, 2] >= b[:, 0]) & (b[:, 3] >= b[:, 1])
        rule = "x1 <= x2 and y1 <= y2"
    else:
        ordered = (b[:, 2] >= 0) & (b[:, 3] >= 0)
        rule = "w >= 0 and h >= 0"
    bad = np.nonzero(~(finite & ordered))[0]
    if len(bad):
        i = int(bad[0])
        index = np.unravel_index(i, np.shape(boxes)[:-1]) if np.ndim(boxes) > 1 else ()
        where = f"box {tuple(int(k) for k in index)}" if len(index) != 1 else f"box {int(index[0])}"
        why = "a non-finite coordinate" if not finite[i] else f"{rule} ({fmt})"
        raise ValueError(f"{name}: expected {what} with {why}, got {where} = {b[i].tolist()}")


def box_convert(boxes, source: str, target: str) -> jax.Array:
    """Convert boxes between ``"xyxy"``, ``"cxcywh"`` and ``"xywh"`` (last axis of 4).

    ``cx = (x1 + x2) / 2``, ``w = x2 - x1`` (likewise ``y``); ``x1 = cx - w / 2``.

    >>> box_convert(jnp.array([[1.0, 2.0, 5.0, 4.0]]), "xyxy", "cxcywh").tolist()
    [[3.0, 3.0, 4.0, 2.0]]
    """
    for what, fmt in (("source", source), ("target", target)):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"box_convert: expected {what} format in {BOX_FORMATS}, got {fmt!r}")
    check_boxes(boxes, "box_convert", "boxes", source)
    boxes = jnp.asarray(boxes)
    if source == target:
        return boxes
    a, b, c, d = jnp.moveaxis(boxes, -1, 0)
    if source == "cxcywh":
        a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    elif source == "xywh":
        c, d = a + c, b + d
    # now corners
    if target == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    elif target == "xywh":
        c, d = c - a, d - b
    return jnp.stack([a, b, c, d], axis=-1)


def box_area(boxes) -> jax.Array:
    """Area ``(x2 - x1) (y2 - y1)`` of ``xyxy`` boxes ``(..., 4)`` -> ``(...)``."""
    check_boxes(boxes, "box_area")
    boxes = jnp.asarray(boxes)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _pairwise(name: str, a, b):
    check_boxes(a, name, "boxes1")
    check_boxes(b, name, "boxes2")
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.ndim < 2 or b.ndim < 2 or a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"{name}: expected boxes1 (..., N, 4) and boxes2 (..., M, 4) with the same leading "
                         f"axes, got {a.shape} and {b.shape}")
    dtype = jnp.result_type(a, b)
    a, b = a.astype(dtype)[..., :, None, :], b.astype(dtype)[..., None, :, :]
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    iw = jnp.maximum(jnp.minimum(a[..., 2], b[..., 2]) - jnp.maximum(a[..., 0], b[..., 0]), 0)
    ih = jnp.maximum(jnp.minimum(a[..., 3], b[..., 3]) - jnp.maximum(a[..., 1], b[..., 1]), 0)
    inter = iw * ih
    union = area_a + area_b - inter
    return a, b, inter, union


def _safe_divide(num, den):
    """``num / den``, 0 where ``den == 0`` (with a zero, not NaN, gradient there)."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1), 0)


def box_iou(boxes1, boxes2) -> jax.Array:
    """Pairwise intersection over union of ``xyxy`` boxes.

    ``IoU(a, b) = I / (|a| + |b| - I)``, 0 where the union is empty.

    Args:
      boxes1: ``(..., N, 4)``.
      boxes2: ``(..., M, 4)`` with the same leading axes.

    Returns:
      ``(..., N, M)`` IoU in ``[0, 1]``.

    >>> box_iou(jnp.array([[0.0, 0.0, 2.0, 2.0]]), jnp.array([[1.0, 0.0, 3.0, 2.0]])).tolist()
    [[0.3333333432674408]]
    """
    _, _, inter, union = _pairwise("box_iou", boxes1, boxes2)
    return _safe_divide(inter, union)


def generalized_box_iou(boxes1, boxes2) -> jax.Array:
    """Pairwise generalised IoU (Rezatofighi et al. 2019) of ``xyxy`` boxes.

    ``GIoU = IoU - (|C| - U) / |C|`` with ``C`` the smallest box enclosing both and
    ``U`` the union; ``1 - GIoU`` is a loss that has a gradient even for boxes that do
    not overlap.

    Args:
      boxes1: ``(..., N, 4)``.
      boxes2: ``(..., M, 4)`` with the same leading axes.

    Returns:
      ``(..., N, M)`` GIoU in ``[-1, 1]``.
    """
    a, b, inter, union = _pairwise("generalized_box_iou", boxes1, boxes2)
    cw = jnp.maximum(a[..., 2], b[..., 2]) - jnp.minimum(a[..., 0], b[..., 0])
    ch = jnp.maximum(a[..., 3], b[..., 3]) - jnp.minimum(a[..., 1], b[..., 1])
    enclosing = cw * ch
    return _safe_divide(inter, union) - _safe_divide(enclosing - union, enclosing)


def clip_boxes(boxes, size) -> jax.Array:
    """Clip ``xyxy`` boxes to an image of ``size = (height, width)``: ``x`` to ``[0, width]``,
    ``y`` to ``[0, height]``."""
    check_boxes(boxes, "clip_boxes")
    if len(tuple(size)) != 2:
        raise ValueError(f"clip_boxes: expected size (height, width), got {size!r}")
    height, width = size
    if _is_concrete(height) and _is_concrete(width) and not (np.all(np.asarray(height) > 0)
                                                              and np.all(np.asarray(width) > 0)):
        raise ValueError(f"clip_boxes: expected a positive height and width, got {size!r}")
    boxes = jnp.asarray(boxes)
    x = jnp.clip(boxes[..., 0::2], 0, width)
    y = jnp.clip(boxes[..., 1::2], 0, height)
    return jnp.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], axis=-1)
