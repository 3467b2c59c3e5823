"""fnnet.metrics against sklearn.metrics."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from fnnet import metrics

K = 4


@pytest.fixture
def multiclass(rng):
    y = rng.integers(0, K, size=50)
    logits = rng.normal(size=(50, K))
    logits[np.arange(50), y] += 1.0           # better than chance
    return logits, y, logits.argmax(-1)


def test_accuracy(multiclass):
    logits, y, pred = multiclass
    ref = skm.accuracy_score(y, pred)
    np.testing.assert_allclose(metrics.accuracy(jnp.asarray(logits), jnp.asarray(y)), ref, rtol=1e-6)
    np.testing.assert_allclose(metrics.accuracy(jnp.asarray(pred), jnp.asarray(y)), ref, rtol=1e-6)
    # under jit, leading axes
    acc = jax.jit(metrics.accuracy)(jnp.asarray(logits).reshape(5, 10, K), jnp.asarray(y).reshape(5, 10))
    np.testing.assert_allclose(acc, ref, rtol=1e-6)


def test_confusion_matrix(multiclass):
    logits, y, pred = multiclass
    ref = skm.confusion_matrix(y, pred, labels=range(K))
    np.testing.assert_array_equal(metrics.confusion_matrix(jnp.asarray(logits), jnp.asarray(y)), ref)
    np.testing.assert_array_equal(metrics.confusion_matrix(jnp.asarray(pred), jnp.asarray(y)), ref)
    cm = jax.jit(metrics.confusion_matrix, static_argnums=2)(jnp.asarray(pred), jnp.asarray(y), 6)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y, pred, labels=range(6)))
    assert cm.dtype == jnp.int32


@pytest.mark.parametrize("average", ["macro", "weighted", "micro", None])
def test_precision_recall_f1_multiclass(multiclass, average):
    logits, y, pred = multiclass
    for fn, ref in ((metrics.precision, skm.precision_score), (metrics.recall, skm.recall_score),
                    (metrics.f1, skm.f1_score)):
        want = ref(y, pred, average=average, labels=range(K), zero_division=0)
        np.testing.assert_allclose(fn(jnp.asarray(logits), jnp.asarray(y), average=average), want,
                                   rtol=1e-6, err_msg=f"{fn.__name__} {average}")


def test_binary_with_threshold_and_zero_division(rng):
    y = rng.integers(0, 2, size=40)
    scores = rng.normal(size=40) + (y - 0.5)
    pred = (scores > 0.0).astype(int)
    S, Y = jnp.asarray(scores), jnp.asarray(y)
    for fn, ref in ((metrics.precision, skm.precision_score), (metrics.recall, skm.recall_score),
                    (metrics.f1, skm.f1_score)):
        np.testing.assert_allclose(fn(S, Y, threshold=0.0), ref(y, pred), rtol=1e-6)
        np.testing.assert_allclose(fn(S, Y, threshold=0.0, pos_label=0), ref(y, pred, pos_label=0),
                                   rtol=1e-6)
    np.testing.assert_allclose(metrics.accuracy(S, Y, threshold=0.0), skm.accuracy_score(y, pred),
                               rtol=1e-6)
    # nothing predicted positive: precision 0 (sklearn's zero_division=0)
    none = jnp.zeros(40, jnp.int32)
    assert float(metrics.precision(none, Y, num_classes=2)) == skm.precision_score(
        y, np.zeros(40, int), zero_division=0) == 0.0


def test_bad_input():
    with pytest.raises(TypeError, match="threshold"):
        metrics.accuracy(jnp.zeros(3), jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match=r"accuracy.*\(3, 2\).*\(4,\)"):
        metrics.accuracy(jnp.zeros((3, 2)), jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match=r"confusion_matrix.*\[0, 3\)"):
        metrics.confusion_matrix(jnp.zeros((2, 3)), jnp.asarray([0, 3]))
    with pytest.raises(ValueError, match="num_classes"):
        jax.jit(metrics.confusion_matrix)(jnp.zeros(3, jnp.int32), jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match="average"):
        metrics.f1(jnp.zeros((2, 3)), jnp.asarray([0, 1]), average="samples")
