"""fnnet.text.debias against hand-worked vectors, a NumPy transcription of the notes'
formulas, and scikit-learn's PCA (Bolukbasi et al.'s doPCA); float64 gradient checks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck
from fnnet.text.debias import (bias_component, bias_direction, definitional_pca, equalize, neutralize,
                               projection)


def _np_equalize(e1, e2, g, form):
    """The notes' equalize, written out with NumPy for one pair."""
    mu = (e1 + e2) / 2
    mu_b = (mu @ g) / (g @ g) * g
    mu_orth = mu - mu_b
    e1b = (e1 @ g) / (g @ g) * g
    e2b = (e2 @ g) / (g @ g) * g
    if form == "paper":
        d1, d2 = np.linalg.norm(e1b - mu_b), np.linalg.norm(e2b - mu_b)
    else:
        d1, d2 = np.linalg.norm(e1 - mu_orth - mu_b), np.linalg.norm(e2 - mu_orth - mu_b)
    c = np.sqrt(abs(1 - mu_orth @ mu_orth))
    return c * (e1b - mu_b) / d1 + mu_orth, c * (e2b - mu_b) / d2 + mu_orth


def test_neutralize_hand_worked():
    e = jnp.array([3.0, 4.0, 5.0])
    for g in (jnp.array([1.0, 0.0, 0.0]), jnp.array([-2.5, 0.0, 0.0])):   # length and sign do not matter
        np.testing.assert_allclose(neutralize(e, g), [0.0, 4.0, 5.0], atol=1e-6)
        np.testing.assert_allclose(bias_component(e, g), [3.0, 0.0, 0.0], atol=1e-6)
    # g along (1, 1, 0)/sqrt 2: e.g = 7/sqrt 2, component (3.5, 3.5, 0)
    np.testing.assert_allclose(neutralize(e, jnp.array([1.0, 1.0, 0.0])), [-0.5, 0.5, 5.0], atol=1e-6)
    np.testing.assert_allclose(projection(e, jnp.array([0.0, 2.0, 0.0])), 4.0, atol=1e-6)
    unit = neutralize(e, jnp.array([1.0, 0.0, 0.0]), renormalize=True)
    np.testing.assert_allclose(unit, np.array([0.0, 4.0, 5.0]) / np.sqrt(41.0), atol=1e-6)


def test_neutralize_leaves_no_component_along_the_direction(rng):
    e = rng.normal(size=(7, 3, 10))
    g = rng.normal(size=10)
    out = np.asarray(neutralize(jnp.asarray(e, jnp.float32), jnp.asarray(g, jnp.float32)))
    assert out.shape == e.shape
    np.testing.assert_allclose(out @ g, 0.0, atol=1e-4)
    # what was removed is parallel to g: out + (e.g / g.g) g == e
    np.testing.assert_allclose(out + np.multiply.outer(e @ g / (g @ g), g), e, atol=1e-5)


def test_equalize_hand_worked():
    g = jnp.array([1.0, 0.0, 0.0])
    e1, e2 = jnp.array([0.8, 0.6, 0.0]), jnp.array([-0.4, 0.6, 0.2])
    # mu = (0.2, 0.6, 0.1), mu_B = (0.2, 0, 0), nu = (0, 0.6, 0.1), ||nu||^2 = 0.37,
    # e1B - mu_B = (0.6, 0, 0); paper: unit (1, 0, 0) times sqrt(0.63)
    a, b = equalize(e1, e2, g)
    np.testing.assert_allclose(a, [np.sqrt(0.63), 0.6, 0.1], atol=1e-6)
    np.testing.assert_allclose(b, [-np.sqrt(0.63), 0.6, 0.1], atol=1e-6)
    np.testing.assert_allclose([np.linalg.norm(a), np.linalg.norm(b)], [1.0, 1.0], atol=1e-6)
    # notes: divided by ||e1 - mu|| = ||(0.6, 0, -0.1)|| = sqrt(0.37)
    a, b = equalize(e1, e2, g, form="notes")
    x = np.sqrt(0.63) * 0.6 / np.sqrt(0.37)
    np.testing.assert_allclose(a, [x, 0.6, 0.1], atol=1e-6)
    np.testing.assert_allclose(b, [-x, 0.6, 0.1], atol=1e-6)


@pytest.mark.parametrize("form", ["paper", "notes"])
def test_equalize_equal_norms_and_mirror_components(rng, form):
    d = 12
    g = rng.normal(size=d)
    e1 = rng.normal(size=(5, d)) / np.sqrt(d)
    e2 = rng.normal(size=(5, d)) / np.sqrt(d)
    a, b = (np.asarray(v) for v in jax.jit(lambda x, y, h: equalize(x, y, h, form=form))(
        jnp.asarray(e1, jnp.float32), jnp.asarray(e2, jnp.float32), jnp.asarray(g, jnp.float32)))
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1), rtol=1e-5)
    np.testing.assert_allclose(a @ g, -(b @ g), rtol=1e-4, atol=1e-5)             # mirror along g
    orth_a = a - np.outer(a @ g / (g @ g), g)
    orth_b = b - np.outer(b @ g / (g @ g), g)
    np.testing.assert_allclose(orth_a, orth_b, atol=1e-5)                          # shared orthogonal part
    # a neutralised word is equally far from both
    w = np.asarray(neutralize(jnp.asarray(rng.normal(size=d), jnp.float32), jnp.asarray(g, jnp.float32)))
    np.testing.assert_allclose(np.linalg.norm(a - w, axis=1), np.linalg.norm(b - w, axis=1), rtol=1e-5)
    for i in range(5):
        ra, rb = _np_equalize(e1[i], e2[i], g, form)
        np.testing.assert_allclose(a[i], ra, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(b[i], rb, rtol=1e-4, atol=1e-5)
    if form == "paper":
        # unit inputs give unit outputs
        u1, u2 = e1 / np.linalg.norm(e1, axis=1, keepdims=True), e2 / np.linalg.norm(e2, axis=1, keepdims=True)
        a, b = equalize(jnp.asarray(u1), jnp.asarray(u2), jnp.asarray(g, jnp.float32))
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, rtol=1e-5)


