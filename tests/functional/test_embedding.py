"""embed and attend against NumPy indexing and matmul, torch.nn.Embedding, and
finite differences in float64."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck
from fnnet.functional.embedding import attend, embed


def test_embed_matches_numpy_indexing(rng):
    table = rng.normal(size=(7, 5)).astype(np.float32)
    for shape in [(), (4,), (2, 3), (2, 1, 3)]:
        ids = rng.integers(0, 7, shape)
        y = embed(jnp.asarray(ids), jnp.asarray(table))
        assert y.shape == shape + (5,)
        ref = np.zeros(shape + (5,), np.float32)
        for index in np.ndindex(*shape):
            ref[index] = table[ids[index]]
        np.testing.assert_array_equal(y, ref)
    # any integer dtype, NumPy ids too
    np.testing.assert_array_equal(embed(np.array([6, 0], np.uint8), jnp.asarray(table)), table[[6, 0]])


def test_embed_matches_torch_embedding(rng):
    torch = pytest.importorskip("torch")
    table = rng.normal(size=(11, 4)).astype(np.float32)
    ids = rng.integers(0, 11, (3, 6))
    module = torch.nn.Embedding(11, 4)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(table))
    ref = module(torch.from_numpy(ids)).detach().numpy()
    np.testing.assert_array_equal(embed(jnp.asarray(ids), jnp.asarray(table)), ref)
    # the gradient w.r.t. the table: counts of each id times the upstream gradient
    g = rng.normal(size=(3, 6, 4)).astype(np.float32)
    module(torch.from_numpy(ids)).backward(torch.from_numpy(g))
    grad = jax.grad(lambda t: jnp.sum(embed(jnp.asarray(ids), t) * g))(jnp.asarray(table))
    np.testing.assert_allclose(grad, module.weight.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_embed_out_of_range_raises_eagerly_and_fills_nan_under_jit():
    table = jnp.arange(6.0).reshape(3, 2)
    with pytest.raises(ValueError, match=r"embed: expected ids in \[0, 3\).*ids\[1, 0\] = 3"):
        embed(jnp.array([[0, 1], [3, 2]]), table)
    with pytest.raises(ValueError, match=r"ids\[1\] = -1"):
        embed(np.array([2, -1]), table)          # negative ids do not wrap around
    y = jax.jit(embed)(jnp.array([2, 3, -1, 0]), table)
    np.testing.assert_array_equal(y[0], [4.0, 5.0])
    np.testing.assert_array_equal(y[3], [0.0, 1.0])
    assert np.isnan(np.asarray(y[1:3])).all()
    # no gradient flows to the clipped rows from an out-of-range id
    grad = jax.jit(jax.grad(lambda t: jnp.sum(jnp.nan_to_num(embed(jnp.array([3, -1]), t)))))(table)
    np.testing.assert_array_equal(grad, np.zeros((3, 2)))


def test_embed_bad_input():
    table = jnp.ones((3, 2))
    with pytest.raises(TypeError, match="embed: expected integer ids, got dtype float32"):
        embed(jnp.array([0.0, 1.0]), table)
    with pytest.raises(TypeError, match="embed: expected integer ids, got dtype bool"):
        embed(jnp.array([True]), table)
    with pytest.raises(ValueError, match=r"embed: expected table \(V, d\) of rank 2, got shape \(3,\)"):
        embed(jnp.array([0]), jnp.ones(3))
    with pytest.raises(TypeError, match="embed: expected table of a floating dtype, got int32"):
        embed(jnp.array([0]), jnp.ones((3, 2), jnp.int32))


def test_attend_matches_numpy_matmul(rng):
    table = rng.normal(size=(9, 4)).astype(np.float32)
    h = rng.normal(size=(2, 3, 4)).astype(np.float32)
    ref = np.zeros((2, 3, 9), np.float32)
    for b, t, v in np.ndindex(2, 3, 9):
        ref[b, t, v] = np.dot(h[b, t], table[v])
    np.testing.assert_allclose(attend(jnp.asarray(h), jnp.asarray(table)), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(attend(jnp.asarray(h[0, 0]), jnp.asarray(table)), ref[0, 0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"attend: expected h with last axis 4 .* got h of shape \(2, 5\)"):
        attend(jnp.ones((2, 5)), jnp.asarray(table))
    with pytest.raises(TypeError, match="attend: expected input h of a floating dtype"):
        attend(jnp.ones((2, 4), jnp.int32), jnp.asarray(table))


def test_embed_and_attend_gradients_float64(x64, rng):
    ids = jnp.asarray(rng.integers(0, 5, (2, 3)))
    table = jnp.asarray(rng.normal(size=(5, 3)))
    h = jnp.asarray(rng.normal(size=(2, 3)))
    w = jnp.asarray(rng.normal(size=(2, 3, 3)))
    gradcheck.check_gradients(lambda t: jnp.sum(jnp.sin(embed(ids, t)) * w), table)
    gradcheck.check_gradients(lambda a: jnp.sum(jnp.tanh(attend(a["h"], a["t"]))), {"h": h, "t": table})
    # a tied model: the same table embeds and scores
    gradcheck.check_gradients(lambda t: jnp.sum(jax.nn.log_softmax(attend(embed(ids, t), t))), table)


def test_embed_attend_under_jit_and_vmap(rng):
    table = jnp.asarray(rng.normal(size=(6, 3)).astype(np.float32))
    ids = rng.integers(0, 6, (4, 5))
    y = jax.jit(embed)(jnp.asarray(ids), table)
    np.testing.assert_array_equal(y, np.asarray(table)[ids])
    tables = jnp.asarray(rng.normal(size=(2, 6, 3)).astype(np.float32))
    z = jax.vmap(embed, in_axes=(None, 0))(jnp.asarray(ids), tables)
    np.testing.assert_array_equal(z, np.stack([np.asarray(tables[i])[ids] for i in range(2)]))
    logits = jax.vmap(attend, in_axes=(0, 0))(z, tables)
    ref = np.einsum("bnsd,bvd->bnsv", np.asarray(z), np.asarray(tables))
    np.testing.assert_allclose(logits, ref, rtol=1e-5, atol=1e-5)
