"""Batched Threefry evaluation (fnnet.nn._batched_random): every draw bitwise equal to
the program evaluated as traced (the reference is ``jax.jit`` of the same function),
with fewer Threefry hashes in the compiled program."""
import jax
import jax.numpy as jnp
import numpy as np

from fnnet.nn._batched_random import MAX_BATCHED_DRAW, batched_threefry


def draws(key):
    """fold_in chains of different depths, draws of several sizes and kinds (one past
    the batching limit), a split (not batched), a uint8 draw (not batched) and a
    vector of keys (not batched)."""
    k = [jax.random.fold_in(key, i) for i in range(8)]
    deep = jax.random.fold_in(jax.random.fold_in(k[0], 7), 2 ** 31 + 5)
    d = [jax.random.fold_in(deep, i) for i in range(4)]
    s1, s2 = jax.random.split(k[1])
    many = jax.vmap(lambda key: jax.random.normal(key, (3,)))(jax.random.split(d[0], 4))
    return {"normal": jax.random.normal(k[2], (5, 3)),
            "uniform": jax.random.uniform(d[1], (7,), minval=-2.0, maxval=3.0),
            "truncated": jax.random.truncated_normal(k[3], -2.0, 2.0, (4, 4)),
            "bits": jax.random.bits(s1, (2, 3, 4)),
            "bits8": jax.random.bits(s2, (9,), jnp.uint8),
            "big": jax.random.normal(k[4], (MAX_BATCHED_DRAW + 1,)),
            "int": jax.random.randint(d[2], (6,), 0, 100),
            "many": many,
            "key": jax.random.key_data(d[3])}


def test_batched_draws_equal_the_traced_program_bitwise():
    want = jax.jit(draws)(jax.random.key(42))
    got = jax.jit(batched_threefry(draws))(jax.random.key(42))
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape, name
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want[name]), err_msg=name)


def test_fewer_hashes_are_compiled():
    key = jax.random.key(0)

    def leaves(k):  # ten leaves, each from its own fold_in: 10 fold_in and 10 bits hashes
        return [jax.random.normal(jax.random.fold_in(k, i), (8, i + 1)) for i in range(10)]

    def count(f):
        return jax.jit(f).lower(key).as_text().count("threefry2x32")

    plain, batched = count(leaves), count(batched_threefry(leaves))
    assert plain >= 20 and batched <= 4, (plain, batched)
    for a, b in zip(jax.jit(batched_threefry(leaves))(jax.random.key(1)), jax.jit(leaves)(jax.random.key(1))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
