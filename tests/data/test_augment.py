"""Augmentations: shapes, dtypes and labels kept, determinism per key, per-image draws,
and each transform checked against a NumPy construction of what it should produce."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet.data import augment as A

ALL = {
    "flip": A.random_flip_lr,
    "crop": lambda k, x: A.random_crop(k, x, padding=2),
    "translate": lambda k, x: A.random_translate(k, x, max_shift=2),
    "rotate": lambda k, x: A.random_rotate(k, x, max_degrees=20.0),
    "brightness": lambda k, x: A.random_brightness(k, x, 0.2),
    "color": lambda k, x: A.random_color_shift(k, x, 0.2),
}


@pytest.fixture
def images(rng):
    return jnp.asarray(rng.uniform(size=(16, 6, 6, 3)), jnp.float32)


@pytest.mark.parametrize("name", sorted(ALL))
def test_shape_dtype_determinism_and_jit(name, images):
    f = ALL[name]
    a = f(jax.random.key(0), images)
    assert a.shape == images.shape and a.dtype == images.dtype
    np.testing.assert_array_equal(a, f(jax.random.key(0), images))
    np.testing.assert_allclose(jax.jit(f)(jax.random.key(0), images), a, rtol=1e-6, atol=1e-6)
    assert not np.array_equal(a, f(jax.random.key(1), images))


def test_vmap_over_keys_and_compose_keeps_labels(images):
    aug = A.compose(*ALL.values())
    labels = jnp.arange(16)
    xa, ya = jax.jit(aug)(jax.random.key(0), (images, labels))
    assert xa.shape == images.shape
    np.testing.assert_array_equal(ya, labels)
    cheap = A.compose(ALL["flip"], ALL["crop"], ALL["color"])
    keys = jax.random.split(jax.random.key(1), 2)
    many = jax.vmap(lambda k: cheap(k, images))(keys)
    assert many.shape == (2,) + images.shape
    np.testing.assert_allclose(many[1], cheap(keys[1], images), rtol=1e-6, atol=1e-6)


def test_flip_is_per_image_mirror(images):
    out = np.asarray(A.random_flip_lr(jax.random.key(0), images))
    x = np.asarray(images)
    flipped = [np.array_equal(out[i], x[i, :, ::-1]) for i in range(16)]
    kept = [np.array_equal(out[i], x[i]) for i in range(16)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)  # each image draws its own coin (P(all equal) = 2^-15)


def test_crop_and_translate_are_windows_of_padded_images(images):
    x = np.asarray(images)
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    for f in (ALL["crop"], ALL["translate"]):
        out = np.asarray(f(jax.random.key(3), images))
        offsets = []
        for i in range(16):
            hits = [(dy, dx) for dy in range(5) for dx in range(5)
                    if np.array_equal(out[i], padded[i, dy:dy + 6, dx:dx + 6])]
            assert hits, f"image {i} is no window of the padded image"
            offsets.append(hits[0])
        assert len(set(offsets)) > 1


def test_translate_fill(images):
    out = np.asarray(A.random_translate(jax.random.key(0), images - 5.0, 3, fill=-5.0))
    assert out.min() >= -5.0 - 1e-6 and out.max() <= -4.0 + 1e-6


def test_rotate_right_angle_and_zero(images):
    x = np.asarray(images[:2, :5, :5])  # odd square: pixel centres map onto pixel centres
    out = np.asarray(A.random_rotate(jax.random.key(0), jnp.asarray(x), max_degrees=0.0))
    np.testing.assert_allclose(out, x, atol=1e-6)
    quarter = np.asarray(jax.vmap(lambda im: A._rotate_one(im, jnp.pi / 2, 0.0))(jnp.asarray(x)))
    np.testing.assert_allclose(quarter, np.rot90(x, k=-1, axes=(1, 2)), atol=1e-5)


def test_brightness_and_color_offsets(images):
    x = np.asarray(images)
    d = np.asarray(A.random_brightness(jax.random.key(0), images, 0.2)) - x
    per_image = d.reshape(16, -1)
    np.testing.assert_allclose(per_image, per_image[:, :1] * np.ones_like(per_image), atol=1e-6)
    assert np.abs(per_image).max() <= 0.2 + 1e-6 and np.unique(per_image[:, 0].round(6)).size == 16
    d = np.asarray(A.random_color_shift(jax.random.key(0), images, 0.2)) - x
    per_channel = d.reshape(16, -1, 3)
    np.testing.assert_allclose(per_channel, per_channel[:, :1] * np.ones_like(per_channel), atol=1e-6)
    assert np.abs(per_channel).max() <= 0.2 + 1e-6
    assert np.unique(per_channel[:, 0].round(6)).size == 48


def test_bad_input_raises():
    with pytest.raises(ValueError, match="random_crop.*NHWC"):
        A.random_crop(jax.random.key(0), jnp.ones((4, 4, 3)), 1)
    with pytest.raises(ValueError, match="random_crop.*padding"):
        A.random_crop(jax.random.key(0), jnp.ones((1, 4, 4, 3)), -1)
