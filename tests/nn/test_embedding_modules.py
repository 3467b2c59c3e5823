"""embedding, sinusoidal_position_encoding and learned_position_embedding Modules
against NumPy, torch.nn.Embedding and the paper's sinusoid formula."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import init as initializers
from fnnet import nn
from fnnet.nn.embedding import embedding, learned_position_embedding, sinusoidal_position_encoding


def np_sinusoid(length, dim, base=10000.0):
    pe = np.zeros((length, dim))
    for p in range(length):
        for j in range(dim):
            angle = p / base ** (2 * (j // 2) / dim)
            pe[p, j] = np.sin(angle) if j % 2 == 0 else np.cos(angle)
    return pe


def test_embedding_init_and_apply_match_numpy(rng):
    layer = embedding(50, 8)
    ids = rng.integers(0, 50, (3, 4))
    params, state = layer.init(jax.random.key(0), jax.ShapeDtypeStruct((3, 4), jnp.int32))
    assert jax.tree.map(jnp.shape, params) == {"embedding": (50, 8)} and state == {}
    p2, _ = layer.init(jax.random.key(0), jnp.asarray(ids))
    np.testing.assert_array_equal(params["embedding"], p2["embedding"])
    y, new_state = layer.apply(params, state, jnp.asarray(ids))
    np.testing.assert_array_equal(y, np.asarray(params["embedding"])[ids])
    assert new_state == {}
    # default N(0, 1) as PyTorch; a user initialiser is used as given
    big, _ = embedding(400, 100).init(jax.random.key(1), jnp.zeros((1,), jnp.int32))
    assert abs(float(jnp.std(big["embedding"])) - 1.0) < 0.02 and abs(float(jnp.mean(big["embedding"]))) < 0.02
    small, _ = embedding(400, 100, init=initializers.normal(0.02)).init(jax.random.key(1), jnp.zeros((1,), jnp.int32))
    assert abs(float(jnp.std(small["embedding"])) - 0.02) < 0.0005


def test_embedding_matches_torch(rng):
    torch = pytest.importorskip("torch")
    layer = embedding(13, 5)
    params, state = layer.init(jax.random.key(0), jnp.zeros((2, 7), jnp.int32))
    ref = torch.nn.Embedding(13, 5)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(np.array(params["embedding"])))
    ids = rng.integers(0, 13, (2, 7))
    y, _ = jax.jit(layer.apply)(params, state, jnp.asarray(ids))
    np.testing.assert_array_equal(y, ref(torch.from_numpy(ids)).detach().numpy())


def test_embedding_in_serial_with_positions_and_vmapped_init(rng):
    model = nn.serial(embedding(20, 6), sinusoidal_position_encoding(10), nn.dense(3))
    ids = rng.integers(0, 20, (2, 4))
    params, state = model.init(jax.random.key(0), jax.ShapeDtypeStruct((2, 4), jnp.int32))
    assert params["1"] == {}
    y, _ = model.apply(params, state, jnp.asarray(ids))
    h = np.asarray(params["0"]["embedding"])[ids] + np_sinusoid(4, 6)[None]
    ref = h @ np.asarray(params["2"]["kernel"]) + np.asarray(params["2"]["bias"])
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    # an ensemble of seeds in one call
    keys = jax.random.split(jax.random.key(1), 3)
    ensemble, _ = jax.vmap(lambda k: model.init(k, jax.ShapeDtypeStruct((2, 4), jnp.int32)))(keys)
    assert ensemble["0"]["embedding"].shape == (3, 20, 6)


def test_sinusoidal_position_encoding_adds_the_table(rng):
    layer = sinusoidal_position_encoding(12)
    for shape in [(2, 7, 6), (7, 6), (3, 12, 5)]:
        x = rng.normal(size=shape).astype(np.float32)
        params, state = layer.init(jax.random.key(0), x)
        assert params == {} and state == {}
        y, _ = jax.jit(layer.apply)(params, state, jnp.asarray(x))
        np.testing.assert_allclose(y, x + np_sinusoid(shape[-2], shape[-1]), rtol=1e-6, atol=2e-6)


def test_learned_position_embedding_adds_rows(rng):
    layer = learned_position_embedding(9)
    x = rng.normal(size=(2, 5, 4)).astype(np.float32)
    params, state = layer.init(jax.random.key(0), jax.ShapeDtypeStruct((2, 5, 4), jnp.float32))
    assert jax.tree.map(jnp.shape, params) == {"embedding": (9, 4)} and state == {}
    table = np.asarray(params["embedding"])
    y, _ = layer.apply(params, state, jnp.asarray(x))
    np.testing.assert_allclose(y, x + table[None, :5], rtol=1e-6, atol=1e-6)
    y1, _ = layer.apply(params, state, jnp.asarray(x[0, :3]))
    np.testing.assert_allclose(y1, x[0, :3] + table[:3], rtol=1e-6, atol=1e-6)
    # only the first T rows get a gradient
    g = jax.grad(lambda p: jnp.sum(layer.apply(p, state, jnp.asarray(x))[0]))(params)["embedding"]
    np.testing.assert_array_equal(g, np.concatenate([np.full((5, 4), 2.0), np.zeros((4, 4))]))
    custom, _ = learned_position_embedding(9, init=initializers.zeros()).init(jax.random.key(0), x)
    np.testing.assert_array_equal(custom["embedding"], np.zeros((9, 4)))


def test_bad_inputs_raise_naming_the_layer():
    with pytest.raises(TypeError, match="embedding: expected integer ids, got dtype float32"):
        embedding(5, 3).init(jax.random.key(0), jnp.zeros((2, 3)))
    params, state = embedding(5, 3).init(jax.random.key(0), jnp.zeros((2,), jnp.int32))
    with pytest.raises(TypeError, match="embedding: expected integer ids, got dtype float32"):
        embedding(5, 3).apply(params, state, jnp.zeros((2,)))
    with pytest.raises(ValueError, match="embedding: expected num_embeddings as a positive int, got 0"):
        embedding(0, 3)
    for make in (sinusoidal_position_encoding, learned_position_embedding):
        layer = make(4)
        name = layer.name
        with pytest.raises(ValueError, match=f"{name}: sequence length 5 exceeds max_len 4"):
            layer.init(jax.random.key(0), jnp.zeros((2, 5, 3)))
        with pytest.raises(ValueError, match=rf"{name}: expected input of shape \[batch, T, d\] or \[T, d\], got \(3,\)"):
            layer.init(jax.random.key(0), jnp.zeros((3,)))
        with pytest.raises(TypeError, match=f"{name}: expected input x of a floating dtype, got int32"):
            layer.init(jax.random.key(0), jnp.zeros((2, 3), jnp.int32))
        params, state = layer.init(jax.random.key(0), jnp.zeros((2, 3, 3)))
        with pytest.raises(ValueError, match=f"{name}: sequence length 6 exceeds max_len 4"):
            layer.apply(params, state, jnp.zeros((1, 6, 3)))
    params, state = learned_position_embedding(4).init(jax.random.key(0), jnp.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match=r"expected input with last axis 3, got input of shape \(2, 3, 5\)"):
        learned_position_embedding(4).apply(params, state, jnp.zeros((2, 3, 5)))
