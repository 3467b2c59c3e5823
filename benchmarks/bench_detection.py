"""Detection: NMS, the COCO evaluation, and the YOLO detector's train step, each against a reference.

In one process, rounds interleaving the variants (order alternating), medians and the
median per-round ratio:

- ``nms``: greedy NMS of 1,000 clustered boxes (IoU 0.5, class-agnostic, all kept
  slots) by :func:`fnnet.vision.nms.non_max_suppression` (jitted, static output of
  1,000 slots) against the usual vectorised NumPy greedy NMS (sort, then per kept box
  one IoU row against the rest), after checking both keep the same boxes in the same
  order; per-class NMS with 3 labels is timed too.
- ``map``: the full COCO box evaluation (AP@[.5:.95], AP50, AP75, by area, AR) of 500
  random scenes (3 classes, up to 6 boxes and 60 detections per scene) by
  :func:`fnnet.vision.evaluation.evaluate_detections` against ``pycocotools``
  (``COCO`` index, ``loadRes``, ``COCOeval.evaluate``, ``accumulate``, ``summarize``;
  its IoU is C, its matching Python), after checking the twelve numbers agree to 1e-6.
- ``train_step``: the ``shapes_detection`` detector (4 conv-BN-ReLU blocks, 32-64-128-128
  channels, 64 x 64 input, batch 32, YOLO loss, Adam) as one jitted fnnet step against
  the same network and loss in PyTorch eager (``torch.nn``, channels-first, default
  threads).

    python benchmarks/bench_detection.py [--rounds 5] [--skip-train-step]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import optim
from fnnet.train.step import make_train_step
from fnnet.vision.evaluation import evaluate_detections
from fnnet.vision.nms import non_max_suppression

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from experiments import shapes_detection  # noqa: E402


def numpy_nms(boxes, scores, iou_threshold):
    """Vectorised greedy NMS (the common NumPy implementation); stable order on ties."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        iw = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
        ih = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
        inter = iw * ih
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
        order = rest[iou <= iou_threshold]
    return keep


def numpy_nms_per_class(boxes, scores, labels, iou_threshold):
    keep = []
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        keep += [int(idx[k]) for k in numpy_nms(boxes[idx], scores[idx], iou_threshold)]
    return sorted(keep, key=lambda i: (-scores[i], i))


def interleave(variants, rounds):
    times = {k: [] for k in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % 2:] + names[:r % 2]:
            t0 = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def report(title, times, base, unit="ms"):
    print(f"-- {title}")
    for name, ts in times.items():
        print(f"   {name:22s} {statistics.median(ts) * 1e3:10.2f} {unit} (median of {len(ts)})")
    for name, ts in times.items():
        if name != base:
            ratio = statistics.median(o / b for b, o in zip(times[base], ts))
            print(f"   {name} / {base}: {ratio:.2f}x the time")


def bench_nms(rounds):
    rng = np.random.default_rng(0)
    n = 1000
    centres = rng.uniform(0, 600, (40, 2))[rng.integers(0, 40, n)]
    xy = centres + rng.normal(0, 12, (n, 2))
    wh = rng.uniform(20, 80, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.random(n).astype(np.float32)
    labels = rng.integers(0, 3, n).astype(np.int32)
    jb, js, jl = jnp.asarray(boxes), jnp.asarray(scores), jnp.asarray(labels)
    agnostic = jax.jit(lambda b, s: non_max_suppression(b, s, iou_threshold=0.5))
    per_class = jax.jit(lambda b, s, lab: non_max_suppression(b, s, lab, iou_threshold=0.5))
    r = agnostic(jb, js)
    ref = numpy_nms(boxes, scores, 0.5)
    assert r.indices[:int(r.valid)].tolist() == ref, "NMS differs from the NumPy loop"
    r = per_class(jb, js, jl)
    ref_c = numpy_nms_per_class(boxes, scores, labels, 0.5)
    assert r.indices[:int(r.valid)].tolist() == ref_c, "per-class NMS differs from the NumPy loop"
    print(f"NMS of {n} boxes keeps {len(ref)} (class-agnostic) and {len(ref_c)} (3 classes); equal to NumPy")
    times = interleave({"fnnet": lambda: jax.block_until_ready(agnostic(jb, js)),
                        "numpy": lambda: numpy_nms(boxes, scores, 0.5)}, rounds * 4)
    report("NMS, 1,000 boxes, class-agnostic", times, "fnnet")
    times = interleave({"fnnet": lambda: jax.block_until_ready(per_class(jb, js, jl)),
                        "numpy": lambda: numpy_nms_per_class(boxes, scores, labels, 0.5)}, rounds * 4)
    report("NMS, 1,000 boxes, per class (3)", times, "fnnet")


def random_scenes(n_images, rng, n_classes=3, max_gt=6, max_det=60):
    dets, gts = [], []
    for _ in range(n_images):
        m = int(rng.integers(1, max_gt + 1))
        xy = rng.uniform(0, 400, (m, 2))
        wh = np.exp(rng.uniform(np.log(8), np.log(200), (m, 2)))
        labels = rng.integers(0, n_classes, m)
        k = int(rng.integers(0, max_det + 1))
        src = rng.integers(0, m, k)
        jit = rng.normal(0, 0.1, (k, 4)) * np.concatenate([wh[src], wh[src]], 1)
        dxy = xy[src] + jit[:, :2]
        dwh = np.abs(wh[src] + jit[:, 2:]) + 1
        gts.append({"boxes": np.concatenate([xy, xy + wh], 1), "labels": labels, "_xywh": np.c_[xy, wh]})
        dets.append({"boxes": np.concatenate([dxy, dxy + dwh], 1), "scores": rng.random(k),
                     "labels": np.where(rng.random(k) < 0.8, labels[src], rng.integers(0, n_classes, k)),
                     "_xywh": np.c_[dxy, dwh]})
    return dets, gts


def pycocotools_eval(dets, gts, n_classes=3):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    images, anns, res = [], [], []
    for i, (d, g) in enumerate(zip(dets, gts)):
        images.append({"id": i + 1})
        for b, c in zip(g["_xywh"], g["labels"]):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c), "iscrowd": 0,
                         "bbox": b.tolist(), "area": float(b[2] * b[3])})
        for b, s, c in zip(d["_xywh"], d["scores"], d["labels"]):
            res.append({"image_id": i + 1, "category_id": int(c), "bbox": b.tolist(), "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": c} for c in range(n_classes)]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(res), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def bench_map(rounds):
    rng = np.random.default_rng(0)
    dets, gts = random_scenes(500, rng)
    plain_d = [{k: v for k, v in d.items() if not k.startswith("_")} for d in dets]
    plain_g = [{k: v for k, v in g.items() if not k.startswith("_")} for g in gts]
    ours = list(evaluate_detections(plain_d, plain_g).stats.values())
    theirs = pycocotools_eval(dets, gts)
    diff = float(np.max(np.abs(np.asarray(ours) - theirs)))
    assert diff < 1e-6, diff
    print(f"COCO evaluation of 500 scenes ({sum(len(d['scores']) for d in dets)} detections, "
          f"{sum(len(g['labels']) for g in gts)} boxes): AP {ours[0]:.4f}, equal to pycocotools "
          f"(max |diff| {diff:.1e})")
    times = interleave({"fnnet": lambda: evaluate_detections(plain_d, plain_g),
                        "pycocotools": lambda: pycocotools_eval(dets, gts)}, rounds)
    report("COCO evaluation, 500 scenes", times, "fnnet")


