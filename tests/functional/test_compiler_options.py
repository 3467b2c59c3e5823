"""fnnet.functional.cpu_compiler_options: what it turns off, and that a step compiled
with it computes what the default compile does."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import functional as F
from fnnet import losses, nn, optim, train


def test_options_keep_library_fusions_to_matmuls():
    opts = F.cpu_compiler_options()
    if jax.default_backend() != "cpu":
        assert opts == {}
        return
    if not opts:
        pytest.skip("this jaxlib has no xla_cpu_experimental_ynn_fusion_type option")
    reduce_sum = jax.jit(lambda a: jnp.sum(jnp.tanh(a), axis=0)).lower(jnp.ones((256, 64)))
    assert "ynn" not in reduce_sum.compile(compiler_options=opts).as_text()


def test_train_step_with_options_matches_default():
    model = nn.serial(nn.conv(4, 3), nn.relu, nn.max_pool(2), nn.flatten, nn.dense(3))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(8, 10, 10, 1)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, 8), jnp.int32)
    params, state = model.init(jax.random.key(0), x)
    opt = optim.sgd(0.1)
    outs = []
    for options in (None, F.cpu_compiler_options()):
        step = train.make_train_step(model, losses.softmax_cross_entropy_with_integer_labels, opt,
                                     compiler_options=options)
        outs.append(step(params, state, opt.init(params), x, y, jax.random.key(1)))
    (p0, _, _, l0), (p1, _, _, l1) = outs
    np.testing.assert_allclose(l1, l0, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p0)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
