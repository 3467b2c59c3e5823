"""``place`` and ``to_host`` in one process (the multi-process paths run in
tests/parallel/test_multiprocess_fit.py)."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P, SingleDeviceSharding

from fnnet.train import place, to_host


def test_to_host_gives_numpy_and_keeps_keys():
    key = jax.random.key(5)
    tree = {"w": jnp.arange(6.0).reshape(2, 3), "k": key, "n": 3, "a": np.ones(2, np.int32)}
    out = to_host(tree)
    assert type(out["w"]) is np.ndarray and out["w"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert type(out["a"]) is np.ndarray and out["n"] == 3
    assert jax.dtypes.issubdtype(out["k"].dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(out["k"]), jax.random.key_data(key))


def test_place_one_sharding_or_a_tree_of_them():
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("data",))
    replicated, split = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    tree = {"x": np.arange(4.0), "k": jax.random.key(1)}
    one = place(tree, replicated)
    assert one["x"].sharding == replicated and one["k"].sharding == replicated
    both = place(tree, {"x": split, "k": SingleDeviceSharding(jax.devices()[0])})
    assert both["x"].sharding == split
    np.testing.assert_array_equal(np.asarray(both["x"]), tree["x"])
    np.testing.assert_array_equal(jax.random.key_data(both["k"]), jax.random.key_data(tree["k"]))
