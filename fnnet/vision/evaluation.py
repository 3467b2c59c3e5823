"""Detection metrics: precision-recall curves, average precision (VOC all-point and COCO
101-point interpolation), and the COCO evaluation (AP@[.5:.95], AP@.5, AP@.75, AP and
AR by area range) equal to ``pycocotools``' ``COCOeval`` for boxes.

Matching (COCO's rule, per image and class): the detections, in decreasing score (equal
scores in input order) and at most ``max(max_detections)`` of them, are matched one by
one at each IoU threshold ``t``: a detection takes the not yet matched ground-truth box
(a crowd box may be matched again) with the largest ``IoU >= t``, preferring a box that
counts (not crowd, area inside the range) over one that is ignored; ties in IoU go to
the later box. A detection matched to an ignored box, or unmatched with its own area
outside the range, is ignored; the others are true or false positives.

Then, per class, area range and detection limit, over all images (the detections
sorted by score, equal scores by image then rank)::

    recall_n    = TP_n / P          (P: ground-truth boxes that count)
    precision_n = TP_n / (TP_n + FP_n)
    p_interp(r) = max_{n: recall_n >= r} precision_n

    AP (COCO) = mean of p_interp(r) over r in {0, 0.01, ..., 1}  (0 past the last recall)
    AP (VOC)  = sum_n (recall_n - recall_{n-1}) p_interp(recall_n)   (all points, VOC 2010+)

and the summaries average over classes (and IoU thresholds) the entries that have
ground truth, as ``COCOeval.summarize``: ``-1`` where nothing is defined. The VOC
devkit matches a little differently (a detection whose best-overlapping box is
already taken is a false positive, without trying the next box); here both
interpolations share COCO's matching.

IoU of a detection ``d`` with a crowd box ``g`` is ``|d n g| / |d|``, as in COCO.

This is NumPy, not JAX: the matching is a greedy scan with data-dependent lengths, and
the result is a handful of numbers. It is vectorised over images, classes, IoU
thresholds and area ranges (one NumPy step per detection rank), so it runs faster than
``pycocotools``' Python loop over images and classes.

Imports: numpy, fnnet.vision.boxes.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np

from fnnet.vision.boxes import check_boxes

__all__ = ["COCO_IOU_THRESHOLDS", "COCO_RECALL_THRESHOLDS", "COCO_AREA_RANGES", "COCO_MAX_DETECTIONS",
           "DetectionEvaluation", "evaluate_detections", "mean_average_precision", "precision_recall_curve",
           "average_precision"]

# The arrays of pycocotools' Params, built the same way so that comparisons agree bit for bit.
COCO_IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
COCO_RECALL_THRESHOLDS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
COCO_AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
                    "large": (96.0 ** 2, 1e5 ** 2)}
COCO_MAX_DETECTIONS = (1, 10, 100)
INTERPOLATIONS = ("coco", "voc")


# ------------------------------------------------------------------ curves and AP

def precision_recall_curve(scores, true_positive, num_positives: int, ignore=None):
    """Precision and recall after each detection, in decreasing score.

    Args:
      scores: ``(n,)`` detection scores (equal scores keep their input order).
      true_positive: ``(n,)`` bool, the detection matched a ground-truth box.
      num_positives: the number of ground-truth boxes ``P`` (> 0).
      ignore: optional ``(n,)`` bool, detections left out of both counts.

    Returns:
      ``(precision, recall, scores)``, each ``(n',)`` for the ``n'`` detections not
      ignored, sorted by decreasing score: ``precision_n = TP_n / (TP_n + FP_n)``,
      ``recall_n = TP_n / P``.
    """
    scores, tp = np.asarray(scores, np.float64), np.asarray(true_positive, bool)
    if scores.ndim != 1 or tp.shape != scores.shape:
        raise ValueError(f"precision_recall_curve: expected scores (n,) and true_positive (n,), got "
                         f"{scores.shape} and {tp.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"precision_recall_curve: expected scores without NaN, got NaN at index "
                         f"{int(np.nonzero(np.isnan(scores))[0][0])}")
    if isinstance(num_positives, bool) or int(num_positives) != num_positives or num_positives <= 0:
        raise ValueError(f"precision_recall_curve: expected num_positives a positive int, got {num_positives!r}")
    keep = np.ones_like(tp) if ignore is None else ~np.asarray(ignore, bool)
    order = np.argsort(-scores[keep], kind="mergesort")
    tp = tp[keep][order]
    tp_sum = np.cumsum(tp).astype(np.float64)
    fp_sum = np.cumsum(~tp).astype(np.float64)
    return tp_sum / (tp_sum + fp_sum), tp_sum / num_positives, scores[keep][order]


def average_precision(precision, recall, interpolation: str = "voc") -> float:
    """Area under the interpolated precision-recall curve.

    ``p_interp(r) = max_{n: recall_n >= r} precision_n``; ``"voc"`` sums
    ``(recall_n - recall_{n-1}) p_interp(recall_n)`` over the points (the VOC 2010+
    all-point AP), ``"coco"`` averages ``p_interp`` at the 101 recalls
    ``0, 0.01, ..., 1`` (0 past the last recall), as ``COCOeval.accumulate``.

    Args:
      precision, recall: ``(n,)`` from :func:`precision_recall_curve` (recall not
        decreasing).
      interpolation: ``"voc"`` or ``"coco"``.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"average_precision: expected interpolation in {INTERPOLATIONS}, got {interpolation!r}")
    precision, recall = np.asarray(precision, np.float64), np.asarray(recall, np.float64)
    if precision.ndim != 1 or precision.shape != recall.shape:
        raise ValueError(f"average_precision: expected precision (n,) and recall (n,), got "
                         f"{precision.shape} and {recall.shape}")
    if np.any(np.diff(recall) < 0):
        raise ValueError("average_precision: expected recall sorted non-decreasing (in decreasing score)")
    return float(_interpolated_ap(precision[None], recall[None], interpolation)[0])


