"""Detection heads and their targets: grid anchors, YOLO target encoding, the YOLO loss,
decoding to boxes, the convolutional sliding window, and localisation (plus landmark)
heads with their loss.

YOLO (Redmon et al. 2016, with the anchors of Redmon & Farhadi 2017). An ``H x W``
grid of cells of ``stride`` pixels, ``A`` anchors per cell, each predicting ``5 + C``
numbers ``t = (t_x, t_y, t_w, t_h, t_o, t_1..t_C)``. Coordinates are in grid-cell
units: a box with centre ``(cx, cy)`` and size ``(w, h)`` in pixels belongs to cell
``(i, j) = (floor(cy / s), floor(cx / s))`` and to the anchor ``a`` whose size
``(p_w, p_h)`` has the largest IoU with ``(w, h)`` (both centred; ties to the first
anchor), and its target there is::

    x = cx / s - j,   y = cy / s - i,   w / s,   h / s,   objectness 1,   one-hot class

The prediction of anchor ``a`` in cell ``(i, j)`` is ``x^ = sigmoid(t_x)``,
``y^ = sigmoid(t_y)``, ``w^ = (p_w / s) exp(t_w)``, ``h^ = (p_h / s) exp(t_h)``,
``o^ = sigmoid(t_o)``, ``p^ = softmax(t_1..t_C)``; and the loss is Redmon et al.'s
sum of squares with its weights ``lambda_coord = 5``, ``lambda_noobj = 0.5``::

    L = lambda_coord sum_obj [(x - x^)^2 + (y - y^)^2 + (sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
      + sum_obj (c - o^)^2 + lambda_noobj sum_noobj o^2 + sum_obj sum_k (p_k - p^_k)^2

summed over cells and anchors, averaged over images; ``obj`` are the (cell, anchor)
slots that own a box, ``noobj`` the others, ``c = 1`` (or, with ``rescore``, the IoU
of the predicted box with its target, as in the paper; held constant).

Convolutional sliding window (Sermanet et al. 2014, OverFeat): a classifier of
``k x k`` crops whose first dense layer reads the flattened ``k x k x c`` features
is the same function as a ``k x k`` convolution with that kernel reshaped
(:func:`dense_to_conv`), and the dense layers after it are ``1 x 1`` convolutions;
applied to a larger image, one pass scores every window at the network's total
stride, equal to classifying the crops one by one (:func:`sliding_windows`).

Imports: jax, numpy, fnnet.nn, fnnet.vision.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import nn
from fnnet.vision.boxes import _is_concrete, box_convert, box_iou, check_boxes
from fnnet.vision.nms import NMSResult, non_max_suppression

__all__ = ["grid_anchors", "encode_yolo_targets", "decode_yolo_targets", "yolo_loss", "decode_yolo",
           "yolo_detect", "dense_to_conv", "sliding_windows", "localization_head", "localization_loss"]


# --------------------------------------------------------------------- checks

def _grid(name, grid_shape):
    try:
        h, w = (int(v) for v in grid_shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected grid_shape (height, width), got {grid_shape!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"{name}: expected a positive grid_shape, got {grid_shape!r}")
    return h, w


def _anchors(name, anchor_sizes):
    a = np.asarray(anchor_sizes, np.float64)
    if a.ndim != 2 or a.shape[1] != 2 or len(a) == 0:
        raise ValueError(f"{name}: expected anchor_sizes as A >= 1 pairs (width, height), got shape {a.shape}")
    if not np.all(a > 0):
        raise ValueError(f"{name}: expected positive anchor widths and heights, got {a.tolist()}")
    return a


def _positive(name, what, value):
    if not (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"{name}: expected {what} > 0, got {value!r}")
    return value


# -------------------------------------------------------------------- anchors

def grid_anchors(grid_shape, stride: float, anchor_sizes) -> jax.Array:
    """Anchor boxes ``(H, W, A, 4)`` ``xyxy`` in pixels, centred on every cell.

    Cell ``(i, j)``'s centre is ``((j + 1/2) s, (i + 1/2) s)``; anchor ``a`` there is the
    box of size ``anchor_sizes[a] = (p_w, p_h)`` around it.
    """
    h, w = _grid("grid_anchors", grid_shape)
    stride = _positive("grid_anchors", "stride", stride)
    sizes = jnp.asarray(_anchors("grid_anchors", anchor_sizes), jnp.float32)
    cy, cx = jnp.meshgrid((jnp.arange(h) + 0.5) * stride, (jnp.arange(w) + 0.5) * stride, indexing="ij")
    centre = jnp.stack([cx, cy], -1)[:, :, None, :]
    half = sizes[None, None] / 2
    return jnp.concatenate([centre - half, centre + half], axis=-1)


def _shape_iou(wh, anchors):
    """IoU of boxes ``(..., 2)`` and anchors ``(A, 2)`` sharing a centre -> ``(..., A)``."""
    pw = anchors[:, 0].reshape((1,) * (wh.ndim - 1) + (-1,))
    ph = anchors[:, 1].reshape((1,) * (wh.ndim - 1) + (-1,))
    inter = jnp.minimum(wh[..., None, 0], pw) * jnp.minimum(wh[..., None, 1], ph)
    union = wh[..., None, 0] * wh[..., None, 1] + pw * ph - inter
    return inter / union


# ------------------------------------------------------------- YOLO targets

def encode_yolo_targets(boxes, labels, valid=None, *, grid_shape, stride: float, anchor_sizes,
                        num_classes: int) -> jax.Array:
    """The YOLO target grid of one image (``vmap`` for a batch).

    Args:
      boxes: ``(N, 4)`` ``xyxy`` in pixels (padding rows allowed, see ``valid``).
      labels: ``(N,)`` integer classes in ``[0, num_classes)``.
      valid: ``(N,)`` bool, the rows that are boxes (default all).
      grid_shape: ``(H, W)`` cells; stride: cell size in pixels.
      anchor_sizes: ``(A, 2)`` anchor ``(width, height)`` in pixels.
      num_classes: ``C``.

    Returns:
      ``(H, W, A, 5 + C)``: at the slot owning each box ``(x, y, w / s, h / s, 1,
      one-hot)`` (see the module docstring), zeros elsewhere. A centre on the image's
      far edge belongs to the last cell. When two boxes claim the same cell and anchor
      the later one (in input order) keeps it.
    """
    name = "encode_yolo_targets"
    gh, gw = _grid(name, grid_shape)
    stride = _positive(name, "stride", stride)
    anchors = _anchors(name, anchor_sizes)
    num_classes = int(_positive(name, "num_classes", num_classes))
    check_boxes(boxes, name)
    boxes = jnp.asarray(boxes)
    if boxes.ndim != 2:
        raise ValueError(f"{name}: expected boxes (N, 4) for one image (vmap for a batch), got {boxes.shape}")
    n = boxes.shape[0]
    if jnp.shape(labels) != (n,) or not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise ValueError(f"{name}: expected integer labels of shape ({n},), got {jnp.shape(labels)} "
                         f"{jnp.result_type(labels)}")
    if _is_concrete(labels) and n and not np.all((np.asarray(labels) >= 0) & (np.asarray(labels) < num_classes)):
        raise ValueError(f"{name}: expected labels in [0, {num_classes}), got {np.asarray(labels).tolist()}")
    valid = jnp.ones((n,), bool) if valid is None else jnp.asarray(valid, bool)
    if valid.shape != (n,):
        raise ValueError(f"{name}: expected valid of shape ({n},), got {valid.shape}")
    return _encode(boxes, jnp.asarray(labels), valid, (gh, gw), float(stride),
                   tuple(map(tuple, anchors.tolist())), num_classes)


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _encode(boxes, labels, valid, grid_shape, stride, anchor_sizes, num_classes):
    (gh, gw), n = grid_shape, boxes.shape[0]
    anchors = jnp.asarray(anchor_sizes, jnp.float32)
    a = len(anchors)
    centre = box_convert(boxes, "xyxy", "cxcywh")
    gx, gy = centre[:, 0] / stride, centre[:, 1] / stride
    j = jnp.clip(jnp.floor(gx), 0, gw - 1).astype(jnp.int32)
    i = jnp.clip(jnp.floor(gy), 0, gh - 1).astype(jnp.int32)
    best = jnp.argmax(_shape_iou(centre[:, 2:], anchors), axis=-1).astype(jnp.int32)
    slot = (i * gw + j) * a + best
    later_same = (slot[:, None] == slot[None, :]) & valid[None, :] & (jnp.arange(n)[None, :] > jnp.arange(n)[:, None])
    keep = valid & ~jnp.any(later_same, axis=1)
    entry = jnp.concatenate([(gx - j)[:, None], (gy - i)[:, None], centre[:, 2:] / stride, jnp.ones((n, 1)),
                             jax.nn.one_hot(labels, num_classes)], axis=1).astype(boxes.dtype)
    flat = jnp.zeros((gh * gw * a, 5 + num_classes), boxes.dtype)
    flat = flat.at[jnp.where(keep, slot, gh * gw * a)].set(entry, mode="drop")
    return flat.reshape(gh, gw, a, 5 + num_classes)


def _cell_offsets(gh, gw, dtype, ndim):
    """Column and row index ``(1, ..., H, W, 1)`` of rank ``ndim`` (for ``(..., H, W, A)``)."""
    i, j = jnp.meshgrid(jnp.arange(gh, dtype=dtype), jnp.arange(gw, dtype=dtype), indexing="ij")
    shape = (1,) * (ndim - 3) + (gh, gw, 1)
    return j.reshape(shape), i.reshape(shape)


def decode_yolo_targets(targets, *, stride: float):
    """Boxes back from a target grid ``(..., H, W, A, 5 + C)``.

    Returns:
      ``(boxes, labels, present)``: ``(..., H W A, 4)`` ``xyxy`` pixels, ``(..., H W A)``
      int32 classes and bool, True at the slots that own a box.
    """
    stride = _positive("decode_yolo_targets", "stride", stride)
    targets = jnp.asarray(targets)
    if targets.ndim < 4 or targets.shape[-1] < 6:
        raise ValueError(f"decode_yolo_targets: expected targets (..., H, W, A, 5 + C), got {targets.shape}")
    gh, gw = targets.shape[-4:-2]
    j, i = _cell_offsets(gh, gw, targets.dtype, targets.ndim - 1)
    cx, cy = (targets[..., 0] + j) * stride, (targets[..., 1] + i) * stride
    w, h = targets[..., 2] * stride, targets[..., 3] * stride
    boxes = jnp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
    lead = targets.shape[:-4]
    return (boxes.reshape(lead + (-1, 4)), jnp.argmax(targets[..., 5:], -1).astype(jnp.int32).reshape(lead + (-1,)),
            (targets[..., 4] > 0).reshape(lead + (-1,)))


def _predictions(outputs, anchors, stride):
    """``(x^, y^, w^, h^)`` in cell units, objectness and class probabilities from raw outputs."""
    scale = jnp.asarray(anchors / stride, outputs.dtype).reshape((1,) * (outputs.ndim - 2) + (-1, 2))
    xy = jax.nn.sigmoid(outputs[..., 0:2])
    wh = scale * jnp.exp(outputs[..., 2:4])
    return xy, wh, jax.nn.sigmoid(outputs[..., 4]), jax.nn.softmax(outputs[..., 5:], axis=-1)


def _check_outputs(name, outputs, anchors, num_classes=None):
    outputs = jnp.asarray(outputs)
    a = len(anchors)
    if outputs.ndim < 4 or outputs.shape[-2] != a or outputs.shape[-1] < 6:
        raise ValueError(f"{name}: expected outputs (..., H, W, {a}, 5 + C) for {a} anchors, got {outputs.shape}")
    if not jnp.issubdtype(outputs.dtype, jnp.floating):
        raise TypeError(f"{name}: expected floating outputs, got {outputs.dtype}")
    return outputs


def yolo_loss(outputs, targets, *, anchor_sizes, stride: float, coord_weight: float = 5.0,
              noobj_weight: float = 0.5, rescore: bool = False) -> jax.Array:
    """Redmon et al.'s YOLO loss (module docstring), summed over the grid, mean over images.

    Args:
      outputs: raw network outputs ``(B, H, W, A, 5 + C)``.
      targets: :func:`encode_yolo_targets` grids of the same shape.
      anchor_sizes: ``(A, 2)`` anchor sizes in pixels; stride: cell size in pixels.
      coord_weight, noobj_weight: ``lambda_coord`` and ``lambda_noobj``.
      rescore: the objectness target is the predicted box's IoU with its target
        (held constant) instead of 1.

    Returns:
      The scalar loss.
    """
    name = "yolo_loss"
    anchors = _anchors(name, anchor_sizes)
    stride = _positive(name, "stride", stride)
    outputs = _check_outputs(name, outputs, anchors)
    targets = jnp.asarray(targets)
    if targets.shape != outputs.shape:
        raise ValueError(f"{name}: expected targets of the outputs' shape {outputs.shape}, got {targets.shape}")
    if outputs.ndim != 5:
        raise ValueError(f"{name}: expected outputs (B, H, W, A, 5 + C), got {outputs.shape}")
    xy, wh, obj, probs = _predictions(outputs, anchors, stride)
    has = targets[..., 4]
    coord = jnp.sum((targets[..., 0:2] - xy) ** 2, -1) + jnp.sum((jnp.sqrt(targets[..., 2:4]) - jnp.sqrt(wh)) ** 2, -1)
    if rescore:
        pred = jnp.concatenate([xy - wh / 2, xy + wh / 2], -1)
        true = jnp.concatenate([targets[..., 0:2] - targets[..., 2:4] / 2, targets[..., 0:2] + targets[..., 2:4] / 2], -1)
        confidence = jax.lax.stop_gradient(box_iou(pred[..., None, :], true[..., None, :])[..., 0, 0])
    else:
        confidence = jnp.ones_like(obj)
    per_slot = (has * (coord_weight * coord + (confidence - obj) ** 2 + jnp.sum((targets[..., 5:] - probs) ** 2, -1))
                + noobj_weight * (1 - has) * obj ** 2)
    return jnp.mean(jnp.sum(per_slot, axis=(1, 2, 3)))


def decode_yolo(outputs, *, anchor_sizes, stride: float):
    """Boxes from raw outputs ``(..., H, W, A, 5 + C)``.

    Returns:
      ``(boxes, objectness, class_probs)``: ``(..., H W A, 4)`` ``xyxy`` pixels,
      ``(..., H W A)`` and ``(..., H W A, C)``.
    """
    name = "decode_yolo"
    anchors = _anchors(name, anchor_sizes)
    stride = _positive(name, "stride", stride)
    outputs = _check_outputs(name, outputs, anchors)
    gh, gw = outputs.shape[-4:-2]
    xy, wh, obj, probs = _predictions(outputs, anchors, stride)
    j, i = _cell_offsets(gh, gw, outputs.dtype, outputs.ndim - 1)
    cx, cy = (xy[..., 0] + j) * stride, (xy[..., 1] + i) * stride
    w, h = wh[..., 0] * stride, wh[..., 1] * stride
    boxes = jnp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
    lead = outputs.shape[:-4]
    return (boxes.reshape(lead + (-1, 4)), obj.reshape(lead + (-1,)),
            probs.reshape(lead + (-1, probs.shape[-1])))


def yolo_detect(outputs, *, anchor_sizes, stride: float, iou_threshold: float = 0.5,
                score_threshold: float = 0.05, max_output_size: int = 100, per_class: bool = True) -> NMSResult:
    """Decoded, scored and suppressed detections of a batch of raw outputs ``(B, H, W, A, 5 + C)``.

    Each slot's score is ``objectness * max_k p_k`` with label ``argmax_k p_k``; then
    :func:`~fnnet.vision.nms.non_max_suppression` per image (per class by default).

    Returns:
      An :class:`~fnnet.vision.nms.NMSResult` with a leading batch axis.
    """
    anchors = _anchors("yolo_detect", anchor_sizes)
    outputs = _check_outputs("yolo_detect", outputs, anchors)
    if outputs.ndim != 5:
        raise ValueError(f"yolo_detect: expected outputs (B, H, W, A, 5 + C), got {outputs.shape}")
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"yolo_detect: expected iou_threshold in [0, 1], got {iou_threshold}")
    return _detect(outputs, tuple(map(tuple, anchors.tolist())), float(stride), iou_threshold, score_threshold,
                   max_output_size, per_class)


@functools.partial(jax.jit, static_argnums=(1, 2, 5, 6))
def _detect(outputs, anchors, stride, iou_threshold, score_threshold, max_output_size, per_class):
    boxes, obj, probs = decode_yolo(outputs, anchor_sizes=anchors, stride=stride)
    labels = jnp.argmax(probs, -1).astype(jnp.int32)
    scores = obj * jnp.max(probs, -1)
    return jax.vmap(lambda b, s, lab: non_max_suppression(
        b, s, lab, iou_threshold=iou_threshold, score_threshold=score_threshold,
        max_output_size=max_output_size, per_class=per_class))(boxes, scores, labels)


# --------------------------------------------------- convolutional sliding window

def dense_to_conv(kernel, window) -> jax.Array:
    """A dense kernel ``(k_h k_w c, out)`` over flattened ``(k_h, k_w, c)`` crops as the
    equal convolution kernel ``(k_h, k_w, c, out)`` (HWIO).

    Channels-last flattening is row-major over ``(k_h, k_w, c)``, so the reshape is
    exact: ``dense(flatten(crop), W) == conv(crop, reshape(W))``. A dense layer on
    ``(..., in)`` after that is ``dense_to_conv(kernel, (1, 1))``.
    """
    kernel = jnp.asarray(kernel)
    try:
        kh, kw = (int(v) for v in ((window, window) if isinstance(window, int) else window))
    except (TypeError, ValueError):
        raise ValueError(f"dense_to_conv: expected window as an int or (height, width), got {window!r}") from None
    if kernel.ndim != 2 or kh < 1 or kw < 1 or kernel.shape[0] % (kh * kw):
        raise ValueError(f"dense_to_conv: expected a kernel (k_h k_w c, out) with rows divisible by "
                         f"{kh} x {kw}, got kernel {kernel.shape} and window {(kh, kw)}")
    return kernel.reshape(kh, kw, kernel.shape[0] // (kh * kw), kernel.shape[1])


def sliding_windows(images, window, stride) -> jax.Array:
    """Every ``k_h x k_w`` crop at ``stride``: ``(B, H, W, c) -> (B, oh, ow, k_h, k_w, c)``
    with ``oh = (H - k_h) // s_h + 1``; crop ``(p, q)`` starts at ``(p s_h, q s_w)``."""
    images = jnp.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"sliding_windows: expected images (B, H, W, C), got {images.shape}")
    kh, kw = (window, window) if isinstance(window, int) else tuple(window)
    sh, sw = (stride, stride) if isinstance(stride, int) else tuple(stride)
    _, h, w, _ = images.shape
    if not (1 <= kh <= h and 1 <= kw <= w and sh >= 1 and sw >= 1):
        raise ValueError(f"sliding_windows: expected a window inside the {h} x {w} image and a positive stride, "
                         f"got window {(kh, kw)} and stride {(sh, sw)}")
    rows = (jnp.arange((h - kh) // sh + 1) * sh)[:, None] + jnp.arange(kh)[None, :]      # (oh, kh)
    cols = (jnp.arange((w - kw) // sw + 1) * sw)[:, None] + jnp.arange(kw)[None, :]      # (ow, kw)
    crops = images[:, rows[:, None, :, None], cols[None, :, None, :]]                    # (B, oh, ow, kh, kw, C)
    return crops


# ------------------------------------------------------ localisation and landmarks

def localization_head(num_classes: int, num_landmarks: int = 0, *, name: str = "localization_head") -> nn.Module:
    """A dense layer giving ``1 + 4 + 2 K + C`` numbers per example: an object logit,
    a box ``(cx, cy, w, h)`` in units of the image size, ``K`` landmarks ``(x, y)`` in
    the same units, and ``C`` class logits (the layout of :func:`localization_loss`)."""
    num_classes = int(_positive(name, "num_classes", num_classes))
    if isinstance(num_landmarks, bool) or int(num_landmarks) != num_landmarks or num_landmarks < 0:
        raise ValueError(f"{name}: expected num_landmarks >= 0, got {num_landmarks!r}")
    return nn.dense(5 + 2 * int(num_landmarks) + num_classes, name=name)


def localization_loss(outputs, targets, *, num_classes: int, num_landmarks: int = 0, box_weight: float = 1.0,
                      landmark_weight: float = 1.0) -> jax.Array:
    """Classification with localisation (and landmarks), mean over the batch.

    Outputs ``(B, 5 + 2K + C)`` as :func:`localization_head`; targets ``(B, 6 + 2K)``:
    ``(p_c, cx, cy, w, h, landmarks..., class)`` with ``p_c`` 1 when an object is
    present (its box, landmarks and class then count) and 0 otherwise::

        L = BCE(p_c, o^) + p_c [box_weight ||b - b^||^2 + landmark_weight ||l - l^||^2 + CE(class, logits)]
    """
    name = "localization_loss"
    outputs, targets = jnp.asarray(outputs), jnp.asarray(targets)
    k, c = int(num_landmarks), int(num_classes)
    if outputs.ndim != 2 or outputs.shape[-1] != 5 + 2 * k + c:
        raise ValueError(f"{name}: expected outputs (B, {5 + 2 * k + c}) for {k} landmarks and {c} classes, "
                         f"got {outputs.shape}")
    if targets.shape != (outputs.shape[0], 6 + 2 * k):
        raise ValueError(f"{name}: expected targets ({outputs.shape[0]}, {6 + 2 * k}), got {targets.shape}")
    present = targets[:, 0]
    logit = outputs[:, 0]
    bce = jnp.maximum(logit, 0) - logit * present + jnp.log1p(jnp.exp(-jnp.abs(logit)))
    box = jnp.sum((targets[:, 1:5] - outputs[:, 1:5]) ** 2, -1)
    marks = jnp.sum((targets[:, 5:5 + 2 * k] - outputs[:, 5:5 + 2 * k]) ** 2, -1)
    logp = jax.nn.log_softmax(outputs[:, 5 + 2 * k:], -1)
    label = targets[:, -1].astype(jnp.int32)
    ce = -jnp.take_along_axis(logp, jnp.clip(label, 0, c - 1)[:, None], -1)[:, 0]
    return jnp.mean(bce + present * (box_weight * box + landmark_weight * marks + ce))
