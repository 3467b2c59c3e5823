"""The bundled ORL faces: the file is the published copy (checksum), the loader's
order and labels against the archive read directly with NumPy, damage detected."""
import hashlib
import os

import numpy as np
import pytest

from fnnet import data
from fnnet.data import datasets

BUNDLED = os.path.join(os.path.dirname(datasets.__file__), "bundled", "orl_faces.npz")


def test_orl_faces_match_the_archive():
    x, y = data.load_orl_faces()
    assert x.shape == (400, 112, 92) and x.dtype == np.float32
    assert y.shape == (400,) and y.dtype == np.int32
    with open(BUNDLED, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == \
            "13fddc05e2ba0acd422e31486726421cb705ada132599eaefc9075fa389953dc"
    images = np.load(BUNDLED)["images"]
    for subject, image in [(0, 0), (0, 9), (17, 4), (39, 9)]:      # sX/i.pgm at row 10 (X-1) + i-1
        np.testing.assert_array_equal(x[10 * subject + image], images[subject, image])
        assert y[10 * subject + image] == subject
    assert x.min() >= 0 and x.max() <= 255 and x.max() > 200
    np.testing.assert_array_equal(np.bincount(y), np.full(40, 10))
    # the ten images of a subject are ten different photographs
    assert len({x[i].tobytes() for i in range(10)}) == 10


def test_orl_faces_damaged_copy_raises(monkeypatch):
    monkeypatch.setattr(datasets, "ORL_FACES_SHA256", "0" * 64)
    with pytest.raises(OSError, match="expected 0000.*damaged"):
        data.load_orl_faces()
