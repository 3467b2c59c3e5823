"""Fixtures of the model-zoo tests."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest


def _random_init(model, x, rng, random_affine=False):
    """Params and state of the shapes ``init`` gives (by eval_shape), filled here with He
    normal kernels, unit scales, zero biases and the initial batch-norm statistics (or,
    with ``random_affine``, random scales, biases and statistics). A compiled or eager
    ``init`` of a whole model costs more time than its small forward pass."""
    params, state = jax.eval_shape(lambda k: model.init(k, x), jax.random.key(0))

    def fill(path, leaf):
        name = path[-1].key
        if name in ("kernel", "depthwise_kernel", "pointwise_kernel"):
            std = np.sqrt(2 / np.prod(leaf.shape[:-1]))
            return jnp.asarray(rng.normal(size=leaf.shape) * std, leaf.dtype)
        if random_affine:  # scale, var in [0.5, 1.5); biases, means N(0, 0.1^2)
            if name in ("scale", "var"):
                return jnp.asarray(rng.uniform(0.5, 1.5, size=leaf.shape), leaf.dtype)
            return jnp.asarray(rng.normal(size=leaf.shape) * 0.1, leaf.dtype)
        return (jnp.ones if name in ("scale", "var") else jnp.zeros)(leaf.shape, leaf.dtype)

    return (jax.tree_util.tree_map_with_path(fill, params),
            jax.tree_util.tree_map_with_path(fill, state))


@pytest.fixture
def random_init():
    """``random_init(model, x, rng, random_affine=False) -> (params, state)``."""
    return _random_init
