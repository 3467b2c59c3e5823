"""Detection metrics against pycocotools' COCOeval (to 1e-6) and written-out NumPy loops."""
import contextlib
import io

import numpy as np
import pytest

from fnnet.vision.evaluation import (COCO_AREA_RANGES, average_precision, evaluate_detections,
                                     mean_average_precision, precision_recall_curve)

COCO_NAMES = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
              "AR_small", "AR_medium", "AR_large"]


def random_scenes(rng, n_images, n_classes, max_gt=6, max_det=30, size=200.0, crowd=False, tie_scores=False):
    """Ground truth and detections: some detections jitter a ground-truth box, the rest are random."""
    ground_truth, detections = [], []
    for _ in range(n_images):
        m = int(rng.integers(0, max_gt + 1))
        xy = rng.uniform(0, size, (m, 2))
        wh = np.exp(rng.uniform(np.log(4), np.log(150), (m, 2)))
        gxywh = np.concatenate([xy, wh], 1)
        g = {"boxes": np.concatenate([xy, xy + wh], 1), "labels": rng.integers(0, n_classes, m)}
        if crowd:
            g["crowd"] = rng.random(m) < 0.15
        n = int(rng.integers(0, max_det + 1))
        src = rng.integers(0, max(m, 1), n)
        near = (rng.random(n) < 0.6) & (m > 0)
        dxy = rng.uniform(0, size, (n, 2))
        dwh = np.exp(rng.uniform(np.log(2), np.log(150), (n, 2)))
        if m:
            jit = rng.normal(0, 0.12, (n, 4)) * np.concatenate([gxywh[src, 2:], gxywh[src, 2:]], 1)
            dxy = np.where(near[:, None], gxywh[src, :2] + jit[:, :2], dxy)
            dwh = np.where(near[:, None], np.abs(gxywh[src, 2:] + jit[:, 2:]) + 0.5, dwh)
        labels = np.where(near & (rng.random(n) < 0.85), g["labels"][src] if m else 0, rng.integers(0, n_classes, n))
        scores = rng.random(n)
        if tie_scores:
            scores = np.round(scores * 4) / 4
        detections.append({"boxes": np.concatenate([dxy, dxy + dwh], 1), "scores": scores,
                           "labels": labels.astype(np.int64), "_xywh": np.concatenate([dxy, dwh], 1)})
        g["_xywh"] = gxywh
        ground_truth.append(g)
    return detections, ground_truth


def strip(entries):
    return [{k: v for k, v in e.items() if not k.startswith("_")} for e in entries]


def coco_stats(detections, ground_truth, n_classes, iou_type="bbox"):
    """pycocotools' twelve numbers and its eval dict for the same scenes (image i -> id i + 1)."""
    pycocotools = pytest.importorskip("pycocotools")
    del pycocotools
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    images, anns, dets = [], [], []
    for i, (d, g) in enumerate(zip(detections, ground_truth)):
        images.append({"id": i + 1, "width": 400, "height": 400})
        for j, (box, label) in enumerate(zip(g["_xywh"], g["labels"])):
            crowd = int(g["crowd"][j]) if "crowd" in g else 0
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(label),
                         "bbox": [float(v) for v in box], "area": float(box[2] * box[3]), "iscrowd": crowd})
        for box, score, label in zip(d["_xywh"], d["scores"], d["labels"]):
            dets.append({"image_id": i + 1, "category_id": int(label), "bbox": [float(v) for v in box],
                         "score": float(score)})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": c} for c in range(n_classes)]}
        gt.createIndex()
        dt = gt.loadRes(dets) if dets else COCO()
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("seed, crowd, ties", [(0, False, False), (1, True, False), (2, False, True)])
def test_equals_pycocotools_cocoeval(seed, crowd, ties):
    rng = np.random.default_rng(seed)
    dets, gts = random_scenes(rng, 40, 4, crowd=crowd, tie_scores=ties)
    ours = evaluate_detections(strip(dets), strip(gts))
    ev = coco_stats(dets, gts, 4)
    np.testing.assert_allclose([ours.stats[n] for n in COCO_NAMES], ev.stats, atol=1e-6, rtol=0)
    # every category, area range and limit, not only the summaries (COCO's categories with gt)
    cats = [c for c in range(4) if c in ours.categories]
    np.testing.assert_allclose(ours.precision, ev.eval["precision"][:, :, cats], atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.recall, ev.eval["recall"][:, cats], atol=1e-6, rtol=0)
    assert 0.05 < ours.stats["AP"] < 0.95           # a non-trivial case


def test_small_limits_and_many_detections_equal_pycocotools(rng):
    dets, gts = random_scenes(rng, 12, 2, max_gt=12, max_det=140)
    ours = evaluate_detections(strip(dets), strip(gts))
    ev = coco_stats(dets, gts, 2)
    np.testing.assert_allclose([ours.stats[n] for n in COCO_NAMES], ev.stats, atol=1e-6, rtol=0)


