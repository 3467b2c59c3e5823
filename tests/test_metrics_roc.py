"""ROC curve and ROC AUC against scikit-learn (ties, jit) and the pair-counting definition."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import metrics


def np_auc_by_pairs(s, y):
    pos, neg = s[y == 1], s[y == 0]
    return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


@pytest.mark.parametrize("decimals", [None, 1])          # continuous scores, and many ties
def test_roc_curve_and_auc_match_sklearn(rng, decimals):
    sk = pytest.importorskip("sklearn.metrics")
    s = rng.normal(size=200)
    s = s if decimals is None else np.round(s, decimals)
    y = (rng.random(200) < 0.3 + 0.2 * (s > 0)).astype(np.int32)
    fpr, tpr, thr = metrics.roc_curve(jnp.asarray(s, jnp.float32), jnp.asarray(y))
    f_ref, t_ref, th_ref = sk.roc_curve(y, s.astype(np.float32), drop_intermediate=False)
    np.testing.assert_allclose(fpr, f_ref, atol=1e-7)
    np.testing.assert_allclose(tpr, t_ref, atol=1e-7)
    np.testing.assert_array_equal(thr, th_ref.astype(np.float32))
    auc = metrics.roc_auc(jnp.asarray(s, jnp.float32), jnp.asarray(y))
    np.testing.assert_allclose(auc, sk.roc_auc_score(y, s), rtol=1e-6)
    np.testing.assert_allclose(auc, np_auc_by_pairs(s, y), rtol=1e-6)
    np.testing.assert_allclose(auc, np.trapezoid(np.asarray(tpr), np.asarray(fpr)), rtol=1e-6)
    jitted = jax.jit(metrics.roc_auc)(jnp.asarray(s, jnp.float32), jnp.asarray(y == 1))
    np.testing.assert_allclose(jitted, auc, rtol=1e-7)


def test_roc_auc_edge_cases():
    y = jnp.array([0, 1, 0, 1])
    assert float(metrics.roc_auc(jnp.array([0.1, 0.9, 0.2, 0.8]), y)) == 1.0
    assert float(metrics.roc_auc(jnp.array([0.9, 0.1, 0.8, 0.2]), y)) == 0.0
    assert float(metrics.roc_auc(jnp.array([0.5, 0.5, 0.5, 0.5]), y)) == 0.5
    # infinite scores count like any other: the +inf positive beats a finite negative, ties the +inf one
    s = jnp.array([np.inf, np.inf, 0.0, -np.inf])
    assert float(metrics.roc_auc(s, jnp.array([0, 1, 0, 1]))) == np_auc_by_pairs(np.asarray(s), np.array([0, 1, 0, 1]))


def test_roc_rejects_bad_input():
    s = jnp.array([0.1, 0.2, 0.3])
    for fn in (metrics.roc_curve, metrics.roc_auc):
        with pytest.raises(ValueError, match="both classes among the labels, got only positives"):
            fn(s, jnp.array([1, 1, 1]))
        with pytest.raises(ValueError, match=r"labels must be 0/1 or bool, got \[2\]"):
            fn(s, jnp.array([0, 1, 2]))
        with pytest.raises(ValueError, match=r"scores \(N,\) and labels \(N,\).*\(3,\) and labels \(2,\)"):
            fn(s, jnp.array([0, 1]))
        with pytest.raises(TypeError, match="expected float scores, got dtype int32"):
            fn(jnp.array([1, 2, 3]), jnp.array([0, 1, 1]))
    with pytest.raises(TypeError, match="cannot be traced"):
        jax.jit(metrics.roc_curve)(s, jnp.array([0, 1, 1]))
    assert np.isnan(jax.jit(metrics.roc_auc)(s, jnp.array([1, 1, 1])))   # under jit: NaN for one class
