"""Box conversions, IoU and GIoU against pycocotools, torchvision-free NumPy loops, and
finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet.gradcheck import check_gradients
from fnnet.vision.boxes import box_area, box_convert, box_iou, check_boxes, clip_boxes, generalized_box_iou


def random_boxes(rng, n, degenerate=True):
    xy = rng.uniform(-20, 100, (n, 2))
    wh = rng.uniform(0, 60, (n, 2))
    if degenerate:                       # zero width, zero height, empty, and duplicates
        wh[: n // 8, 0] = 0
        wh[n // 8: n // 4, 1] = 0
        wh[n // 4: n // 4 + 2] = 0
    return np.concatenate([xy, xy + wh], 1)


def iou_loop(a, b, generalized=False):
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = max(min(p[2], q[2]) - max(p[0], q[0]), 0)
            ih = max(min(p[3], q[3]) - max(p[1], q[1]), 0)
            inter = iw * ih
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            iou = inter / union if union > 0 else 0.0
            if generalized:
                c = (max(p[2], q[2]) - min(p[0], q[0])) * (max(p[3], q[3]) - min(p[1], q[1]))
                iou -= (c - union) / c if c > 0 else 0.0
            out[i, j] = iou
    return out


def test_conversions_round_trip_and_match_hand_values(rng):
    b = random_boxes(rng, 50)
    for fmt in ("cxcywh", "xywh"):
        back = box_convert(box_convert(b, "xyxy", fmt), fmt, "xyxy")
        np.testing.assert_allclose(back, b, atol=1e-4)
    c = np.asarray(box_convert(b, "xyxy", "cxcywh"))
    np.testing.assert_allclose(c[:, 0], (b[:, 0] + b[:, 2]) / 2, rtol=1e-6)
    np.testing.assert_allclose(c[:, 3], b[:, 3] - b[:, 1], rtol=1e-5, atol=1e-5)
    w = np.asarray(box_convert(b, "xyxy", "xywh"))
    np.testing.assert_allclose(box_convert(w, "xywh", "cxcywh"), c, atol=1e-4)
    np.testing.assert_allclose(box_area(b), (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), rtol=1e-5, atol=1e-3)
    batched = box_convert(b.reshape(5, 10, 4), "xyxy", "xywh")      # leading axes
    np.testing.assert_allclose(batched.reshape(50, 4), w)


def test_iou_against_pycocotools_and_a_loop(rng):
    mask = pytest.importorskip("pycocotools.mask")
    a, b = random_boxes(rng, 40), random_boxes(rng, 30)
    a[-1], b[-1] = a[30], a[30]                                # identical boxes
    ours = np.asarray(box_iou(a, b))
    xywh = lambda x: np.concatenate([x[:, :2], x[:, 2:] - x[:, :2]], 1)
    coco = mask.iou(xywh(a).tolist(), xywh(b).tolist(), [0] * len(b))
    np.testing.assert_allclose(ours, coco, atol=2e-6)
    np.testing.assert_allclose(ours, iou_loop(a, b), atol=2e-6)
    assert ours[-1, -1] == pytest.approx(1.0) and np.all(ours[0, :][b[:, 2] - b[:, 0] == 0] == 0)
    jitted = jax.jit(jax.vmap(box_iou))(jnp.stack([a, a[::-1]]), jnp.stack([b, b]))
    np.testing.assert_allclose(jitted[1], iou_loop(a[::-1], b), atol=2e-6)


def test_generalized_iou_against_a_loop(rng):
    a, b = random_boxes(rng, 25), random_boxes(rng, 20)
    g = np.asarray(generalized_box_iou(a, b))
    np.testing.assert_allclose(g, iou_loop(a, b, generalized=True), atol=3e-6)
    assert g.min() < -0.3 and g.max() <= 1


def test_iou_and_giou_gradients_by_finite_differences(x64, rng):
    a = jnp.asarray(random_boxes(rng, 3, degenerate=False))
    b = jnp.asarray(random_boxes(rng, 3, degenerate=False)) * 0.5 + 20
    check_gradients(jax.jit(lambda t: jnp.sum(box_iou(*t) ** 2)), (a, b))
    check_gradients(jax.jit(lambda t: jnp.sum(generalized_box_iou(*t) * jnp.arange(3.0)[None, :])), (a, b))
    # two empty boxes: value 0 and a finite (zero) gradient, never NaN
    empty = jnp.zeros((1, 4))
    grad = jax.grad(lambda x: jnp.sum(generalized_box_iou(x, empty)))(empty)
    assert np.all(np.isfinite(grad))


def test_clip_boxes():
    b = jnp.array([[-5.0, 3, 70, 90], [10, -1, 20, 5]])
    np.testing.assert_array_equal(clip_boxes(b, (64, 48)), [[0, 3, 48, 64], [10, 0, 20, 5]])


def test_bad_boxes_raise_clear_errors():
    with pytest.raises(ValueError, match=r"x1 <= x2 and y1 <= y2 \(xyxy\), got box 1 = \[5.0, 0.0, 2.0, 1.0\]"):
        box_iou(jnp.array([[0.0, 0, 1, 1], [5, 0, 2, 1]]), jnp.zeros((1, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        check_boxes(np.array([[0.0, 0, np.nan, 1]]))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4\), got shape \(3, 5\)"):
        box_area(jnp.zeros((3, 5)))
    with pytest.raises(TypeError, match="floating dtype"):
        box_area(jnp.zeros((3, 4), jnp.int32))
    with pytest.raises(ValueError, match="same leading axes"):
        box_iou(jnp.zeros((2, 3, 4)), jnp.zeros((3, 3, 4)))
    with pytest.raises(ValueError, match="source format"):
        box_convert(jnp.zeros((1, 4)), "yxyx", "xyxy")
    with pytest.raises(ValueError, match="w >= 0"):
        box_convert(jnp.array([[0.0, 0, -1, 1]]), "xywh", "xyxy")
    with pytest.raises(ValueError, match="size \\(height, width\\)"):
        clip_boxes(jnp.zeros((1, 4)), (3,))
