"""fnnet.gradcheck against closed-form gradients, and its refusal of non-float64 input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck


def _tree(rng):
    return {"w": jnp.asarray(rng.normal(size=(3, 4))), "b": jnp.asarray(rng.normal(size=(4,)))}


def _f(t):
    return jnp.sum(jnp.sin(t["w"])) + jnp.sum(t["b"] ** 3)


def test_numerical_gradient_matches_closed_form(x64, rng):
    t = _tree(rng)
    approx = gradcheck.numerical_gradient(_f, t)
    np.testing.assert_allclose(approx["w"], np.cos(np.asarray(t["w"])), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(approx["b"], 3 * np.asarray(t["b"]) ** 2, rtol=1e-8, atol=1e-9)
    loop = gradcheck.numerical_gradient(_f, t, vectorize=False)
    np.testing.assert_allclose(loop["w"], approx["w"], rtol=1e-12, atol=1e-12)


def test_relative_difference_small_for_correct_gradient(x64, rng):
    t = _tree(rng)
    d = gradcheck.relative_difference(_f, t)
    assert 0.0 <= d < 1e-9
    assert gradcheck.check_gradients(_f, t) == pytest.approx(d)


def test_relative_difference_formula(x64):
    # f(x) = x . c has gradient c exactly; a forward bias in the backward of 0.5*c gives
    # ||c - 1.5c|| / (||1.5c|| + ||c||) = 0.5 / 2.5 = 0.2 exactly.
    c = jnp.asarray([1.0, -2.0, 3.0])

    @jax.custom_vjp
    def lin(x):
        return jnp.dot(x, c)

    lin.defvjp(lambda x: (jnp.dot(x, c), None), lambda _, g: (1.5 * g * c,))
    d = gradcheck.relative_difference(lin, jnp.zeros(3))
    assert d == pytest.approx(0.2, rel=1e-8)


def test_flags_a_wrong_backward(x64, rng):
    @jax.custom_vjp
    def my_tanh(x):
        return jnp.tanh(x)

    def fwd(x):
        y = jnp.tanh(x)
        return y, y

    def bwd_wrong(y, g):
        return (g * (1 - y),)          # the right one is g * (1 - y**2)

    my_tanh.defvjp(fwd, bwd_wrong)
    t = {"layer": {"kernel": jnp.asarray(rng.normal(size=(5,)))}}
    f = lambda t: jnp.sum(my_tanh(t["layer"]["kernel"]) ** 2)
    assert gradcheck.relative_difference(f, t) > 1e-2
    with pytest.raises(AssertionError, match=r"\['layer'\]\['kernel'\]"):
        gradcheck.check_gradients(f, t)


def test_many_chunks_and_padding(x64, rng):
    # 300 coordinates span two vmap chunks; the last one is padded.
    a = jnp.asarray(rng.normal(size=(300,)))
    x = jnp.asarray(rng.normal(size=(300,)))
    approx = gradcheck.numerical_gradient(lambda v: jnp.sum(a * v ** 2), x)
    np.testing.assert_allclose(approx, 2 * np.asarray(a) * np.asarray(x), rtol=1e-6, atol=1e-7)


def test_falls_back_to_loop_for_python_control_flow(x64):
    def f(x):
        if float(x[0]) > 0:            # not traceable under jit/vmap
            return jnp.sum(x ** 2)
        return jnp.sum(x)

    x = jnp.linspace(1.0, 2.0, 100)     # above the eager threshold: vmap is tried first
    approx = gradcheck.numerical_gradient(f, x)
    np.testing.assert_allclose(approx, 2 * np.asarray(x), rtol=1e-8)


def test_refuses_float32_leaf(x64):
    with pytest.raises(TypeError, match=r"float64.*\['b'\].*float32"):
        gradcheck.relative_difference(_f, {"w": jnp.ones((2,), jnp.float64),
                                           "b": jnp.ones((2,), jnp.float32)})


def test_refuses_integer_leaf(x64):
    with pytest.raises(TypeError, match="float64"):
        gradcheck.check_gradients(lambda x: jnp.sum(x), np.arange(3))


def test_refuses_without_x64():
    with jax.enable_x64(False):
        with pytest.raises(TypeError, match="float32"):
            gradcheck.relative_difference(lambda x: jnp.sum(x ** 2), jnp.ones(3))


def test_refuses_float32_output_and_non_scalar(x64):
    x = jnp.ones(3)
    with pytest.raises(TypeError, match="float64 scalar"):
        gradcheck.numerical_gradient(lambda x: jnp.sum(x).astype(jnp.float32), x)
    with pytest.raises(ValueError, match="scalar"):
        gradcheck.numerical_gradient(lambda x: x ** 2, x)


@pytest.mark.parametrize("vectorize", [False, True])
def test_fixed_key_inside_f_is_allowed(x64, vectorize):
    # a dropout-like function with a fixed mask: the suite's key-reuse check stays quiet
    key = jax.random.key(0)
    mask = np.asarray(jax.random.bernoulli(jax.random.key(0), 0.5, (6,)))
    f = lambda x: jnp.sum(jnp.where(jax.random.bernoulli(key, 0.5, x.shape), x, 0.0) ** 2)
    x = jnp.linspace(0.5, 1.5, 6)
    approx = gradcheck.numerical_gradient(f, x, vectorize=vectorize)
    np.testing.assert_allclose(approx, 2 * np.asarray(x) * mask, rtol=1e-8, atol=1e-10)
    assert gradcheck.relative_difference(f, x, vectorize=vectorize) < 1e-9
    assert jax.config.jax_debug_key_reuse      # switched back on afterwards