def voc_ap_loop(rec, prec):
    """The VOC 2010+ devkit's all-point AP (voc_eval.py), written out."""
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(len(mpre) - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def test_precision_recall_and_voc_ap_against_loops(rng):
    scores = rng.random(50)
    tp = rng.random(50) < 0.5
    p, r, s = precision_recall_curve(scores, tp, 40)
    order = np.argsort(-scores)
    tps = fps = 0
    for n, i in enumerate(order):
        tps, fps = tps + tp[i], fps + (not tp[i])
        assert p[n] == pytest.approx(tps / (tps + fps)) and r[n] == pytest.approx(tps / 40)
    assert s[0] == scores.max()
    assert average_precision(p, r, "voc") == pytest.approx(voc_ap_loop(r, p), abs=1e-12)
    # COCO's 101 points, written out
    env = [max(p[n:]) for n in range(len(p))]
    expected = np.mean([next((env[n] for n in range(len(r)) if r[n] >= t), 0.0) for t in np.linspace(0, 1, 101)])
    assert average_precision(p, r, "coco") == pytest.approx(expected, abs=1e-12)


def test_voc_map_against_a_written_out_evaluation(rng):
    dets, gts = random_scenes(rng, 25, 3)
    dets, gts = strip(dets), strip(gts)
    expected = []
    for c in range(3):
        records = []          # (score, image, rank) ; matched by the greedy COCO rule at 0.5
        npos = sum(int(np.sum(g["labels"] == c)) for g in gts)
        if npos == 0:
            continue
        for i, (d, g) in enumerate(zip(dets, gts)):
            gb = g["boxes"][g["labels"] == c]
            idx = np.nonzero(d["labels"] == c)[0]
            idx = idx[np.argsort(-d["scores"][idx], kind="stable")]
            used = np.zeros(len(gb), bool)
            for j in idx:
                b = d["boxes"][j]
                best, best_iou = -1, 0.5
                for k, q in enumerate(gb):
                    iw = min(b[2], q[2]) - max(b[0], q[0])
                    ih = min(b[3], q[3]) - max(b[1], q[1])
                    inter = iw * ih if iw > 0 and ih > 0 else 0.0
                    iou = inter / ((b[2] - b[0]) * (b[3] - b[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter)
                    if not used[k] and iou >= best_iou:
                        best, best_iou = k, iou
                if best >= 0:
                    used[best] = True
                records.append((d["scores"][j], best >= 0))
        records.sort(key=lambda t: -t[0])
        tp = np.cumsum([t[1] for t in records])
        fp = np.cumsum([not t[1] for t in records])
        expected.append(voc_ap_loop(tp / npos, tp / np.maximum(tp + fp, 1e-300)))
    assert mean_average_precision(dets, gts) == pytest.approx(np.mean(expected), abs=1e-9)


def test_perfect_detections_score_one():
    gts = [{"boxes": np.array([[0.0, 0, 10, 10], [20, 20, 60, 70]]), "labels": np.array([0, 1])}]
    dets = [{"boxes": gts[0]["boxes"], "scores": np.array([0.9, 0.8]), "labels": np.array([0, 1])}]
    ours = evaluate_detections(dets, gts)
    # precision TP / (TP + FP + eps) is 1 - 2e-16 (COCO's spacing(1)); no large box: -1
    assert ours.stats["AP"] == pytest.approx(1.0, abs=1e-15) and ours.stats["AP_large"] == -1.0
    assert mean_average_precision(dets, gts) == pytest.approx(1.0, abs=1e-15)


def test_bad_inputs_raise_clear_errors():
    g = [{"boxes": np.array([[0.0, 0, 10, 10]]), "labels": np.array([0])}]
    d = [{"boxes": np.array([[0.0, 0, 10, 10]]), "scores": np.array([0.5]), "labels": np.array([0])}]
    with pytest.raises(ValueError, match="same images.*1 detection entries and 2 ground-truth"):
        evaluate_detections(d, g + g)
    with pytest.raises(ValueError, match="image_id 3 in detections and 4"):
        evaluate_detections([{**d[0], "image_id": 3}], [{**g[0], "image_id": 4}])
    with pytest.raises(ValueError, match=r"x1 <= x2 and y1 <= y2.*box 0 = \[5.0, 0.0, 1.0, 10.0\]"):
        evaluate_detections([{**d[0], "boxes": np.array([[5.0, 0, 1, 10]])}], g)
    with pytest.raises(ValueError, match="without NaN, got NaN at index 0"):
        evaluate_detections([{**d[0], "scores": np.array([np.nan])}], g)
    with pytest.raises(ValueError, match=r"iou_thresholds in \[0, 1\], got 1.5"):
        evaluate_detections(d, g, iou_thresholds=(0.5, 1.5))
    with pytest.raises(KeyError, match="missing \\['scores'\\]"):
        evaluate_detections([{"boxes": d[0]["boxes"], "labels": d[0]["labels"]}], g)
    with pytest.raises(ValueError, match=r"'scores'\] of shape \(1,\)"):
        evaluate_detections([{**d[0], "scores": np.array([0.5, 0.2])}], g)
    with pytest.raises(ValueError, match="interpolation"):
        evaluate_detections(d, g, interpolation="11point")
    assert set(COCO_AREA_RANGES) == {"all", "small", "medium", "large"}