def test_equalize_pair_without_bias_difference_is_finite():
    g = jnp.array([1.0, 0.0])
    a, b = equalize(jnp.array([0.5, 0.2]), jnp.array([0.5, 0.8]), g)
    np.testing.assert_allclose(a, [0.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(b, [0.0, 0.5], atol=1e-6)


def test_difference_direction_hand_worked():
    pairs = jnp.array([[[1.0, 2.0], [0.0, 2.0]], [[3.0, 1.0], [0.0, 0.0]]])
    np.testing.assert_allclose(bias_direction(pairs), [2.0, 0.5])


def test_pca_direction_against_sklearn(rng):
    decomposition = pytest.importorskip("sklearn.decomposition")
    d, p = 8, 6
    g = rng.normal(size=d)
    g /= np.linalg.norm(g)
    base = rng.normal(size=(p, d))
    strength = rng.uniform(0.5, 1.5, size=(p, 1))
    a = base + strength * g + 0.2 * rng.normal(size=(p, d))
    b = base - strength * g + 0.2 * rng.normal(size=(p, d))
    pairs = np.stack([a, b], axis=1)
    # Bolukbasi et al.'s doPCA: centre each pair, then sklearn's PCA on the 2P rows
    matrix = []
    for x, y in zip(a, b):
        c = (x + y) / 2
        matrix += [x - c, y - c]
    pca = decomposition.PCA(n_components=5).fit(np.array(matrix))
    comps, ratio = definitional_pca(jnp.asarray(pairs, jnp.float32), 5)
    comps, ratio = np.asarray(comps), np.asarray(ratio)
    np.testing.assert_allclose(ratio, pca.explained_variance_ratio_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(comps * pca.components_, axis=1)), 1.0, atol=1e-4)
    direction = np.asarray(bias_direction(jnp.asarray(pairs, jnp.float32), method="pca"))
    np.testing.assert_allclose(np.linalg.norm(direction), 1.0, atol=1e-5)
    assert direction @ (a - b).mean(0) > 0                  # oriented towards the first words
    assert direction @ g > 0.9                              # finds the planted direction
    assert ratio[0] > 3 * ratio[1]


def test_gradients_float64(x64, rng):
    g = jnp.asarray(rng.normal(size=5))
    e = jnp.asarray(rng.normal(size=(3, 5)))
    gradcheck.check_gradients(lambda t: jnp.sum(jnp.sin(neutralize(t["e"], t["g"]))), {"e": e, "g": g})
    gradcheck.check_gradients(lambda t: jnp.sum(jnp.sin(neutralize(t["e"], t["g"], renormalize=True))),
                              {"e": e, "g": g})
    e2 = jnp.asarray(rng.normal(size=(3, 5)))
    for form in ("paper", "notes"):
        def f(t, form=form):
            a, b = equalize(t["e1"], t["e2"], t["g"], form=form)
            return jnp.sum(jnp.sin(a)) + jnp.sum(jnp.cos(b) * jnp.arange(5.0)[None])
        gradcheck.check_gradients(f, {"e1": e * 0.4, "e2": e2 * 0.4, "g": g})
    pairs = jnp.asarray(rng.normal(size=(4, 2, 5)))
    gradcheck.check_gradients(lambda t: jnp.sum(jnp.sin(bias_direction(t, method="pca"))), pairs)
    gradcheck.check_gradients(lambda t: jnp.sum(jnp.sin(bias_direction(t))), pairs)


def test_bad_inputs_raise():
    good = jnp.ones((2, 2, 3))
    with pytest.raises(ValueError, match=r"expected pairs of shape \(P, 2, d\).*got shape \(2, 3, 3\)"):
        bias_direction(jnp.ones((2, 3, 3)))
    with pytest.raises(ValueError, match=r"got shape \(0, 2, 3\)"):
        bias_direction(jnp.ones((0, 2, 3)))
    with pytest.raises(TypeError, match="floating dtype"):
        bias_direction(jnp.ones((2, 2, 3), jnp.int32))
    with pytest.raises(ValueError, match="expected method 'difference' or 'pca', got 'svd'"):
        bias_direction(good, method="svd")
    with pytest.raises(ValueError, match=r"num_components <= min\(2P, d\) = 3.*got 4"):
        definitional_pca(good, 4)
    with pytest.raises(ValueError, match=r"expected a direction of shape \(3,\).*got shape \(4,\)"):
        neutralize(jnp.ones(3), jnp.ones(4))
    with pytest.raises(ValueError, match="rank 1"):
        projection(jnp.ones(3), jnp.ones((1, 3)))
    with pytest.raises(ValueError, match=r"same shape, got \(3,\) and \(2, 3\)"):
        equalize(jnp.ones(3), jnp.ones((2, 3)), jnp.ones(3))
    with pytest.raises(ValueError, match="expected form 'paper' or 'notes'"):
        equalize(jnp.ones(3), jnp.ones(3), jnp.ones(3), form="course")
    with pytest.raises(ValueError, match="got a scalar"):
        bias_component(jnp.float32(1.0), jnp.ones(1))
