"""resnet_vs_plain: data and weight decay set-up in closed form, and a reduced run."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import losses
from fnnet.cli import load_experiment


@pytest.fixture(scope="module")
def exp():
    return load_experiment("resnet_vs_plain")


def test_data_and_decayed_kernels(exp):
    sklearn = pytest.importorskip("sklearn.datasets")
    x_train, y_train, x_test, y_test = exp.load(exp.Config(image_size=8))
    images = sklearn.load_digits().images / 16.0
    mean, std = images[:898].mean(), images[:898].std()
    np.testing.assert_allclose(np.asarray(x_test)[..., 0], (images[898:] - mean) / std, rtol=1e-5, atol=1e-5)
    assert x_train.shape == (898, 8, 8, 1) and np.asarray(y_train).shape == (898,)
    assert exp.load(exp.Config(image_size=16))[0].shape == (898, 16, 16, 1)
    # weight decay covers exactly the `depth` weighted layers (6n + 1 convs and the dense layer)
    for depth in (8, 20):
        for shortcut in (False, True):
            params, _ = jax.eval_shape(exp.cifar_resnet(depth, 10, shortcut=shortcut).init,
                                       jax.random.key(0), jax.ShapeDtypeStruct((1, 8, 8, 1), jnp.float32))
            mask = losses.default_penalty_mask(params)  # what the experiment's l2_penalty decays
            kernels = [p for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask)) if m]
            assert len(kernels) == depth
            assert sum(k.ndim == 4 for k in kernels) == depth - 1


def test_reduced_run(exp, tmp_path):
    config = exp.Config(depths=(8,), image_size=8, epochs=3, max_train=256)
    x_train = exp.load(config)[0]
    plain, resnet = exp.initial_variables(8, jax.random.key(0), x_train[:1])
    assert jax.tree.structure(plain) != jax.tree.structure(resnet)        # nested differently
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(resnet)):      # the same arrays
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    result = exp.run(config)
    assert result["params_plain8"] == result["params_resnet8"]   # option A shortcuts: no extra params
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3]
    for tag in ("plain8", "resnet8"):
        errors = [h[f"{tag}_train_error"] for h in result["history"]]
        assert errors[-1] < errors[0] and errors[-1] < 60, (tag, errors)    # chance is 90%
    # measured on CPU after 3 epochs of 256 images: last-epoch training error plain-8 6.6%,
    # ResNet-8 20.7%; test error 45.1% and 56.5% (chance 90%)
    assert result["train_error_plain8"] < 20 and 10 < result["train_error_resnet8"] < 40
    for tag in ("plain8", "resnet8"):
        assert 35 < result[f"test_error_{tag}"] < 65, tag
    assert result["table"].count("\n") == 1 + len(config.depths)
    assert len(exp.plot(result, tmp_path)) == 1
