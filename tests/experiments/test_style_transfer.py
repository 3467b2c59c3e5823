"""style_transfer: bad configs fail early, the images are square crops in [0, 1], and a
reduced run (shallow layers, a few steps) lowers the style cost and returns its images."""
import base64
import io
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import style_transfer  # noqa: E402


def test_bad_config_raises():
    with pytest.raises(ValueError, match="expected size > 0, got 0"):
        style_transfer.Config(size=0)
    with pytest.raises(ValueError, match=r"style_layers VGG-19 layer names .* but \['relu6_1'\] are not"):
        style_transfer.Config(style_layers=("relu1_1", "relu6_1"))
    with pytest.raises(ValueError, match="content"):
        style_transfer.Config(content="camera")
    with pytest.raises(ValueError, match="weights"):
        style_transfer.Config(weights="/nonexistent/vgg19.pth")


def test_images_are_square_crops_in_unit_range():
    skimage_data = pytest.importorskip("skimage.data")
    img = style_transfer.load_image("chelsea", 40)
    assert img.shape == (40, 40, 3) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    grey = style_transfer.load_image("gravel", 40)
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])
    # the centre crop of chelsea (300 x 451): columns 75 .. 375, mean colour preserved by the resize
    raw = skimage_data.chelsea()[:, 75:375] / 255.0
    np.testing.assert_allclose(img.mean(axis=(0, 1)), raw.mean(axis=(0, 1)), atol=0.01)


def test_reduced_run_lowers_the_style_cost():
    imageio = pytest.importorskip("imageio.v3")
    config = style_transfer.Config(size=32, steps=6, texture_steps=4, content_layer="relu2_2",
                                   style_layers=("relu1_1", "relu2_1"), log_every=2)
    result = style_transfer.run(config)
    steps = [h["step"] for h in result["history"]]
    assert steps == [0, 2, 4, 5]
    assert result["final_style_cost"] < result["initial_style_cost"]
    assert result["history"][0]["content"] == 0.0 and result["final_content_cost"] > 0.0
    # the texture starts near the style's own statistics (its mean grey): a few Adam steps
    # may raise the cost first, so only check it is finite and recorded for every step
    assert [h["step"] for h in result["texture_history"]] == [0, 2, 3]
    assert np.isfinite(result["texture_final_style_cost"])
    for name in ("content", "style", "result", "texture"):
        img = imageio.imread(io.BytesIO(base64.b64decode(result["images"][name])), extension=".png")
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
