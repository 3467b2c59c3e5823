"""convnet_insides: the layer list reproduces lenet5, and a reduced run returns maps of
the right shapes whose summary numbers recompute from them."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import convnet_insides  # noqa: E402


def test_bad_config_raises():
    with pytest.raises(ValueError, match="expected epochs > 0, got 0"):
        convnet_insides.Config(epochs=0)
    with pytest.raises(ValueError, match="cam_layer"):
        convnet_insides.Config(cam_layer="C5")


def test_reduced_run_maps_and_numbers():
    config = convnet_insides.Config(epochs=2, max_train=128, examples=3, stride=4)
    r = convnet_insides.run(config)
    assert r["layer_list_max_error"] == 0.0
    assert r["test_accuracy"] > 30.0            # chance is 10%
    m = {k: np.asarray(v) for k, v in r["maps"].items()}
    assert m["image"].shape == (3, 32, 32) and m["filters"].shape == (6, 5, 5)
    assert m["C1"].shape == (3, 28, 28, 6) and m["C3"].shape == (3, 10, 10, 16)
    assert m["saliency"].shape == (3, 32, 32) and m["grad_cam"].shape == (3, 32, 32)
    assert m["occlusion"].shape == (3, 7, 7) and m["grad_cam"].min() >= 0.0
    assert r["labels"] == [0, 1, 2]
    # the share of saliency on the strokes, recomputed from the returned maps
    img, sal = m["image"], m["saliency"]
    for i in range(3):
        ink = img[i] > img[i].mean()
        assert r["saliency_on_ink"][i] == pytest.approx(sal[i][ink].sum() / sal[i].sum() / ink.mean(), rel=1e-3)