def torch_detector(config):
    import torch
    w, a = config.width, len(config.anchors)

    def block(cin, cout):
        return [torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False), torch.nn.BatchNorm2d(cout), torch.nn.ReLU()]

    return torch.nn.Sequential(*block(3, w), torch.nn.MaxPool2d(2), *block(w, 2 * w), torch.nn.MaxPool2d(2),
                               *block(2 * w, 4 * w), torch.nn.MaxPool2d(2), *block(4 * w, 4 * w),
                               torch.nn.Conv2d(4 * w, a * 8, 1))


def torch_yolo_loss(out, targets, anchors, stride=8.0, coord=5.0, noobj=0.5):
    import torch
    b, _, g, _ = out.shape
    out = out.permute(0, 2, 3, 1).reshape(b, g, g, len(anchors), 8)
    xy = torch.sigmoid(out[..., :2])
    wh = anchors / stride * torch.exp(out[..., 2:4])
    obj = torch.sigmoid(out[..., 4])
    probs = torch.softmax(out[..., 5:], -1)
    has = targets[..., 4]
    c = ((targets[..., :2] - xy) ** 2).sum(-1) + ((targets[..., 2:4].sqrt() - wh.sqrt()) ** 2).sum(-1)
    per = has * (coord * c + (1 - obj) ** 2 + ((targets[..., 5:] - probs) ** 2).sum(-1)) + noobj * (1 - has) * obj ** 2
    return per.sum((1, 2, 3)).mean()


def bench_train_step(rounds):
    import torch
    config = shapes_detection.Config()
    images, scenes = shapes_detection.render_scenes(32, 0, config)
    targets = shapes_detection.encode_scenes(scenes, config)
    model = shapes_detection.detector(config)
    params, state = model.init(jax.random.key(0), jnp.asarray(images))
    sizes = shapes_detection.anchor_sizes(config)
    opt = optim.adam(1e-3)
    step = make_train_step(model, lambda o, y: _yolo(o, y, sizes), opt)
    opt_state = opt.init(params)
    x, y = jnp.asarray(images), jnp.asarray(targets)
    key = jax.random.key(1)
    carry = [params, state, opt_state]

    def fnnet_step():
        p, s, o, loss = step(*carry, x, y, key)
        carry[:] = [p, s, o]
        jax.block_until_ready(loss)

    net = torch_detector(config)
    topt = torch.optim.Adam(net.parameters(), 1e-3)
    tx = torch.tensor(images, dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
    ty = torch.tensor(targets)
    anchors = torch.tensor(sizes, dtype=torch.float32)

    def torch_step():
        topt.zero_grad()
        loss = torch_yolo_loss(net(tx), ty, anchors)
        loss.backward()
        topt.step()

    for _ in range(3):
        fnnet_step()
        torch_step()
    times = interleave({"fnnet": fnnet_step, "pytorch_eager": torch_step}, rounds * 4)
    report(f"YOLO detector train step, batch 32 x 64 x 64 x 3 (torch threads {torch.get_num_threads()})",
           times, "fnnet")


def _yolo(o, y, sizes):
    from fnnet.vision.detection import yolo_loss
    return yolo_loss(o, y, anchor_sizes=sizes, stride=8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-train-step", action="store_true")
    args = parser.parse_args()
    print(f"load average at start {os.getloadavg()[0]:.1f}")
    bench_nms(args.rounds)
    bench_map(args.rounds)
    if not args.skip_train_step:
        bench_train_step(args.rounds)
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
