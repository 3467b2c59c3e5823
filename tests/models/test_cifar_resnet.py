"""CIFAR ResNets and plain nets (He et al., 2016, section 4.2): parameter counts from
the closed form, option A shortcuts, and a train/eval forward pass with batch norm."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import models, nn

SPEC = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)


def _count(model, spec=SPEC):
    params, _ = jax.eval_shape(lambda k: model.init(k, spec), jax.random.key(0))
    return nn.count_params(params)


def _closed_form(depth, classes=10, projection=False):
    """3x3 convs without bias, batch norm (scale + bias) after each, a dense head."""
    n = (depth - 2) // 6
    total = 9 * 3 * 16 + 2 * 16
    prev = 16
    for w in (16, 32, 64):
        for i in range(n):
            total += 9 * prev * w + 9 * w * w + 2 * 2 * w
            if projection and prev != w:
                total += prev * w + 2 * w
            prev = w
    return total + 64 * classes + classes


@pytest.mark.parametrize("depth,shortcut", [(20, True), (20, False), (32, True), (56, False)])
def test_param_counts(depth, shortcut):
    assert _count(models.cifar_resnet(depth, shortcut=shortcut)) == _closed_form(depth)


def test_published_counts():
    # He et al. (2016) Table 6: ResNet-20 0.27M, ResNet-110 1.7M; 269,722 is also the
    # total printed by akamaster/pytorch_resnet_cifar10 for its option-A ResNet-20.
    assert _count(models.cifar_resnet(20)) == 269_722
    assert round(_count(models.cifar_resnet(110)) / 1e6, 1) == 1.7
    assert _count(models.cifar_resnet(20, 100, projection=True)) == _closed_form(20, 100, True)


def test_depth_must_be_6n_plus_2():
    for bad in (18, 2, 21.0):
        with pytest.raises(ValueError, match="cifar_resnet: expected depth = 6n \\+ 2"):
            models.cifar_resnet(bad)


def test_option_a_shortcut_is_subsample_and_zero_pad(random_init, rng):
    # With every batch-norm scale and bias of the block bodies at zero, a residual block
    # returns relu(shortcut(x)): x where the shape is kept; x[::2, ::2] with zero
    # channels appended where a stage starts.
    model = models.cifar_resnet(8)
    x = jnp.asarray(rng.normal(size=(1, 8, 8, 3)), jnp.float32)
    params, state = random_init(model, x, rng)
    params = jax.tree_util.tree_map_with_path(
        lambda path, a: jnp.zeros_like(a) if "block" in jax.tree_util.keystr(path)
        and path[-1].key in ("scale", "bias") else a, params)
    # The stem, independently: lax's conv, batch norm at its initial statistics, ReLU.
    h = jax.lax.conv_general_dilated(x, params["0"]["0"]["kernel"], (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    h = np.maximum(np.asarray(h) / np.sqrt(1 + 1e-5), 0)
    expected1 = np.maximum(h, 0)                                        # stage 1: identity
    expected2 = np.pad(expected1[:, ::2, ::2], ((0, 0), (0, 0), (0, 0), (0, 16)))  # 16 -> 32
    expected3 = np.pad(expected2[:, ::2, ::2], ((0, 0), (0, 0), (0, 0), (0, 32)))  # 32 -> 64
    pooled = expected3.mean(axis=(1, 2))
    logits = pooled @ np.asarray(params["5"]["kernel"]) + np.asarray(params["5"]["bias"])
    y, _ = jax.jit(model.apply)(params, state, x)
    np.testing.assert_allclose(np.asarray(y), logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shortcut", [True, False])
def test_forward_train_and_eval(shortcut, random_init, rng):
    model = models.cifar_resnet(8, 5, shortcut=shortcut)
    x = jnp.asarray(rng.normal(size=(2, 16, 16, 3)), jnp.float32)
    params, state = random_init(model, x, rng)
    y, new_state = jax.jit(lambda p, s, v: model.apply(p, s, v, train=True))(params, state, x)
    assert y.shape == (2, 5) and bool(jnp.all(jnp.isfinite(y)))
    # Training updates every running mean (the stem's: 0.1 * batch mean of its conv).
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state, new_state)
    assert all(jax.tree.leaves(changed))
    y_eval, same = jax.jit(model.apply)(params, new_state, x)
    assert y_eval.shape == (2, 5)
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), same, new_state)))
    assert not np.allclose(np.asarray(y_eval), np.asarray(y))


def test_ensemble_init_by_vmap():
    # init returns arrays only, so one vmapped call builds several seeds (shapes only here).
    model = models.cifar_resnet(8)
    keys = jax.random.split(jax.random.key(0), 3)
    params, state = jax.eval_shape(jax.vmap(lambda k: model.init(k, SPEC)), keys)
    assert params["0"]["0"]["kernel"].shape == (3, 3, 3, 3, 16)
    assert state["0"]["1"]["mean"].shape == (3, 16)