def _envelope(precision):
    """``max_{m >= n} precision_m`` along the last axis."""
    return np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]


def _coco_curve(precision, recall):
    """``(T, n)`` curves -> ``(T, R)`` interpolated precision at COCO's recall thresholds."""
    n = precision.shape[-1]
    out = np.zeros(precision.shape[:-1] + (len(COCO_RECALL_THRESHOLDS),))
    if n == 0:
        return out
    envelope = _envelope(precision)
    for t in range(precision.shape[0]):
        idx = np.searchsorted(recall[t], COCO_RECALL_THRESHOLDS, side="left")
        inside = idx < n
        out[t, inside] = envelope[t, idx[inside]]
    return out


def _interpolated_ap(precision, recall, interpolation):
    """``(T, n)`` curves -> ``(T,)`` AP."""
    if interpolation == "coco":
        return _coco_curve(precision, recall).mean(axis=-1)
    if precision.shape[-1] == 0:
        return np.zeros(precision.shape[:-1])
    envelope = _envelope(precision)
    steps = np.diff(recall, axis=-1, prepend=0.0)
    return np.sum(steps * envelope, axis=-1)


# --------------------------------------------------------------------- the inputs

def _entry(name, what, i, entry, keys, optional=()):
    if not isinstance(entry, Mapping):
        raise TypeError(f"{name}: expected {what}[{i}] as a mapping with keys {keys}, got {type(entry).__name__}")
    missing = [k for k in keys if k not in entry]
    unknown = [k for k in entry if k not in keys and k not in optional]
    if missing or unknown:
        raise KeyError(f"{name}: expected {what}[{i}] with keys {keys} (optional {optional}), got "
                       f"{sorted(entry)}" + (f"; missing {missing}" if missing else "")
                       + (f"; unknown {unknown}" if unknown else ""))


def _column(name, what, i, entry, key, n, dtype_kind):
    a = np.asarray(entry[key])
    if a.shape != (n,):
        raise ValueError(f"{name}: expected {what}[{i}]['{key}'] of shape ({n},) for {n} boxes, got {a.shape}")
    if dtype_kind == "int" and n and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name}: expected integer {what}[{i}]['{key}'], got {a.dtype}")
    return a


def _boxes(name, what, i, entry):
    b = np.asarray(entry["boxes"], np.float64)
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[-1] != 4:
        raise ValueError(f"{name}: expected {what}[{i}]['boxes'] of shape (n, 4), got {b.shape}")
    check_boxes(b, name, f"{what}[{i}]['boxes']")
    return b


