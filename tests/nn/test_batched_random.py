"""Batched Threefry evaluation (fnnet.nn._batched_random): every draw bitwise equal to
the program evaluated as traced (the reference is ``jax.jit`` of the same function),
compiled into a few kernels; the written-out Threefry-2x32 against the published
known-answer vectors."""
import re

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.nn._batched_random import ROW, compile_batched, threefry2x32


def draws(key):
    """fold_in chains of different depths, draws of several sizes and kinds (some over
    several rows), a split (not batched), a uint8 draw (not batched), a vector of keys
    (not batched), a fold_in of traced data (not batched), constants and a key output."""
    k = [jax.random.fold_in(key, i) for i in range(8)]
    deep = jax.random.fold_in(jax.random.fold_in(k[0], 7), 2 ** 31 + 5)
    d = [jax.random.fold_in(deep, i) for i in range(5)]
    s1, s2 = jax.random.split(k[1])
    many = jax.vmap(lambda key: jax.random.normal(key, (3,)))(jax.random.split(d[0], 4))
    traced_data = jax.random.fold_in(k[5], jax.random.bits(k[6], (), jnp.uint32))
    return {"normal": jax.random.normal(k[2], (5, 3)),
            "uniform": jax.random.uniform(d[1], (7,), minval=-2.0, maxval=3.0),
            "truncated": jax.random.truncated_normal(k[3], -2.0, 2.0, (4, 4)),
            "bits": jax.random.bits(s1, (2, 3, 4)),
            "bits8": jax.random.bits(s2, (9,), jnp.uint8),
            # The barrier as in fnnet.init: without it XLA folds 0.5 * sqrt(2) for a draw
            # whose normal has one user, and not for a buffer of draws (one ulp apart).
            "big": 0.5 * jax.lax.optimization_barrier(jax.random.normal(k[4], (3 * ROW + 5,))) + 1.0,
            "int": jax.random.randint(d[2], (6,), 0, 100),
            "many": many,
            "traced_data": jax.random.uniform(traced_data, (2, 2)),
            "zeros": jnp.zeros((3, 2)), "ones": jnp.ones(4, jnp.int32),
            "key": jax.random.key_data(d[3]),
            "typed_key": d[4]}


def test_batched_draws_equal_the_traced_program_bitwise():
    want = jax.jit(draws)(jax.random.key(42))
    got = compile_batched(draws, jax.random.key(0))(jax.random.key(42))
    assert set(got) == set(want)
    for name in want:
        a, b = got[name], want[name]
        if name == "typed_key":
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)


def test_a_few_kernels_instead_of_one_per_draw():
    def leaves(k):  # six leaves, each from its own fold_in, scaled as fnnet.init does
        return [0.1 * jax.lax.optimization_barrier(jax.random.normal(jax.random.fold_in(k, i), (8, i + 1)))
                for i in range(6)]

    def kernels(text):
        entry = text[text.index("\nENTRY"):]
        return len(re.findall(r"= \S+ fusion\(", entry))

    key = jax.random.key(0)
    run = compile_batched(leaves, key)
    plain = kernels(jax.jit(leaves).lower(key).compile().as_text())
    batched = kernels(run.compiled.as_text())
    assert plain >= 20 and batched <= 6, (plain, batched)
    for a, b in zip(run(jax.random.key(1)), jax.jit(leaves)(jax.random.key(1))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_threefry_known_answers():
    # Random123's known-answer vectors for Threefry-2x32, 20 rounds (kat_vectors).
    cases = [((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
             ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
             ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]
    for key, count, want in cases:
        got = threefry2x32(*(np.array([v], np.uint32) for v in key + count))
        assert tuple(int(v[0]) for v in got) == want
