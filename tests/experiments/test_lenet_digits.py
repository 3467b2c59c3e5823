"""lenet_digits: the split and the upsampling against NumPy, and a reduced run that learns."""
import numpy as np
import pytest

from fnnet.cli import load_experiment


@pytest.fixture(scope="module")
def exp():
    return load_experiment("lenet_digits")


def test_split_and_nearest_upsampling(exp):
    sklearn = pytest.importorskip("sklearn.datasets")
    digits = sklearn.load_digits()
    x_train, y_train, x_test, y_test = exp.load(exp.Config(upsample="nearest", standardize=False))
    assert x_train.shape == (898, 32, 32, 1) and x_test.shape == (899, 32, 32, 1)
    np.testing.assert_array_equal(np.asarray(y_test), digits.target[898:])       # second half tests
    # nearest: every 8x8 pixel becomes a 4x4 block
    ref = np.kron(digits.images[:898] / 16.0, np.ones((4, 4)))
    np.testing.assert_allclose(np.asarray(x_train)[..., 0], ref, rtol=1e-6)


def test_bilinear_upsampling_matches_torch(exp):
    torch = pytest.importorskip("torch")
    sklearn = pytest.importorskip("sklearn.datasets")
    x_train, _, _, _ = exp.load(exp.Config(standardize=False, max_train=5, batch_size=5))
    images = torch.from_numpy(sklearn.load_digits().images[:5, None] / 16.0)
    ref = torch.nn.functional.interpolate(images, scale_factor=4, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(np.asarray(x_train)[..., 0], ref[:, 0].numpy(), atol=1e-6)


def test_reduced_run(exp, tmp_path):
    result = exp.run(exp.Config(epochs=3, max_train=320, max_degrees=0.0))
    assert result["params"] == 61706                      # LeNet-5 classic at 10 classes
    assert result["n_train"] == 320 and result["n_test"] == 899
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3]
    assert result["history"][-1]["train_loss"] < result["history"][0]["train_loss"]
    # chance 10%; measured on CPU 77.1% test, 94.4% train; 98.1% at the full config
    assert 70 < result["test_accuracy"] < 90 and 85 < result["train_accuracy"] <= 100
    assert len(exp.plot(result, tmp_path)) == 1


def test_config_rejects_a_batch_larger_than_the_training_images(exp):
    with pytest.raises(ValueError, match="batch_size"):
        exp.Config(batch_size=64, max_train=32)
    assert exp.Config(batch_size=32, max_train=32).batch_size == 32
