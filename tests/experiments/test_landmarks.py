"""landmarks: the rendered landmarks lie on the face, bad configs fail early, and a reduced
run lowers the loss."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import landmarks  # noqa: E402


def test_landmarks_are_on_the_rendered_face():
    config = landmarks.Config(noise=0.0)
    images, targets = landmarks.render_faces(60, 4, config)
    s = config.image_size
    faces = targets[:, 0] > 0
    assert 0.6 < faces.mean() < 0.97 and set(np.unique(targets[faces, -1])) == {0.0, 1.0}
    for img, t in zip(images[faces], targets[faces]):
        cx, cy, w, h = t[1:5] * s
        points = t[5:15].reshape(5, 2) * s
        assert np.all(np.abs(points[:, 0] - cx) <= w / 2) and np.all(np.abs(points[:, 1] - cy) <= h / 2)
        ex, ey = np.floor(points[0]).astype(int)          # the left eye is a dark dot
        assert img[ey, ex].max() < 40
    assert np.all(targets[~faces] == 0)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="expected steps > 0, got 0"):
        landmarks.Config(steps=0)
    with pytest.raises(ValueError, match="face_fraction"):
        landmarks.Config(face_fraction=0.0)


def test_reduced_run_learns():
    config = landmarks.Config(train_images=128, test_images=48, steps=24, log_every=12, width=8)
    result = landmarks.run(config)
    hist = result["history"]
    assert len(hist) == 2 and hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    assert result["test_faces"] > 25 and result["landmark_error_px"] < config.image_size
    assert set(result["landmark_error_px_each"]) == set(landmarks.LANDMARKS)
