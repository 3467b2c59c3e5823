"""PCA and LDA against scikit-learn in float64: equal explained variances, subspaces
equal up to sign (principal angles), and the defining properties checked in NumPy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import decomposition as dec


def principal_angle_cosines(a, b):
    """Cosines of the principal angles between the column spans of ``a`` and ``b``."""
    qa, _ = np.linalg.qr(np.asarray(a, np.float64))
    qb, _ = np.linalg.qr(np.asarray(b, np.float64))
    return np.linalg.svd(qa.T @ qb, compute_uv=False)


def correlated(rng, n, d):
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)


@pytest.mark.parametrize("n, d, k, whiten", [(50, 8, 3, False), (40, 6, None, True), (10, 25, 9, False)])
def test_pca_matches_sklearn(x64, rng, n, d, k, whiten):
    skd = pytest.importorskip("sklearn.decomposition")
    x = correlated(rng, n, d)
    ref = skd.PCA(n_components=k, whiten=whiten, svd_solver="full").fit(x)
    pca = dec.pca_fit(jnp.asarray(x), k, whiten=whiten)
    kk = ref.n_components_
    assert pca.components.shape == (kk, d)
    np.testing.assert_allclose(pca.explained_variance, ref.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(pca.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-10)
    np.testing.assert_allclose(pca.singular_values, ref.singular_values_, rtol=1e-10)
    np.testing.assert_allclose(principal_angle_cosines(pca.components.T, ref.components_.T), 1.0, atol=1e-10)
    # each axis equal up to sign, and the sign is the stated convention (largest entry positive)
    for mine, theirs in zip(np.asarray(pca.components), ref.components_):
        assert abs(abs(mine @ theirs) - 1) < 1e-10
        assert mine[np.argmax(np.abs(mine))] > 0
    z = dec.pca_transform(pca, jnp.asarray(x))
    np.testing.assert_allclose(np.abs(z), np.abs(ref.transform(x)), atol=1e-9)
    np.testing.assert_allclose(dec.pca_inverse_transform(pca, z), ref.inverse_transform(ref.transform(x)), atol=1e-9)
    if whiten:
        np.testing.assert_allclose(np.cov(np.asarray(z), rowvar=False), np.eye(kk), atol=1e-10)


def test_pca_sign_is_deterministic_and_the_fit_is_a_pytree(x64, rng):
    x = correlated(rng, 30, 5)
    a = dec.pca_fit(jnp.asarray(x), 2)
    b = dec.pca_fit(jnp.asarray(-x[::-1].copy()) * -1, 2)   # same data in another order
    np.testing.assert_allclose(a.components, b.components, atol=1e-12)
    jitted = jax.jit(dec.pca_fit, static_argnums=1)(jnp.asarray(x), 2)
    np.testing.assert_allclose(jitted.components, a.components, atol=1e-12)
    # vmapped over three data sets: each equals its own fit
    xs = jnp.asarray(np.stack([correlated(rng, 30, 5) for _ in range(3)]))
    many = jax.vmap(lambda v: dec.pca_fit(v, 2))(xs)
    np.testing.assert_allclose(many.components[1], dec.pca_fit(xs[1], 2).components, atol=1e-12)
    # all components: the inverse transform reconstructs exactly
    full = dec.pca_fit(jnp.asarray(x))
    np.testing.assert_allclose(dec.pca_inverse_transform(full, dec.pca_transform(full, jnp.asarray(x))), x,
                               atol=1e-10)


def blobs(rng, n_per, c, d):
    means = rng.normal(scale=3.0, size=(c, d))
    shape = rng.normal(size=(d, d))
    x = np.concatenate([rng.normal(size=(n_per, d)) @ shape + means[i] for i in range(c)])
    return x, np.repeat(np.arange(c), n_per).astype(np.int32)


@pytest.mark.parametrize("solver", ["svd", "eigen"])
@pytest.mark.parametrize("c, d, k", [(4, 6, None), (3, 5, 1), (6, 4, 3)])
def test_lda_matches_sklearn(x64, rng, solver, c, d, k):
    skda = pytest.importorskip("sklearn.discriminant_analysis")
    x, y = blobs(rng, 25, c, d)
    ref = skda.LinearDiscriminantAnalysis(solver=solver, n_components=k).fit(x, y)
    lda = dec.lda_fit(jnp.asarray(x), jnp.asarray(y), c, k)
    kk = min(c - 1, d) if k is None else k
    assert lda.scalings.shape == (d, kk)
    np.testing.assert_allclose(lda.explained_variance_ratio, ref.explained_variance_ratio_[:kk], rtol=1e-8)
    # each direction parallel to scikit-learn's (distinct eigenvalues), so the spans agree too
    theirs = ref.scalings_[:, :kk]
    for j in range(kk):
        cos = principal_angle_cosines(np.asarray(lda.scalings[:, j:j + 1]), theirs[:, j:j + 1])
        np.testing.assert_allclose(cos, 1.0, atol=1e-8)
    np.testing.assert_allclose(principal_angle_cosines(lda.scalings, theirs), 1.0, atol=1e-8)
    np.testing.assert_allclose(lda.class_means, ref.means_, atol=1e-12)


def test_lda_solves_the_generalised_eigenproblem(x64, rng):
    x, y = blobs(rng, 20, 5, 7)
    lda = dec.lda_fit(jnp.asarray(x), jnp.asarray(y))
    m = x.mean(0)
    sw = sum((x[y == c] - x[y == c].mean(0)).T @ (x[y == c] - x[y == c].mean(0)) for c in range(5))
    sb = sum((y == c).sum() * np.outer(x[y == c].mean(0) - m, x[y == c].mean(0) - m) for c in range(5))
    w, lam = np.asarray(lda.scalings), np.asarray(lda.eigenvalues)
    np.testing.assert_allclose(sb @ w, sw @ w * lam[None, :], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(w.T @ sw @ w / (len(x) - 5), np.eye(4), atol=1e-10)  # unit within-class variance
    assert np.all(np.diff(lam) < 0)
    # the generalised eigenvalues of scipy's dense solver
    scipy_linalg = pytest.importorskip("scipy.linalg")
    ref = np.sort(scipy_linalg.eigh(sb, sw, eigvals_only=True))[::-1][:4]
    np.testing.assert_allclose(lam, ref, rtol=1e-8)
    np.testing.assert_allclose(dec.lda_transform(lda, jnp.asarray(x)), (x - m) @ w, atol=1e-10)


def test_lda_drops_the_null_space_of_a_singular_within_scatter(x64, rng):
    # D > N - C: S_W is singular; the fit stays finite and its directions separate the classes
    x, y = blobs(rng, 3, 4, 12)
    lda = dec.lda_fit(jnp.asarray(x), jnp.asarray(y))
    z = np.asarray(dec.lda_transform(lda, jnp.asarray(x)))
    assert np.all(np.isfinite(z))
    nearest = np.argmin(((z[:, None] - np.asarray(dec.lda_transform(lda, lda.class_means))[None]) ** 2).sum(-1), 1)
    np.testing.assert_array_equal(nearest, y)


def test_bad_input_raises():
    x = jnp.zeros((6, 3))
    with pytest.raises(ValueError, match=r"n_components an int in \[1, 3\].*got 4"):
        dec.pca_fit(x, 4)
    with pytest.raises(ValueError, match=r"x of shape \(N, D\).*got \(6,\)"):
        dec.pca_fit(jnp.zeros(6))
    with pytest.raises(TypeError, match="floating dtype, got int32"):
        dec.pca_fit(jnp.zeros((6, 3), jnp.int32))
    pca = dec.pca_fit(jnp.asarray(np.random.default_rng(0).normal(size=(6, 3)), jnp.float32), 2)
    with pytest.raises(ValueError, match=r"x of shape \(\.\.\., 3\).*got \(6, 4\)"):
        dec.pca_transform(pca, jnp.zeros((6, 4)))
    with pytest.raises(ValueError, match=r"z of shape \(\.\.\., 2\).*got \(6, 3\)"):
        dec.pca_inverse_transform(pca, jnp.zeros((6, 3)))
    y = jnp.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match=r"n_components an int in \[1, 2\].*got 3"):
        dec.lda_fit(x, y, n_components=3)
    with pytest.raises(ValueError, match=r"needs an example, got none for classes \[3\]"):
        dec.lda_fit(x, y, num_classes=4)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        dec.lda_fit(x, y, num_classes=2)
    with pytest.raises(TypeError, match="integer class labels, got dtype float32"):
        dec.lda_fit(x, y.astype(jnp.float32))
    with pytest.raises(ValueError, match=r"labels of shape \(6,\).*got \(5,\)"):
        dec.lda_fit(x, y[:5])
    with pytest.raises(ValueError, match="pass num_classes when the labels are traced"):
        jax.jit(dec.lda_fit)(x, y)