def _flatten_inputs(name, detections, ground_truth):
    for what, seq in (("detections", detections), ("ground_truth", ground_truth)):
        if isinstance(seq, Mapping) or not isinstance(seq, Sequence):
            raise TypeError(f"{name}: expected {what} as a sequence with one mapping per image, "
                            f"got {type(seq).__name__}")
    if len(detections) != len(ground_truth):
        raise ValueError(f"{name}: expected detections and ground_truth for the same images, got "
                         f"{len(detections)} detection entries and {len(ground_truth)} ground-truth entries")
    det = {"image": [], "boxes": [], "scores": [], "labels": []}
    gt = {"image": [], "boxes": [], "labels": [], "crowd": [], "areas": []}
    for i, (d, g) in enumerate(zip(detections, ground_truth)):
        _entry(name, "detections", i, d, ("boxes", "scores", "labels"), ("image_id",))
        _entry(name, "ground_truth", i, g, ("boxes", "labels"), ("crowd", "areas", "image_id"))
        if "image_id" in d and "image_id" in g and d["image_id"] != g["image_id"]:
            raise ValueError(f"{name}: expected detections and ground_truth for the same images, got entry {i} "
                             f"with image_id {d['image_id']!r} in detections and {g['image_id']!r} in ground_truth")
        db = _boxes(name, "detections", i, d)
        scores = _column(name, "detections", i, d, "scores", len(db), "float").astype(np.float64)
        if np.isnan(scores).any():
            raise ValueError(f"{name}: expected detections[{i}]['scores'] without NaN, got NaN at index "
                             f"{int(np.nonzero(np.isnan(scores))[0][0])}")
        det["labels"].append(_column(name, "detections", i, d, "labels", len(db), "int").astype(np.int64))
        det["boxes"].append(db)
        det["scores"].append(scores)
        det["image"].append(np.full(len(db), i, np.int64))
        gb = _boxes(name, "ground_truth", i, g)
        gt["boxes"].append(gb)
        gt["labels"].append(_column(name, "ground_truth", i, g, "labels", len(gb), "int").astype(np.int64))
        gt["crowd"].append(_column(name, "ground_truth", i, g, "crowd", len(gb), "bool").astype(bool)
                           if "crowd" in g else np.zeros(len(gb), bool))
        areas = ((gb[:, 2] - gb[:, 0]) * (gb[:, 3] - gb[:, 1]) if "areas" not in g
                 else _column(name, "ground_truth", i, g, "areas", len(gb), "float").astype(np.float64))
        gt["areas"].append(areas)
        gt["image"].append(np.full(len(gb), i, np.int64))
    det = {k: np.concatenate(v) if v else np.zeros((0, 4) if k == "boxes" else 0) for k, v in det.items()}
    gt = {k: np.concatenate(v) if v else np.zeros((0, 4) if k == "boxes" else 0) for k, v in gt.items()}
    return det, gt


def _check_thresholds(name, iou_thresholds):
    t = np.atleast_1d(np.asarray(iou_thresholds, np.float64))
    if t.ndim != 1 or len(t) == 0:
        raise ValueError(f"{name}: expected iou_thresholds as one value or a 1-d sequence, got shape {t.shape}")
    bad = t[~((t >= 0) & (t <= 1))]
    if len(bad):
        raise ValueError(f"{name}: expected iou_thresholds in [0, 1], got {bad[0]}")
    return t


# ----------------------------------------------------------------------- matching

def _rank_in_group(group, order):
    """Rank of each element within its group, for elements visited in ``order``."""
    g = group[order]
    n = len(g)
    starts = np.r_[0, np.nonzero(g[1:] != g[:-1])[0] + 1] if n else np.zeros(0, np.int64)
    first = np.zeros(n, np.int64)
    if n:
        first[starts] = starts
        first = np.maximum.accumulate(first)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - first
    return rank


def _pad(group_of, rank, values, groups, width, fill):
    out = np.full((groups, width) + values.shape[1:], fill, values.dtype)
    out[group_of, rank] = values
    return out


