"""The fused recurrent kernels (fnnet/functional/recurrent_fused.py) under every JAX
transform, in float64, against the same transform of an independent reference:
``implementation="scan"`` (JAX's autodiff of the plain scan of the cell) for
``rnn/gru/lstm_sequence``, a plain jnp loop written here for ``rnn_recurrence``.

Transforms: jvp, jacfwd, linearize, hessian, vmap of grad, grad-of-grad,
jax.checkpoint, under jit; masked (lengths) and unmasked, reverse too; plus a
finite-difference check of the fused kernels' gradients. Sizes are tiny
(N=2, T=3, F=3, h=2) so the compiles stay fast."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from fnnet import functional as F
from fnnet.gradcheck import check_gradients

N, T, FIN, H = 2, 3, 3, 2
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
SEQUENCES = {"rnn": F.rnn_sequence, "gru": F.gru_sequence, "lstm": F.lstm_sequence}
TOL = 1e-10


def make_inputs(kind, seed=0):
    rng = np.random.default_rng(seed)
    g = GATES[kind]
    params = {"w_ih": rng.normal(size=(FIN, g * H)), "w_hh": rng.normal(size=(H, g * H)),
              "b_ih": rng.normal(size=(g * H,)), "b_hh": rng.normal(size=(g * H,))}
    h0 = rng.normal(size=(N, H))
    carry = (h0, rng.normal(size=(N, H))) if kind == "lstm" else h0
    xs = rng.normal(size=(N, T, FIN))
    return jax.tree.map(jnp.asarray, (params, carry, xs))


def assert_close(a, b, tol=TOL):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=tol, atol=tol)


def check_transforms(out_new, out_ref, theta):
    """Every transform of ``out_new`` (theta -> vector) and of the scalar loss built on it
    equals the same transform of ``out_ref``."""
    w = jnp.asarray(np.random.default_rng(7).normal(size=out_ref(theta).shape))

    def loss(out):
        return lambda t: jnp.sum(jnp.sin(out(t)) * w)

    v = jnp.asarray(np.random.default_rng(8).normal(size=theta.shape))

    @functools.partial(jax.jit, static_argnums=0)     # one compile per implementation
    def transforms(out, theta, v):
        f = loss(out)
        lin_y, lin = jax.linearize(out, theta)
        thetas = jnp.stack([theta, theta + 0.1 * v])
        return {"value": out(theta),
                "jvp": jax.jvp(out, (theta,), (v,)),
                "jacfwd": jax.jacfwd(out)(theta),
                "linearize": (lin_y, lin(v), lin(2.0 * v + 1.0)),
                "hessian": jax.hessian(f)(theta),
                "vmap_grad": jax.vmap(jax.grad(f))(thetas),
                "grad_of_grad": jax.grad(lambda t: jnp.sum(jax.grad(f)(t) ** 2))(theta),
                "checkpoint": (jax.grad(jax.checkpoint(f))(theta),
                               jax.jvp(jax.checkpoint(out), (theta,), (v,))[1])}

    new = transforms(out_new, theta, v)
    ref = transforms(out_ref, theta, v)
    for name in ref:
        try:
            assert_close(new[name], ref[name])
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None


# Compile-heavy (two implementations, every transform): the fast suite keeps the
# masked-and-reversed case of the LSTM, whose fused kernel has the most structure; the
# forward-direction cases of all three cells are also in tests/test_transforms.py.
_FAST = {("lstm", True, True)}


@pytest.mark.parametrize("kind,masked,reverse", [
    pytest.param(kind, masked, reverse, marks=() if (kind, masked, reverse) in _FAST else pytest.mark.slow,
                 id=f"{masked}-{reverse}-{kind}")
    for masked, reverse in [(False, False), (True, False), (True, True)] for kind in ["rnn", "gru", "lstm"]])
def test_sequence_transforms_match_scan(x64, kind, masked, reverse):
    params, carry, xs = make_inputs(kind)
    theta, unravel = ravel_pytree((params, carry, xs))
    lengths = jnp.array([T, 1]) if masked else None

    def out(implementation):
        def f(t):
            c, ys = SEQUENCES[kind](*unravel(t), lengths=lengths, reverse=reverse,
                                    implementation=implementation)
            return ravel_pytree((c, ys))[0]
        return f

    check_transforms(out("fused"), out("scan"), theta)


def loop_recurrence(w_hh, h0, xp, lengths=None):
    """``h_t = tanh(xp_t + h_{t-1} W_hh)``, one jnp step at a time; masked steps keep h."""
    h, hs = h0, []
    for t in range(xp.shape[-2]):
        h_new = jnp.tanh(xp[..., t, :] + h @ w_hh)
        if lengths is None:
            h = h_new
            hs.append(h)
        else:
            valid = (t < lengths)[:, None]
            h = jnp.where(valid, h_new, h)
            hs.append(jnp.where(valid, h_new, 0.0))
    return h, jnp.stack(hs, axis=-2)


@pytest.mark.parametrize("case", [pytest.param("batched", marks=pytest.mark.slow), "masked", "unbatched"])
def test_recurrence_transforms_match_loop(x64, case):
    rng = np.random.default_rng(3)
    lead = () if case == "unbatched" else (N,)
    tree = jax.tree.map(jnp.asarray, (rng.normal(size=(H, H)), rng.normal(size=lead + (H,)),
                                      rng.normal(size=lead + (T, H))))
    theta, unravel = ravel_pytree(tree)
    lengths = jnp.array([2, T]) if case == "masked" else None

    def new(t):
        return ravel_pytree(F.rnn_recurrence(*unravel(t), lengths=lengths))[0]

    def ref(t):
        return ravel_pytree(loop_recurrence(*unravel(t), lengths=lengths))[0]

    check_transforms(new, ref, theta)


def test_frozen_inputs_and_partial_tangents(x64):
    """Differentiating only some inputs (symbolic zeros for the rest): each alone matches."""
    params, carry, xs = make_inputs("lstm", seed=1)
    lengths = jnp.array([2, T])

    def run(impl, p, c, x):
        c, ys = F.lstm_sequence(p, c, x, lengths=lengths, implementation=impl)
        return jnp.sum(ys ** 2) + jnp.sum(c[1] ** 3)

    for argnums in (0, 1, 2):
        got = jax.grad(functools.partial(run, "fused"), argnums=argnums)(params, carry, xs)
        want = jax.grad(functools.partial(run, "scan"), argnums=argnums)(params, carry, xs)
        assert_close(got, want)
    only_w_hh = lambda impl: lambda w: run(impl, {**params, "w_hh": w}, carry, xs)   # noqa: E731
    d = jnp.ones_like(params["w_hh"])
    assert_close(jax.jvp(only_w_hh("fused"), (params["w_hh"],), (d,)),
                 jax.jvp(only_w_hh("scan"), (params["w_hh"],), (d,)))


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_finite_differences(x64, kind):
    params, carry, xs = make_inputs(kind, seed=2)
    target = jnp.asarray(np.random.default_rng(4).normal(size=(N, T, H)))
    lengths = jnp.array([2, T])

    def loss(tree):
        c, ys = SEQUENCES[kind](*tree, lengths=lengths, reverse=True)
        return jnp.sum((ys - target) ** 2) + sum(jnp.sum(jnp.tanh(leaf)) for leaf in jax.tree.leaves(c))

    check_gradients(loss, (params, carry, xs), tol=1e-7, vectorize=True)


def test_recurrence_finite_differences(x64):
    rng = np.random.default_rng(5)
    tree = jax.tree.map(jnp.asarray, (rng.normal(size=(H, H)), rng.normal(size=(H,)), rng.normal(size=(T, H))))
    check_gradients(lambda t: jnp.sum(jnp.cos(F.rnn_recurrence(*t)[1])), tree, tol=1e-7, vectorize=True)
