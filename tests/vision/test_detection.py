"""Anchors, YOLO targets, loss and decoding against written-out NumPy loops and finite
differences; the convolutional sliding window against the crop-and-classify loop."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import functional as F
from fnnet.gradcheck import check_gradients
from fnnet.vision.detection import (decode_yolo, decode_yolo_targets, dense_to_conv, encode_yolo_targets,
                                    grid_anchors, localization_head, localization_loss, sliding_windows,
                                    yolo_detect, yolo_loss)

ANCHORS = np.array([[12.0, 12.0], [28.0, 14.0], [14.0, 28.0]])
STRIDE = 8.0
GRID = (6, 5)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def separated_boxes(rng, n):
    """Boxes whose centres fall in distinct cells of GRID."""
    cells = rng.choice(GRID[0] * GRID[1], n, replace=False)
    i, j = cells // GRID[1], cells % GRID[1]
    c = np.stack([(j + rng.uniform(0.05, 0.95, n)) * STRIDE, (i + rng.uniform(0.05, 0.95, n)) * STRIDE], 1)
    wh = rng.uniform(6, 32, (n, 2))
    return np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)


def encode_loop(boxes, labels, num_classes):
    t = np.zeros(GRID + (len(ANCHORS), 5 + num_classes))
    for b, c in zip(boxes.astype(np.float64), labels):
        cx, cy, w, h = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]
        i, j = min(int(cy // STRIDE), GRID[0] - 1), min(int(cx // STRIDE), GRID[1] - 1)
        ious = [min(w, aw) * min(h, ah) / (w * h + aw * ah - min(w, aw) * min(h, ah)) for aw, ah in ANCHORS]
        a = int(np.argmax(ious))
        t[i, j, a] = 0
        t[i, j, a, :5] = [cx / STRIDE - j, cy / STRIDE - i, w / STRIDE, h / STRIDE, 1]
        t[i, j, a, 5 + c] = 1
    return t


def test_grid_anchors_against_a_loop():
    a = np.asarray(grid_anchors(GRID, STRIDE, ANCHORS))
    assert a.shape == GRID + (3, 4)
    for i in range(GRID[0]):
        for j in range(GRID[1]):
            for k, (w, h) in enumerate(ANCHORS):
                cx, cy = (j + 0.5) * STRIDE, (i + 0.5) * STRIDE
                np.testing.assert_allclose(a[i, j, k], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def test_encode_matches_a_loop_and_decodes_back(rng):
    boxes = separated_boxes(rng, 7)
    labels = rng.integers(0, 4, 7).astype(np.int32)
    valid = np.ones(9, bool)
    valid[7:] = False                                        # two padding rows
    padded = np.concatenate([boxes, np.tile([[0.0, 0, 30, 30]], (2, 1)).astype(np.float32)])
    t = encode_yolo_targets(jnp.asarray(padded), jnp.asarray(np.r_[labels, 0, 0]), jnp.asarray(valid),
                            grid_shape=GRID, stride=STRIDE, anchor_sizes=ANCHORS, num_classes=4)
    np.testing.assert_allclose(t, encode_loop(boxes, labels, 4), atol=1e-5)
    decoded, dec_labels, present = (np.asarray(v) for v in decode_yolo_targets(t, stride=STRIDE))
    assert present.sum() == 7
    got = sorted(zip(map(tuple, decoded[present].round(3)), dec_labels[present]))
    want = sorted(zip(map(tuple, boxes.round(3)), labels))
    for (gb, gl), (wb, wl) in zip(got, want):
        np.testing.assert_allclose(gb, wb, atol=2e-3)
        assert gl == wl
    # a batch under vmap and jit equals image by image
    batch = jax.jit(jax.vmap(lambda b, lab: encode_yolo_targets(b, lab, grid_shape=GRID, stride=STRIDE,
                                                                anchor_sizes=ANCHORS, num_classes=4)))
    two = batch(jnp.stack([jnp.asarray(boxes), jnp.asarray(boxes[::-1])]), jnp.stack([labels, labels[::-1]]))
    np.testing.assert_allclose(two[1], encode_loop(boxes[::-1], labels[::-1], 4), atol=1e-5)


def test_the_later_box_keeps_a_shared_slot():
    boxes = jnp.array([[0.0, 0, 12, 12], [1.0, 1, 13, 13], [40, 0, 47, 7]])     # 0 and 1: cell (0, 0), anchor 0
    t = encode_yolo_targets(boxes, jnp.array([0, 1, 2]), grid_shape=GRID, stride=STRIDE, anchor_sizes=ANCHORS,
                            num_classes=3)
    np.testing.assert_allclose(t, encode_loop(np.asarray(boxes), [0, 1, 2], 3), atol=1e-6)
    assert float(t[0, 0, 0, 6]) == 1.0 and float(jnp.sum(t[..., 4])) == 2.0


def yolo_loss_loop(out, tgt, coord=5.0, noobj=0.5, rescore=False):
    total = 0.0
    for b in range(out.shape[0]):
        for i in range(out.shape[1]):
            for j in range(out.shape[2]):
                for a in range(out.shape[3]):
                    o, t = out[b, i, j, a], tgt[b, i, j, a]
                    conf = sigmoid(o[4])
                    if t[4] > 0:
                        x, y = sigmoid(o[0]), sigmoid(o[1])
                        w, h = ANCHORS[a, 0] / STRIDE * np.exp(o[2]), ANCHORS[a, 1] / STRIDE * np.exp(o[3])
                        p = np.exp(o[5:] - o[5:].max())
                        p /= p.sum()
                        total += coord * ((t[0] - x) ** 2 + (t[1] - y) ** 2)
                        total += coord * ((np.sqrt(t[2]) - np.sqrt(w)) ** 2 + (np.sqrt(t[3]) - np.sqrt(h)) ** 2)
                        target = 1.0
                        if rescore:                        # IoU of the predicted and true boxes (cell units)
                            iw = max(min(x + w / 2, t[0] + t[2] / 2) - max(x - w / 2, t[0] - t[2] / 2), 0)
                            ih = max(min(y + h / 2, t[1] + t[3] / 2) - max(y - h / 2, t[1] - t[3] / 2), 0)
                            target = iw * ih / (w * h + t[2] * t[3] - iw * ih)
                        total += (target - conf) ** 2 + np.sum((t[5:] - p) ** 2)
                    else:
                        total += noobj * conf ** 2
    return total / out.shape[0]


def test_yolo_loss_against_a_loop_and_its_gradient(x64, rng):
    targets = np.stack([encode_loop(separated_boxes(rng, 4), rng.integers(0, 3, 4), 3) for _ in range(2)])
    outputs = rng.normal(0, 1, targets.shape)
    loss = yolo_loss(jnp.asarray(outputs), jnp.asarray(targets), anchor_sizes=ANCHORS, stride=STRIDE)
    assert float(loss) == pytest.approx(yolo_loss_loop(outputs, targets), rel=1e-12)
    f = jax.jit(lambda o: yolo_loss(o, jnp.asarray(targets), anchor_sizes=ANCHORS, stride=STRIDE))
    check_gradients(f, jnp.asarray(outputs))
    rescored = jax.jit(lambda o: yolo_loss(o, jnp.asarray(targets), anchor_sizes=ANCHORS, stride=STRIDE,
                                           rescore=True))
    assert float(rescored(jnp.asarray(outputs))) == pytest.approx(yolo_loss_loop(outputs, targets, rescore=True),
                                                                  rel=1e-12)


def test_decode_and_detect_against_a_loop(rng):
    outputs = rng.normal(0, 1.5, (2,) + GRID + (3, 7)).astype(np.float32)
    boxes, obj, probs = (np.asarray(v) for v in decode_yolo(jnp.asarray(outputs), anchor_sizes=ANCHORS,
                                                              stride=STRIDE))
    k = 0
    for i in range(GRID[0]):
        for j in range(GRID[1]):
            for a in range(3):
                o = outputs[1, i, j, a].astype(np.float64)
                cx, cy = (j + sigmoid(o[0])) * STRIDE, (i + sigmoid(o[1])) * STRIDE
                w, h = ANCHORS[a, 0] * np.exp(o[2]), ANCHORS[a, 1] * np.exp(o[3])
                np.testing.assert_allclose(boxes[1, k], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2],
                                           rtol=1e-5, atol=1e-4)
                assert obj[1, k] == pytest.approx(sigmoid(o[4]), rel=1e-5)
                k += 1
    r = yolo_detect(jnp.asarray(outputs), anchor_sizes=ANCHORS, stride=STRIDE, iou_threshold=0.5,
                    score_threshold=0.2, max_output_size=50)
    scores = obj * probs.max(-1)
    for b in range(2):
        n = int(r.valid[b])
        kept = r.indices[b, :n].tolist()
        assert np.all(scores[b, kept] > 0.2) and np.all(np.diff(scores[b, kept]) <= 0)
        labels = probs[b].argmax(-1)
        assert r.labels[b, :n].tolist() == labels[kept].tolist()
        # no two kept boxes of one class overlap by more than the threshold (NumPy IoU)
        kb = boxes[b, kept].astype(np.float64)
        for p in range(n):
            for q in range(p):
                if labels[kept[p]] == labels[kept[q]]:
                    iw = max(min(kb[p, 2], kb[q, 2]) - max(kb[p, 0], kb[q, 0]), 0)
                    ih = max(min(kb[p, 3], kb[q, 3]) - max(kb[p, 1], kb[q, 1]), 0)
                    ap, aq = np.prod(kb[p, 2:] - kb[p, :2]), np.prod(kb[q, 2:] - kb[q, :2])
                    assert iw * ih / (ap + aq - iw * ih) <= 0.5 + 1e-6
        # every dropped box above the threshold is suppressed by a kept one of its class
        assert n > 3


def test_convolutional_sliding_window_equals_the_crop_loop(x64, rng):
    """A 10x10 crop classifier (conv 3x3, max-pool 2, dense 16, dense 3) run as one
    convolutional pass over a 20x24 image scores every crop at stride 2."""
    k1 = jnp.asarray(rng.normal(0, 0.3, (3, 3, 2, 4)))
    b1 = jnp.asarray(rng.normal(0, 0.1, 4))
    w2, b2 = jnp.asarray(rng.normal(0, 0.2, (4 * 4 * 4, 16))), jnp.asarray(rng.normal(0, 0.1, 16))
    w3, b3 = jnp.asarray(rng.normal(0, 0.3, (16, 3))), jnp.asarray(rng.normal(0, 0.1, 3))

    def features(x):
        return F.max_pool(jax.nn.relu(F.conv(x, k1, b1)), 2)

    @jax.jit
    def classify(crops):                        # (N, 10, 10, 2) -> (N, 3)
        h = features(crops).reshape(len(crops), -1)
        return F.dense(jax.nn.relu(F.dense(h, w2, b2)), w3, b3)

    @jax.jit
    def convolutional(images):                  # (B, H, W, 2) -> (B, oh, ow, 3)
        h = jax.nn.relu(F.conv(features(images), dense_to_conv(w2, (4, 4)), b2))
        return F.conv(h, dense_to_conv(w3, 1), b3)

    images = jnp.asarray(rng.normal(0, 1, (2, 20, 24, 2)))
    dense_scores = convolutional(images)
    assert dense_scores.shape == (2, 6, 8, 3)
    crops = np.asarray(sliding_windows(images, 10, 2))
    loop = np.zeros((2, 6, 8, 3))
    for b in range(2):
        for p in range(6):
            for q in range(8):
                crop = np.asarray(images[b, 2 * p:2 * p + 10, 2 * q:2 * q + 10])
                np.testing.assert_array_equal(crops[b, p, q], crop)
                loop[b, p, q] = classify(jnp.asarray(crop[None]))[0]
    np.testing.assert_allclose(dense_scores, loop, rtol=1e-12, atol=1e-12)


def localization_loss_loop(out, tgt, k, c):
    total = 0.0
    for o, t in zip(out, tgt):
        p = sigmoid(o[0])
        total += -(t[0] * np.log(p) + (1 - t[0]) * np.log(1 - p))
        if t[0] > 0:
            logits = o[5 + 2 * k:]
            ce = np.log(np.sum(np.exp(logits))) - logits[int(t[-1])]
            total += np.sum((t[1:5] - o[1:5]) ** 2) + np.sum((t[5:5 + 2 * k] - o[5:5 + 2 * k]) ** 2) + ce
    return total / len(out)


def test_localization_loss_against_a_loop_and_its_gradient(x64, rng):
    out = rng.normal(0, 1, (6, 5 + 4 + 3))
    tgt = np.concatenate([(rng.random((6, 1)) < 0.6), rng.random((6, 4 + 4)), rng.integers(0, 3, (6, 1))], 1)
    loss = localization_loss(jnp.asarray(out), jnp.asarray(tgt), num_classes=3, num_landmarks=2)
    assert float(loss) == pytest.approx(localization_loss_loop(out, tgt, 2, 3), rel=1e-12)
    check_gradients(jax.jit(lambda o: localization_loss(o, jnp.asarray(tgt), num_classes=3, num_landmarks=2)),
                    jnp.asarray(out))
    params, _ = localization_head(3, 2).init(jax.random.key(0), jnp.zeros((1, 8)))
    assert params["kernel"].shape == (8, 12)


def test_bad_inputs_raise_clear_errors():
    b = jnp.array([[0.0, 0, 10, 10]])
    kw = dict(grid_shape=GRID, stride=STRIDE, anchor_sizes=ANCHORS, num_classes=3)
    with pytest.raises(ValueError, match="x1 <= x2"):
        encode_yolo_targets(jnp.array([[10.0, 0, 0, 10]]), jnp.array([0]), **kw)
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        encode_yolo_targets(b, jnp.array([3]), **kw)
    with pytest.raises(ValueError, match="anchor_sizes as A >= 1 pairs"):
        encode_yolo_targets(b, jnp.array([0]), **{**kw, "anchor_sizes": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="stride > 0, got 0"):
        grid_anchors(GRID, 0, ANCHORS)
    with pytest.raises(ValueError, match=r"outputs \(\.\.\., H, W, 3, 5 \+ C\) for 3 anchors"):
        yolo_loss(jnp.zeros((1, 6, 5, 2, 8)), jnp.zeros((1, 6, 5, 2, 8)), anchor_sizes=ANCHORS, stride=STRIDE)
    with pytest.raises(ValueError, match="targets of the outputs' shape"):
        yolo_loss(jnp.zeros((1, 6, 5, 3, 8)), jnp.zeros((1, 6, 5, 3, 7)), anchor_sizes=ANCHORS, stride=STRIDE)
    with pytest.raises(ValueError, match=r"iou_threshold in \[0, 1\]"):
        yolo_detect(jnp.zeros((1, 6, 5, 3, 8)), anchor_sizes=ANCHORS, stride=STRIDE, iou_threshold=-0.1)
    with pytest.raises(ValueError, match="rows divisible by 4 x 4"):
        dense_to_conv(jnp.zeros((30, 2)), (4, 4))
    with pytest.raises(ValueError, match=r"outputs \(B, 12\)"):
        localization_loss(jnp.zeros((2, 11)), jnp.zeros((2, 10)), num_classes=3, num_landmarks=2)