def _match(det, gt, categories, thresholds, areas, max_det):
    """Greedy COCO matching, vectorised over (area range, threshold, image-class group)."""
    keep_d = np.isin(det["labels"], categories)
    keep_g = np.isin(gt["labels"], categories)
    det = {k: v[keep_d] for k, v in det.items()}
    gt = {k: v[keep_g] for k, v in gt.items()}
    n_cat = len(categories)                       # sorted, so searchsorted gives each label's index
    det_key = det["image"].astype(np.int64) * n_cat + np.searchsorted(categories, det["labels"])
    gt_key = gt["image"].astype(np.int64) * n_cat + np.searchsorted(categories, gt["labels"])
    # detections: in score order within their (image, class) group, the first max_det
    order = np.lexsort((np.arange(len(det_key)), -det["scores"], det_key))
    d_rank = _rank_in_group(det_key, order)
    top = d_rank < max_det
    det = {k: v[top] for k, v in det.items()}
    det_key, d_rank = det_key[top], d_rank[top]
    g_order = np.lexsort((np.arange(len(gt_key)), gt_key))
    g_rank = _rank_in_group(gt_key, g_order)

    keys, group = np.unique(np.concatenate([det_key, gt_key]), return_inverse=True)
    n_groups = len(keys)
    d_group, g_group = group[:len(det_key)], group[len(det_key):]
    width_d = int(d_rank.max()) + 1 if len(d_rank) else 0
    width_g = int(g_rank.max()) + 1 if len(g_rank) else 0
    det_boxes = _pad(d_group, d_rank, det["boxes"], n_groups, width_d, 0.0)
    det_valid = _pad(d_group, d_rank, np.ones(len(d_rank), bool), n_groups, width_d, False)
    det_area = (det_boxes[..., 2] - det_boxes[..., 0]) * (det_boxes[..., 3] - det_boxes[..., 1])
    gt_boxes = _pad(g_group, g_rank, gt["boxes"], n_groups, width_g, 0.0)
    gt_valid = _pad(g_group, g_rank, np.ones(len(g_rank), bool), n_groups, width_g, False)
    gt_crowd = _pad(g_group, g_rank, gt["crowd"], n_groups, width_g, False)
    gt_area = _pad(g_group, g_rank, gt["areas"], n_groups, width_g, 0.0)

    # IoU (groups, D, M), float64 as pycocotools; crowd boxes divide by the detection's area
    a, b = det_boxes[:, :, None, :], gt_boxes[:, None, :, :]
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    gt_box_area = (gt_boxes[..., 2] - gt_boxes[..., 0]) * (gt_boxes[..., 3] - gt_boxes[..., 1])
    union = np.where(gt_crowd[:, None, :], det_area[:, :, None], det_area[:, :, None] + gt_box_area[:, None, :] - inter)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(inter > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    iou = np.where(gt_valid[:, None, :], iou, -1.0)          # padding never matches

    lo = np.array([r[0] for r in areas])[:, None, None]
    hi = np.array([r[1] for r in areas])[:, None, None]
    gt_ignore = gt_crowd[None] | (gt_area[None] < lo) | (gt_area[None] > hi)          # (A, G, M)
    det_outside = (det_area[None] < lo) | (det_area[None] > hi)                         # (A, G, D)
    thr = np.minimum(thresholds, 1 - 1e-10)[None, :, None, None]
    n_a, n_t = len(areas), len(thresholds)
    taken = np.zeros((n_a, n_t, n_groups, width_g), bool)
    matched = np.zeros((n_a, n_t, n_groups, width_d), bool)
    ignored = np.zeros((n_a, n_t, n_groups, width_d), bool)
    reverse = np.arange(width_g)[::-1]
    for d in range(width_d):
        iou_d = iou[None, None, :, d, :]                                                # (1, 1, G, M)
        cand = (iou_d >= thr) & (~taken | gt_crowd[None, None]) & det_valid[None, None, :, d, None]
        best = np.full(cand.shape[:-1], -1)
        found = np.zeros(cand.shape[:-1], bool)
        went_ignored = np.zeros(cand.shape[:-1], bool)
        for counts in (False, True):                       # boxes that count first, then ignored ones
            c = cand & (gt_ignore[:, None] == counts) & ~found[..., None]
            s = np.where(c, iou_d, -np.inf)[..., reverse]   # the last of equal IoUs wins
            m = width_g - 1 - np.argmax(s, axis=-1) if width_g else best
            hit = c.any(axis=-1)
            best = np.where(hit, m, best)
            went_ignored |= hit & counts
            found |= hit
        taken |= found[..., None] & (np.arange(width_g) == best[..., None])
        matched[..., d] = found
        ignored[..., d] = went_ignored | (~found & det_outside[:, None, :, d])
    group_cat = keys % n_cat
    group_image = keys // n_cat
    counted = (gt_valid[None] & ~gt_ignore).sum(axis=-1)                                 # (A, G)
    return dict(matched=matched, ignored=ignored, det_valid=det_valid, det_scores=_pad(
        d_group, d_rank, det["scores"], n_groups, width_d, -np.inf), group_cat=group_cat,
        group_image=group_image, counted=counted)


# -------------------------------------------------------------------- evaluation

class DetectionEvaluation(NamedTuple):
    """What :func:`evaluate_detections` returns (``-1`` marks an entry without ground truth).

    ``precision`` ``(T, R, K, A, M)``: interpolated precision at COCO's 101 recalls
    (``COCOeval.eval["precision"]``); ``recall`` ``(T, K, A, M)``: the final recall;
    ``average_precision`` ``(T, K, A, M)`` with the chosen interpolation; ``stats``:
    the twelve numbers of ``COCOeval.summarize`` by name (``AP``, ``AP50``, ``AP75``,
    ``AP_small``, ``AP_medium``, ``AP_large``, ``AR1``, ``AR10``, ``AR100``, ``AR_small``,
    ``AR_medium``, ``AR_large``, each at the last detection limit except ``AR1``/``AR10``),
    with the chosen interpolation for the APs; ``per_class``: ``{class: AP over the IoU
    thresholds}`` (area ``all``, the last limit). T indexes ``iou_thresholds``, K
    ``categories``, A ``area_ranges`` (in the order given), M ``max_detections``.
    """
    precision: np.ndarray
    recall: np.ndarray
    average_precision: np.ndarray
    stats: dict
    per_class: dict
    categories: tuple
    iou_thresholds: np.ndarray
    area_ranges: dict
    max_detections: tuple


def evaluate_detections(detections: Sequence[Mapping], ground_truth: Sequence[Mapping], *,
                        iou_thresholds=COCO_IOU_THRESHOLDS, area_ranges: Mapping | None = None,
                        max_detections: Sequence[int] = COCO_MAX_DETECTIONS, categories=None,
                        interpolation: str = "coco") -> DetectionEvaluation:
    """The COCO box evaluation of ``detections`` against ``ground_truth``.

    With the defaults it equals ``pycocotools`` (``COCOeval(gt, dt, "bbox")``,
    ``evaluate(); accumulate(); summarize()``) for the same boxes with ``xywh = (x1,
    y1, x2 - x1, y2 - y1)``, image ``i`` of the lists as the ``i``-th smallest image id
    and class ``c`` as category ``c``.

    Args:
      detections: one mapping per image with ``"boxes"`` ``(n, 4)`` ``xyxy``,
        ``"scores"`` ``(n,)`` and ``"labels"`` ``(n,)`` (int), optional ``"image_id"``.
      ground_truth: one mapping per image (the same images, in the same order) with
        ``"boxes"`` ``(m, 4)`` and ``"labels"`` ``(m,)``; optional ``"crowd"`` ``(m,)``
        bool (COCO's ``iscrowd``), ``"areas"`` ``(m,)`` (default the box areas; COCO
        uses the mask areas) and ``"image_id"``.
      iou_thresholds: ``(T,)`` values in ``[0, 1]`` (default ``0.5, 0.55, ..., 0.95``).
      area_ranges: ``{name: (low, high)}`` (default COCO's all/small/medium/large);
        a box counts in a range when ``low <= area <= high``.
      max_detections: detections kept per image and class, in score order.
      categories: the classes evaluated (default: those of the ground truth).
      interpolation: ``"coco"`` (101 points) or ``"voc"`` (all points) for
        ``average_precision``, ``stats`` and ``per_class``.

    Raises:
      ValueError: different numbers of images or different ``image_id`` s, a box with
        ``x2 < x1`` or ``y2 < y1``, a NaN score, a threshold outside ``[0, 1]``.
      KeyError: a missing or unknown key in an image's mapping.
    """
    name = "evaluate_detections"
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"{name}: expected interpolation in {INTERPOLATIONS}, got {interpolation!r}")
    thresholds = _check_thresholds(name, iou_thresholds)
    area_ranges = dict(COCO_AREA_RANGES if area_ranges is None else area_ranges)
    if not area_ranges:
        raise ValueError(f"{name}: expected at least one area range, got {area_ranges!r}")
    for label, rng in area_ranges.items():
        if len(tuple(rng)) != 2 or not rng[0] <= rng[1]:
            raise ValueError(f"{name}: expected area range {label!r} as (low, high) with low <= high, got {rng!r}")
    max_detections = tuple(max_detections)
    if not max_detections or any(isinstance(m, bool) or int(m) != m or m < 1 for m in max_detections):
        raise ValueError(f"{name}: expected max_detections as positive ints, got {max_detections!r}")
    det, gt = _flatten_inputs(name, detections, ground_truth)
    categories = tuple(int(c) for c in (np.unique(gt["labels"]) if categories is None else sorted(set(categories))))
    n_t, n_k, n_a, n_m = len(thresholds), len(categories), len(area_ranges), len(max_detections)
    precision = -np.ones((n_t, len(COCO_RECALL_THRESHOLDS), n_k, n_a, n_m))
    recall = -np.ones((n_t, n_k, n_a, n_m))
    ap = -np.ones((n_t, n_k, n_a, n_m))
    if n_k:
        mt = _match(det, gt, np.array(categories), thresholds, list(area_ranges.values()), max(max_detections))
        width_d = mt["matched"].shape[-1]
        rank = np.broadcast_to(np.arange(width_d), mt["det_valid"].shape)
        for k in range(n_k):
            groups = np.nonzero(mt["group_cat"] == k)[0]
            groups = groups[np.argsort(mt["group_image"][groups], kind="mergesort")]
            for m, limit in enumerate(max_detections):
                sel = mt["det_valid"][groups] & (rank[groups] < limit)                  # (g, D), image-major
                scores = mt["det_scores"][groups][sel]
                order = np.argsort(-scores, kind="mergesort")
                for a in range(n_a):
                    positives = int(mt["counted"][a, groups].sum())
                    if positives == 0:
                        continue
                    hit = mt["matched"][a][:, groups][:, sel][:, order]                  # (T, n)
                    ign = mt["ignored"][a][:, groups][:, sel][:, order]
                    tp = np.cumsum(hit & ~ign, axis=1).astype(np.float64)
                    fp = np.cumsum(~hit & ~ign, axis=1).astype(np.float64)
                    rc = tp / positives
                    pr = tp / (fp + tp + np.spacing(1))
                    recall[:, k, a, m] = rc[:, -1] if rc.shape[1] else 0.0
                    precision[:, :, k, a, m] = _coco_curve(pr, rc)
                    ap[:, k, a, m] = (precision[:, :, k, a, m].mean(axis=1) if interpolation == "coco"
                                      else _interpolated_ap(pr, rc, "voc"))
    stats = _summarize(precision, recall, ap, thresholds, list(area_ranges), max_detections, interpolation)
    all_a = list(area_ranges).index("all") if "all" in area_ranges else 0
    per_class = {c: _mean_defined(ap[:, k, all_a, -1]) for k, c in enumerate(categories)}
    return DetectionEvaluation(precision, recall, ap, stats, per_class, categories, thresholds, area_ranges,
                               max_detections)


