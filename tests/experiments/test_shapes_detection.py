"""shapes_detection: the rendered boxes are the shapes' pixel extents, bad configs fail early,
and a reduced run trains, detects and agrees with pycocotools."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import shapes_detection  # noqa: E402


def test_boxes_are_the_pixel_extent_of_each_shape():
    config = shapes_detection.Config(noise=0.0, clutter=0, max_objects=1)
    images, scenes = shapes_detection.render_scenes(40, 3, config)
    kinds = set()
    for img, (boxes, labels) in zip(images, scenes):
        assert boxes.shape == (1, 4) and labels.shape == (1,)
        background = np.bincount(img.reshape(-1, 3) @ np.array([65536, 256, 1])).argmax()
        mask = (img.reshape(-1, 3) @ np.array([65536, 256, 1]) != background).reshape(img.shape[:2])
        ys, xs = np.nonzero(mask)
        np.testing.assert_array_equal(boxes[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        side = max(boxes[0, 2] - boxes[0, 0], boxes[0, 3] - boxes[0, 1])
        assert config.min_size - 1 <= side <= config.max_size
        fill = mask.sum() / ((boxes[0, 2] - boxes[0, 0]) * (boxes[0, 3] - boxes[0, 1]))
        expected = {0: np.pi / 4, 1: 1.0, 2: 0.5}[int(labels[0])]          # circle, square, triangle
        assert abs(fill - expected) < 0.17
        kinds.add(int(labels[0]))
    assert kinds == {0, 1, 2}
    again, _ = shapes_detection.render_scenes(5, 3, config)
    np.testing.assert_array_equal(again, images[:5])                     # a pure function of the seed


def test_default_scenes_hold_one_to_four_disjoint_objects():
    config = shapes_detection.Config()
    _, scenes = shapes_detection.render_scenes(60, 5, config)
    counts = [len(labels) for _, labels in scenes]
    assert min(counts) >= 1 and max(counts) <= 4 and len(set(counts)) >= 3
    for boxes, _ in scenes:
        for i in range(len(boxes)):
            for j in range(i):
                a, b = boxes[i], boxes[j]
                overlap_w = min(a[2], b[2]) - max(a[0], b[0])
                overlap_h = min(a[3], b[3]) - max(a[1], b[1])
                assert overlap_w <= 0 or overlap_h <= 0            # max_overlap=0: disjoint boxes


def test_bad_config_raises():
    with pytest.raises(ValueError, match="expected steps > 0, got 0"):
        shapes_detection.Config(steps=0)
    with pytest.raises(ValueError, match="test_seed"):
        shapes_detection.Config(seed=2, test_seed=2)
    with pytest.raises(ValueError, match="image_size"):
        shapes_detection.Config(image_size=60)
    with pytest.raises(ValueError, match="max_size"):
        shapes_detection.Config(min_size=20, max_size=10)


def test_reduced_run_trains_and_agrees_with_pycocotools():
    pytest.importorskip("pycocotools")
    config = shapes_detection.Config(train_scenes=128, test_scenes=24, steps=24, log_every=12, warmup_steps=4,
                                     width=8, plot_scenes=2)
    result = shapes_detection.run(config)
    hist = result["history"]
    assert len(hist) == 2 and hist[-1]["train_loss"] < 0.6 * hist[0]["train_loss"]
    assert result["pycocotools_max_abs_diff"] < 1e-6           # fnnet's COCO numbers equal COCOeval's
    assert 0 <= result["map50"] <= 1 and result["map"] <= result["map50"]
    assert len(result["examples"]) == 2 and result["detections_test"] > 0
