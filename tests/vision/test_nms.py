"""Non-max suppression against a plain NumPy greedy NMS (same kept set, same order, ties
included), under jit and vmap, and its bad-input errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet.vision.nms import non_max_suppression


def greedy_nms(boxes, scores, iou_threshold, labels=None, score_threshold=-np.inf, max_out=None):
    """The textbook loop: visit by decreasing score (stable), keep unless a kept box overlaps."""
    boxes = boxes.astype(np.float64)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])        # Python's sort is stable
    kept = []
    for i in order:
        if not scores[i] > score_threshold:
            continue
        ok = True
        for j in kept:
            if labels is not None and labels[i] != labels[j]:
                continue
            p, q = boxes[i], boxes[j]
            iw = max(min(p[2], q[2]) - max(p[0], q[0]), 0)
            ih = max(min(p[3], q[3]) - max(p[1], q[1]), 0)
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - iw * ih
            if union > 0 and iw * ih / union > iou_threshold:
                ok = False
                break
        if ok:
            kept.append(i)
        if max_out is not None and len(kept) == max_out:
            break
    return kept


def clustered_boxes(rng, n, centres=12):
    """Boxes jittered around a few centres (plenty of overlap), with exact duplicates and tied scores."""
    c = rng.uniform(0, 200, (centres, 2))[rng.integers(0, centres, n)]
    xy = c + rng.normal(0, 6, (n, 2))
    wh = rng.uniform(10, 40, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    boxes[n // 2: n // 2 + 5] = boxes[:5]                       # duplicates ...
    scores = np.round(rng.random(n), 1).astype(np.float32)     # ... and many equal scores
    return boxes, scores


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_class_agnostic_equals_greedy_loop(rng, threshold):
    boxes, scores = clustered_boxes(rng, 150)
    r = non_max_suppression(jnp.asarray(boxes), jnp.asarray(scores), iou_threshold=threshold)
    kept = greedy_nms(boxes, scores, threshold)
    assert int(r.valid) == len(kept)
    assert r.indices[:len(kept)].tolist() == kept and np.all(np.asarray(r.indices[len(kept):]) == -1)
    np.testing.assert_array_equal(r.boxes[:len(kept)], boxes[kept])
    np.testing.assert_array_equal(r.scores[:len(kept)], scores[kept])
    assert 5 < len(kept) < 140                                  # suppression happened, not everything


def test_per_class_score_threshold_and_max_output_under_jit(rng):
    boxes, scores = clustered_boxes(rng, 120)
    labels = rng.integers(0, 3, 120).astype(np.int32)
    fn = jax.jit(lambda b, s, l: non_max_suppression(b, s, l, iou_threshold=0.4, score_threshold=0.25,
                                                     max_output_size=20))
    r = fn(jnp.asarray(boxes), jnp.asarray(scores), jnp.asarray(labels))
    kept = greedy_nms(boxes, scores, 0.4, labels=labels, score_threshold=0.25, max_out=20)
    assert int(r.valid) == len(kept) == 20 and r.indices.tolist() == kept
    np.testing.assert_array_equal(r.labels, labels[kept])
    agnostic = non_max_suppression(jnp.asarray(boxes), jnp.asarray(scores), jnp.asarray(labels),
                                   iou_threshold=0.4, per_class=False)
    assert agnostic.indices[:int(agnostic.valid)].tolist() == greedy_nms(boxes, scores, 0.4)


def test_vmap_over_images_pads_each_image(rng):
    batch = [clustered_boxes(rng, 60, centres=c) for c in (2, 6, 20)]
    boxes = jnp.asarray(np.stack([b for b, _ in batch]))
    scores = jnp.asarray(np.stack([s for _, s in batch]))
    scores = scores.at[0, 10:].set(0.0)                          # image 0: most scores under the threshold
    r = jax.jit(jax.vmap(lambda b, s: non_max_suppression(b, s, iou_threshold=0.5, score_threshold=0.05,
                                                          max_output_size=30)))(boxes, scores)
    assert r.indices.shape == (3, 30) and r.boxes.shape == (3, 30, 4)
    for i in range(3):
        kept = greedy_nms(np.asarray(boxes[i]), np.asarray(scores[i]), 0.5, score_threshold=0.05, max_out=30)
        assert int(r.valid[i]) == len(kept) and r.indices[i, :len(kept)].tolist() == kept
        assert np.all(np.asarray(r.indices[i, len(kept):]) == -1) and np.all(np.asarray(r.boxes[i, len(kept):]) == 0)
    assert len({int(v) for v in r.valid}) > 1


def test_ties_keep_the_smaller_index():
    boxes = jnp.array([[0.0, 0, 10, 10]] * 3 + [[50.0, 50, 60, 60]])
    r = non_max_suppression(boxes, jnp.array([0.5, 0.9, 0.9, 0.9]), iou_threshold=0.5)
    assert r.indices.tolist() == [1, 3, -1, -1] and int(r.valid) == 2


def test_bad_inputs_raise_clear_errors():
    b, s = jnp.array([[0.0, 0, 1, 1], [0, 0, 2, 2]]), jnp.array([0.5, 0.4])
    with pytest.raises(ValueError, match="without NaN, got NaN at index 1"):
        non_max_suppression(b, jnp.array([0.5, jnp.nan]))
    with pytest.raises(ValueError, match=r"x1 <= x2 and y1 <= y2 \(xyxy\), got box 1"):
        non_max_suppression(jnp.array([[0.0, 0, 1, 1], [3, 0, 2, 2]]), s)
    with pytest.raises(ValueError, match=r"iou_threshold in \[0, 1\], got 1.5"):
        non_max_suppression(b, s, iou_threshold=1.5)
    with pytest.raises(ValueError, match=r"scores of shape \(2,\) for 2 boxes, got \(3,\)"):
        non_max_suppression(b, jnp.zeros(3))
    with pytest.raises(TypeError, match="integer labels"):
        non_max_suppression(b, s, jnp.zeros(2))
    with pytest.raises(ValueError, match="max_output_size a positive int, got 0"):
        non_max_suppression(b, s, max_output_size=0)
    # inside jit a NaN score cannot raise: it is never kept
    r = jax.jit(lambda s: non_max_suppression(b, s))(jnp.array([jnp.nan, 0.3]))
    assert r.indices.tolist() == [1, -1]