def _mean_defined(s) -> float:
    s = s[s > -1]
    return float(np.mean(s)) if s.size else -1.0


def _summarize(precision, recall, ap, thresholds, area_labels, max_detections, interpolation):
    """``COCOeval.summarize``'s twelve numbers (where the ranges and limits exist)."""
    def pick(kind, threshold=None, area="all", limit=None):
        limit = max_detections[-1] if limit is None else limit
        if area not in area_labels or limit not in max_detections:
            return -1.0
        a, m = area_labels.index(area), max_detections.index(limit)
        if kind == "recall":
            s = recall
        else:
            s = precision if interpolation == "coco" else ap
        if threshold is not None:
            s = s[np.where(threshold == thresholds)[0]]
        return _mean_defined(s[..., a, m])

    stats = {"AP": pick("ap"), "AP50": pick("ap", 0.5), "AP75": pick("ap", 0.75)}
    for area in ("small", "medium", "large"):
        stats[f"AP_{area}"] = pick("ap", area=area)
    for limit in max_detections:
        stats[f"AR{limit}"] = pick("recall", limit=limit)
    for area in ("small", "medium", "large"):
        stats[f"AR_{area}"] = pick("recall", area=area)
    return stats


def mean_average_precision(detections: Sequence[Mapping], ground_truth: Sequence[Mapping], *,
                           iou_threshold: float = 0.5, interpolation: str = "voc",
                           max_detections: int | None = None) -> float:
    """Mean over classes of the AP at one IoU threshold (PASCAL VOC's mAP by default).

    All areas count; ``max_detections`` per image and class (default: all of them).
    Classes without ground truth are left out; ``-1`` if no class has any.
    See :func:`evaluate_detections` for the inputs and the matching.
    """
    if max_detections is None:
        max_detections = max([len(np.asarray(d["scores"])) for d in detections if isinstance(d, Mapping)
                              and "scores" in d] + [1])
    result = evaluate_detections(detections, ground_truth, iou_thresholds=(iou_threshold,),
                                 area_ranges={"all": COCO_AREA_RANGES["all"]}, max_detections=(max_detections,),
                                 interpolation=interpolation)
    return _mean_defined(result.average_precision[0, :, 0, 0])
