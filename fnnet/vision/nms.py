"""Greedy non-max suppression with static shapes, class-agnostic or per class.

Greedy NMS (as in Girshick et al. and ``torchvision.ops.nms``): visit the boxes in
decreasing score; keep a box unless a box already kept overlaps it with
``IoU > iou_threshold`` (per class: a kept box of the same class). Boxes whose score is
not above ``score_threshold`` are never kept.

Static shapes: the output holds ``max_output_size`` slots, the kept boxes first in
the order they were kept (decreasing score), then padding (index ``-1``, box and
score ``0``, label ``-1``), and ``valid``, the number of kept boxes. So the function
compiles once for a given input size, runs under ``jit`` and ``vmap`` (a batch of
images), and :func:`non_max_suppression` of ``N`` boxes is one ``(N, N)`` IoU matrix
and a ``lax.while_loop`` of one step per kept box.

Ties: boxes of equal score are visited in increasing index (a stable sort), so of two
identical boxes with the same score the one with the smaller index is kept. NaN scores
raise a ``ValueError`` outside ``jit``; inside ``jit`` a NaN score is never kept.

Imports: jax, numpy, fnnet.vision.boxes.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.vision.boxes import _is_concrete, box_iou, check_boxes

__all__ = ["NMSResult", "non_max_suppression"]


class NMSResult(NamedTuple):
    """The kept boxes of :func:`non_max_suppression`, padded to ``max_output_size``.

    ``indices`` (int32, ``-1`` past ``valid``) index the input boxes; ``boxes``,
    ``scores`` and ``labels`` (``None`` for class-agnostic NMS without labels) are the
    kept entries, zeros (labels ``-1``) past ``valid``; ``valid`` is the count (int32).
    Leading batch axes come first when the call is vmapped.
    """
    indices: jax.Array
    boxes: jax.Array
    scores: jax.Array
    labels: jax.Array | None
    valid: jax.Array


def _check(boxes, scores, labels, iou_threshold, max_output_size):
    name = "non_max_suppression"
    check_boxes(boxes, name)
    if jnp.ndim(boxes) != 2:
        raise ValueError(f"{name}: expected boxes of shape (N, 4) (vmap for a batch), got {jnp.shape(boxes)}")
    n = jnp.shape(boxes)[0]
    if jnp.shape(scores) != (n,):
        raise ValueError(f"{name}: expected scores of shape ({n},) for {n} boxes, got {jnp.shape(scores)}")
    if not jnp.issubdtype(jnp.result_type(scores), jnp.floating):
        raise TypeError(f"{name}: expected scores of a floating dtype, got {jnp.result_type(scores)}")
    if _is_concrete(scores) and np.isnan(np.asarray(scores)).any():
        i = int(np.nonzero(np.isnan(np.asarray(scores)))[0][0])
        raise ValueError(f"{name}: expected scores without NaN, got NaN at index {i}")
    if labels is not None:
        if jnp.shape(labels) != (n,):
            raise ValueError(f"{name}: expected labels of shape ({n},) for {n} boxes, got {jnp.shape(labels)}")
        if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
            raise TypeError(f"{name}: expected integer labels, got {jnp.result_type(labels)}")
    if _is_concrete(iou_threshold) and not 0 <= float(iou_threshold) <= 1:
        raise ValueError(f"{name}: expected iou_threshold in [0, 1], got {iou_threshold}")
    if isinstance(max_output_size, bool) or not isinstance(max_output_size, (int, np.integer)) \
            or max_output_size < 1:
        raise ValueError(f"{name}: expected max_output_size a positive int, got {max_output_size!r}")


def non_max_suppression(boxes, scores, labels=None, *, iou_threshold: float = 0.5,
                        score_threshold: float = -np.inf, max_output_size: int | None = None,
                        per_class: bool = True) -> NMSResult:
    """Greedy NMS of ``N`` ``xyxy`` boxes with a fixed-size output.

    Box ``i`` (in decreasing score, equal scores by increasing index) is kept when
    ``score_i > score_threshold`` and no kept box ``j`` (of the same label when
    ``per_class`` and ``labels`` are given) has ``IoU(i, j) > iou_threshold``.

    Args:
      boxes: ``(N, 4)`` float ``xyxy`` boxes (``vmap`` for a batch of images).
      scores: ``(N,)`` float scores.
      labels: optional ``(N,)`` integer classes; with ``per_class`` boxes suppress
        only boxes of their own class.
      iou_threshold: in ``[0, 1]``; may be a traced scalar.
      score_threshold: boxes scoring at or below it are dropped; may be traced.
      max_output_size: static number of output slots (default ``N``); at most that
        many boxes are kept, the highest-scoring ones.
      per_class: suppress within each class (needs ``labels``), else across all.

    Returns:
      An :class:`NMSResult` (``indices``, ``boxes``, ``scores``, ``labels``, ``valid``).

    >>> b = jnp.array([[0., 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    >>> r = non_max_suppression(b, jnp.array([0.9, 0.8, 0.7]), max_output_size=3)
    >>> r.indices.tolist(), int(r.valid)
    ([0, 2, -1], 2)
    """
    n = jnp.shape(boxes)[0] if jnp.ndim(boxes) >= 1 else 0
    max_output_size = n if max_output_size is None else max_output_size
    _check(boxes, scores, labels, iou_threshold, max_output_size)
    boxes, scores = jnp.asarray(boxes), jnp.asarray(scores)
    if n == 0:
        pad_i = jnp.full((max_output_size,), -1, jnp.int32)
        return NMSResult(pad_i, jnp.zeros((max_output_size, 4), boxes.dtype),
                         jnp.zeros((max_output_size,), scores.dtype),
                         None if labels is None else pad_i, jnp.int32(0))
    return _nms(boxes, scores, None if labels is None else jnp.asarray(labels), jnp.asarray(iou_threshold),
                jnp.asarray(score_threshold), max_output_size=max_output_size, per_class=per_class)


@functools.partial(jax.jit, static_argnames=("max_output_size", "per_class"))
def _nms(boxes, scores, labels, iou_threshold, score_threshold, *, max_output_size, per_class):
    order = jnp.argsort(-scores, stable=True)            # equal scores: increasing index
    sorted_boxes, sorted_scores = boxes[order], scores[order]
    overlap = box_iou(sorted_boxes, sorted_boxes) > iou_threshold
    if labels is not None and per_class:
        sorted_labels = jnp.asarray(labels)[order]
        overlap = overlap & (sorted_labels[:, None] == sorted_labels[None, :])
    candidate = sorted_scores > score_threshold          # False for NaN
    slots = jnp.full((max_output_size,), -1, jnp.int32)

    def cond(carry):
        candidate, _, count = carry
        return jnp.any(candidate) & (count < max_output_size)

    def body(carry):
        candidate, slots, count = carry
        best = jnp.argmax(candidate)                     # the first remaining in score order
        slots = slots.at[count].set(best.astype(jnp.int32))
        candidate = candidate & ~overlap[best]
        candidate = candidate.at[best].set(False)
        return candidate, slots, count + 1

    _, slots, count = jax.lax.while_loop(cond, body, (candidate, slots, jnp.int32(0)))
    filled = slots >= 0
    safe = jnp.where(filled, slots, 0)
    indices = jnp.where(filled, order[safe], -1).astype(jnp.int32)
    kept_boxes = jnp.where(filled[:, None], sorted_boxes[safe], 0)
    kept_scores = jnp.where(filled, sorted_scores[safe], 0)
    kept_labels = None
    if labels is not None:
        kept_labels = jnp.where(filled, labels[order][safe], -1).astype(labels.dtype)
    return NMSResult(indices, kept_boxes, kept_scores, kept_labels, count)
