"""margin_softmax_cross_entropy (NormFace, CosFace, ArcFace) against a NumPy loop over
the examples written from the papers' equations, its float64 gradient, and its errors."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck, losses


def numpy_margin_loss(cosines, labels, scale, cosine_margin, angular_margin):
    """-log softmax of s * [cos(theta_y + m_a) - m_c, cos theta_j (j != y)], by angles, one example at a time.

    Where theta_y + m_a would pass pi, ArcFace's reference code uses cos theta_y - m_a sin(m_a)."""
    total = 0.0
    for c, y in zip(np.asarray(cosines, np.float64), np.asarray(labels)):
        logits = []
        for j, cj in enumerate(c):
            cj = min(max(cj, -1.0), 1.0)
            if j == y:
                theta = math.acos(cj)
                if theta + angular_margin <= math.pi:
                    target = math.cos(theta + angular_margin)
                else:
                    target = cj - angular_margin * math.sin(angular_margin)
                logits.append(scale * (target - cosine_margin))
            else:
                logits.append(scale * cj)
        top = max(logits)
        total += top + math.log(sum(math.exp(v - top) for v in logits)) - logits[y]
    return total / len(labels)


@pytest.mark.parametrize("cosine_margin, angular_margin", [(0.0, 0.0), (0.35, 0.0), (0.0, 0.5), (0.1, 0.3)])
def test_matches_numpy_loop(rng, cosine_margin, angular_margin):
    cosines = rng.uniform(-1, 1, (7, 5)).astype(np.float32)
    cosines[0, 2] = -0.99       # true class nearly opposite: theta + m_a > pi, the fallback branch
    labels = np.array([2, 0, 1, 4, 3, 0, 1])
    got = losses.margin_softmax_cross_entropy(jnp.asarray(cosines), jnp.asarray(labels), scale=8.0,
                                              cosine_margin=cosine_margin, angular_margin=angular_margin)
    want = numpy_margin_loss(cosines, labels, 8.0, cosine_margin, angular_margin)
    assert float(got) == pytest.approx(want, rel=2e-5)


def test_zero_margins_are_scaled_softmax_cross_entropy(rng):
    """NormFace is plain cross-entropy of s cos theta: optax's loss as the reference."""
    optax = pytest.importorskip("optax")
    cosines = jnp.asarray(rng.uniform(-1, 1, (6, 4)), jnp.float32)
    labels = jnp.asarray([0, 1, 2, 3, 0, 1])
    want = optax.softmax_cross_entropy_with_integer_labels(30.0 * cosines, labels).mean()
    got = losses.margin_softmax_cross_entropy(cosines, labels, scale=30.0)
    assert float(got) == pytest.approx(float(want), rel=1e-5)


def test_margin_raises_the_loss_and_scale_may_be_an_array(rng):
    cosines = jnp.asarray(rng.uniform(-1, 1, (6, 4)), jnp.float32)
    labels = jnp.asarray([0, 1, 2, 3, 0, 1])
    plain = losses.margin_softmax_cross_entropy(cosines, labels, scale=10.0)
    assert float(losses.margin_softmax_cross_entropy(cosines, labels, scale=10.0, cosine_margin=0.2)) > float(plain)
    assert float(losses.margin_softmax_cross_entropy(cosines, labels, scale=10.0, angular_margin=0.2)) > float(plain)
    # a learned scale: a traced scalar, differentiable
    g = jax.grad(lambda s: losses.margin_softmax_cross_entropy(cosines, labels, scale=s, cosine_margin=0.2))(10.0)
    assert np.isfinite(float(g))


@pytest.mark.parametrize("cosine_margin, angular_margin", [(0.0, 0.0), (0.2, 0.5)])
def test_gradient_float64(x64, rng, cosine_margin, angular_margin):
    cosines = jnp.asarray(rng.uniform(-0.9, 0.9, (5, 4)), jnp.float64)
    labels = jnp.asarray([0, 3, 1, 2, 1])
    gradcheck.check_gradients(
        lambda c: losses.margin_softmax_cross_entropy(c, labels, scale=4.0, cosine_margin=cosine_margin,
                                                      angular_margin=angular_margin), cosines)


def test_gradient_finite_at_cosine_one():
    """At cos theta = 1 the derivative of sin theta = sqrt(1 - c^2) is infinite; it is taken as 0."""
    cosines = jnp.array([[1.0, 0.0], [0.2, -1.0]])
    g = jax.grad(lambda c: losses.margin_softmax_cross_entropy(c, jnp.array([0, 1]), angular_margin=0.5))(cosines)
    assert bool(jnp.all(jnp.isfinite(g)))


def test_bad_input_raises():
    c = jnp.zeros((3, 4))
    y = jnp.array([0, 1, 2])
    f = losses.margin_softmax_cross_entropy
    with pytest.raises(ValueError, match=r"expected cosines of shape \(N, num_classes\), got \(4,\)"):
        f(jnp.zeros(4), jnp.array(0))
    with pytest.raises(ValueError, match=r"labels of shape cosines.shape\[:-1\] = \(3,\)"):
        f(c, jnp.array([0, 1]))
    with pytest.raises(TypeError, match="integer class labels"):
        f(c, jnp.array([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="cosines of a floating dtype"):
        f(jnp.zeros((3, 4), jnp.int32), y)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\), got values from 0 to 4"):
        f(c, jnp.array([0, 1, 4]))
    with pytest.raises(ValueError, match="expected a scalar scale > 0, got 0.0"):
        f(c, y, scale=0.0)
    with pytest.raises(ValueError, match="expected a margin >= 0, got -0.1"):
        f(c, y, cosine_margin=-0.1)
    with pytest.raises(ValueError, match=r"angular_margin in \[0, pi/2\] radians, got 2.0"):
        f(c, y, angular_margin=2.0)
