"""Classification metrics as pure functions of arrays: accuracy, precision, recall, F1,
the confusion matrix, and the ROC curve and its area (sklearn's conventions).

Each takes either scores ``(..., K)`` (logits or probabilities, reduced by ``argmax``
over the last axis), integer class predictions of the labels' shape, or, for binary
problems, float scores of the labels' shape with an explicit ``threshold`` (0.0 for
logits, 0.5 for probabilities). Results are JAX scalars, so the metrics run inside
``jit`` when ``num_classes`` is known statically (from the scores, or given).

Imports: jax, numpy.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["accuracy", "precision", "recall", "f1", "confusion_matrix",
           "precision_recall_f1", "roc_curve", "roc_auc"]


def _predictions(name: str, outputs, labels, threshold):
    """Integer class predictions of the labels' shape, and the class count if known."""
    outputs, labels = jnp.asarray(outputs), jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer) and labels.dtype != jnp.bool_:
        raise TypeError(f"{name}: expected integer labels, got dtype {labels.dtype}")
    if outputs.ndim == labels.ndim + 1 and outputs.shape[:-1] == labels.shape:
        if threshold is not None:
            raise ValueError(f"{name}: threshold applies to binary scores of the labels' shape, "
                             f"got scores {outputs.shape} with labels {labels.shape}")
        return jnp.argmax(outputs, axis=-1).astype(jnp.int32), outputs.shape[-1]
    if outputs.shape != labels.shape:
        raise ValueError(f"{name}: expected scores of shape labels.shape + (num_classes,) or "
                         f"predictions of shape labels.shape, got outputs {outputs.shape} and "
                         f"labels {labels.shape}")
    if jnp.issubdtype(outputs.dtype, jnp.floating):
        if threshold is None:
            raise TypeError(f"{name}: float outputs of the labels' shape {labels.shape} are "
                            "ambiguous; pass threshold=0.0 (logits) or 0.5 (probabilities), or "
                            "integer predictions")
        return (outputs > threshold).astype(jnp.int32), 2
    if threshold is not None:
        raise ValueError(f"{name}: threshold given but outputs are integer predictions")
    return outputs.astype(jnp.int32), None


def accuracy(outputs: jax.Array, labels: jax.Array, *, threshold: float | None = None) -> jax.Array:
    """Fraction of correct predictions, ``mean(pred == y)``.

    Args:
      outputs: scores ``(..., K)`` (argmax taken), integer predictions of the labels'
        shape, or binary float scores of the labels' shape together with ``threshold``.
      labels: integer labels.
      threshold: for binary float scores: predict 1 where ``outputs > threshold``.

    Returns:
      A float32 scalar in [0, 1].
    """
    pred, _ = _predictions("accuracy", outputs, labels, threshold)
    return jnp.mean((pred == jnp.asarray(labels).astype(jnp.int32)).astype(jnp.float32))


def _num_classes(name, pred, labels, k_scores, num_classes):
    if num_classes is not None:
        if k_scores is not None and k_scores != num_classes and k_scores != 2:
            raise ValueError(f"{name}: num_classes={num_classes} but the scores have "
                             f"{k_scores} classes")
        return int(num_classes)
    if k_scores is not None:
        return k_scores
    if isinstance(pred, jax.core.Tracer) or isinstance(labels, jax.core.Tracer):
        raise ValueError(f"{name}: pass num_classes when predictions are traced (inside jit)")
    return int(max(np.max(np.asarray(pred), initial=0), np.max(np.asarray(labels), initial=0))) + 1


def confusion_matrix(outputs: jax.Array, labels: jax.Array, num_classes: int | None = None, *,
                     threshold: float | None = None) -> jax.Array:
    """Confusion matrix ``C[i, j]`` = number of examples of true class ``i`` predicted ``j``.

    Rows are true classes, columns predictions (sklearn's convention).

    Args:
      outputs: scores ``(..., K)``, integer predictions, or binary scores with ``threshold``.
      labels: integer labels in ``[0, num_classes)``.
      num_classes: K; inferred from the scores' last axis, or (eagerly) from the largest
        label or prediction.
      threshold: see :func:`accuracy`.

    Returns:
      An int32 array ``(K, K)``.
    """
    name = "confusion_matrix"
    pred, k = _predictions(name, outputs, labels, threshold)
    labels = jnp.asarray(labels).astype(jnp.int32)
    k = _num_classes(name, pred, labels, k, num_classes)
    if not isinstance(labels, jax.core.Tracer) and labels.size:
        lo, hi = int(jnp.min(labels)), int(jnp.max(labels))
        if lo < 0 or hi >= k:
            raise ValueError(f"{name}: labels must lie in [0, {k}), got values from {lo} to {hi}")
    flat = labels.reshape(-1) * k + pred.reshape(-1)
    counts = jnp.zeros((k * k,), jnp.int32).at[flat].add(1, mode="drop")
    return counts.reshape(k, k)


def _safe_div(a, b):
    return jnp.where(b > 0, a / jnp.where(b > 0, b, 1), 0.0)


def precision_recall_f1(outputs: jax.Array, labels: jax.Array, *, average: str = "binary",
                        num_classes: int | None = None, pos_label: int = 1,
                        threshold: float | None = None):
    """Precision ``tp / (tp + fp)``, recall ``tp / (tp + fn)`` and
    ``F1 = 2 P R / (P + R)``, each 0 where its denominator is 0 (sklearn's
    ``zero_division=0``).

    Args:
      outputs, labels, num_classes, threshold: as for :func:`confusion_matrix`.
      average: ``"binary"`` (class ``pos_label`` only), ``"macro"`` (unweighted mean of
        per-class scores), ``"weighted"`` (mean weighted by class support), ``"micro"``
        (from global tp/fp/fn counts; equals accuracy for single-label problems), or
        ``None`` (per-class arrays). The macro and weighted means run over all
        ``num_classes`` classes; sklearn averages only over the classes present in
        the labels or predictions unless given ``labels=range(num_classes)``.
      pos_label: the positive class for ``average="binary"``.

    Returns:
      ``(precision, recall, f1)`` as float32 scalars (arrays ``(K,)`` if ``average=None``).
    """
    cm = confusion_matrix(outputs, labels, num_classes, threshold=threshold).astype(jnp.float32)
    tp = jnp.diagonal(cm)
    predicted = jnp.sum(cm, axis=0)
    support = jnp.sum(cm, axis=1)
    if average == "micro":
        p = r = _safe_div(jnp.sum(tp), jnp.sum(cm))
        return p, r, _safe_div(2 * p * r, p + r)
    p_k = _safe_div(tp, predicted)
    r_k = _safe_div(tp, support)
    f_k = _safe_div(2 * p_k * r_k, p_k + r_k)
    if average is None:
        return p_k, r_k, f_k
    if average == "binary":
        if not 0 <= pos_label < cm.shape[0]:
            raise ValueError(f"precision_recall_f1: pos_label {pos_label} outside "
                             f"[0, {cm.shape[0]})")
        return p_k[pos_label], r_k[pos_label], f_k[pos_label]
    if average == "macro":
        return jnp.mean(p_k), jnp.mean(r_k), jnp.mean(f_k)
    if average == "weighted":
        w = _safe_div(support, jnp.sum(support))
        return jnp.sum(w * p_k), jnp.sum(w * r_k), jnp.sum(w * f_k)
    raise ValueError(f"precision_recall_f1: average must be 'binary', 'macro', 'weighted', "
                     f"'micro' or None, got {average!r}")


def precision(outputs, labels, *, average="binary", num_classes=None, pos_label=1,
              threshold=None):
    """Precision ``tp / (tp + fp)``; arguments as :func:`precision_recall_f1`."""
    return precision_recall_f1(outputs, labels, average=average, num_classes=num_classes,
                               pos_label=pos_label, threshold=threshold)[0]


def recall(outputs, labels, *, average="binary", num_classes=None, pos_label=1,
           threshold=None):
    """Recall ``tp / (tp + fn)``; arguments as :func:`precision_recall_f1`."""
    return precision_recall_f1(outputs, labels, average=average, num_classes=num_classes,
                               pos_label=pos_label, threshold=threshold)[1]


def f1(outputs, labels, *, average="binary", num_classes=None, pos_label=1, threshold=None):
    """F1 ``2 P R / (P + R)`` per class, then averaged; arguments as
    :func:`precision_recall_f1`."""
    return precision_recall_f1(outputs, labels, average=average, num_classes=num_classes,
                               pos_label=pos_label, threshold=threshold)[2]


# --------------------------------------------------------------------------------- ROC

def _binary_scores(name: str, scores, labels):
    scores, labels = jnp.asarray(scores), jnp.asarray(labels)
    if not jnp.issubdtype(scores.dtype, jnp.floating):
        raise TypeError(f"{name}: expected float scores, got dtype {scores.dtype}")
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f"{name}: expected scores (N,) and labels (N,) of one length, got scores "
                         f"{scores.shape} and labels {labels.shape}")
    if not (jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_):
        raise TypeError(f"{name}: expected 0/1 or bool labels, got dtype {labels.dtype}")
    if not isinstance(labels, jax.core.Tracer):
        lab = np.asarray(labels)
        bad = ~np.isin(lab, (0, 1))
        if bad.any():
            raise ValueError(f"{name}: labels must be 0/1 or bool, got {np.unique(lab[bad])[:5].tolist()}")
        if lab.size and (lab.all() or not lab.any()):
            raise ValueError(f"{name}: expected both classes among the labels, got only "
                             f"{'positives' if lab.all() else 'negatives'} ({lab.size} examples)")
        if lab.size == 0:
            raise ValueError(f"{name}: expected at least one positive and one negative, got no examples")
    return scores, labels.astype(bool)


def roc_curve(scores: jax.Array, labels: jax.Array):
    """The receiver operating characteristic: true against false positive rate as the
    decision threshold falls through the scores.

    Predicting positive where ``score >= t``, ``tpr(t) = #{pos: s >= t} / P`` and
    ``fpr(t) = #{neg: s >= t} / N``, at ``t = inf`` and at every distinct score in
    decreasing order: sklearn's ``roc_curve(labels, scores, drop_intermediate=False)``.
    The length depends on the number of distinct scores, so the curve is computed
    eagerly (not under ``jit``); :func:`roc_auc` runs under ``jit``.

    Args:
      scores: ``(N,)`` float, larger meaning "more likely positive" (for a distance,
        pass its negative).
      labels: ``(N,)`` 0/1 or bool, both classes present.

    Returns:
      ``(fpr, tpr, thresholds)``, each ``(M + 1,)`` for ``M`` distinct scores, starting
      at ``(0, 0, inf)`` and ending at ``(1, 1, min(scores))``.
    """
    name = "roc_curve"
    if isinstance(scores, jax.core.Tracer) or isinstance(labels, jax.core.Tracer):
        raise TypeError(f"{name}: the curve's length depends on the values, so it cannot be traced "
                        "(call it outside jit; roc_auc works under jit)")
    scores, labels = _binary_scores(name, scores, labels)
    order = jnp.argsort(-scores, stable=True)
    s, y = scores[order], labels[order]
    last = np.flatnonzero(np.append(np.asarray(s[1:] != s[:-1]), True))  # the last index of each tie
    tps = jnp.cumsum(y.astype(jnp.int32))[last]
    fps = jnp.asarray(last + 1) - tps
    zero = jnp.zeros((1,), jnp.int32)
    tps, fps = jnp.concatenate([zero, tps]), jnp.concatenate([zero, fps])
    fpr = fps / fps[-1]
    tpr = tps / tps[-1]
    thresholds = jnp.concatenate([jnp.full((1,), jnp.inf, s.dtype), s[last]])
    return fpr.astype(s.dtype), tpr.astype(s.dtype), thresholds


def roc_auc(scores: jax.Array, labels: jax.Array) -> jax.Array:
    """Area under the ROC curve: the probability that a random positive scores above a
    random negative, ties counting one half (the Mann-Whitney U statistic over ``P N``)::

        AUC = sum_{i pos} (#{j neg: s_j < s_i} + #{j neg: s_j = s_i} / 2) / (P N)

    which equals the trapezoidal area under :func:`roc_curve` and sklearn's
    ``roc_auc_score``. Sorting makes it ``O(N log N)``; it runs under ``jit`` (a batch
    with one class gives NaN there, and a ``ValueError`` eagerly).

    Args:
      scores: ``(N,)`` float, larger meaning "more likely positive".
      labels: ``(N,)`` 0/1 or bool.

    Returns:
      A scalar in [0, 1], in the scores' dtype.
    """
    scores, labels = _binary_scores("roc_auc", scores, labels)
    negatives = jnp.sort(jnp.where(labels, jnp.inf, scores))      # positives pushed to the end
    below = jnp.searchsorted(negatives, scores, side="left")
    not_above = jnp.searchsorted(negatives, scores, side="right")
    n_pos = jnp.sum(labels)
    n_neg = labels.shape[0] - n_pos
    not_above = jnp.minimum(not_above, n_neg)     # a score of +inf ties the pushed positives
    # 2 x (count below + ties / 2), summed over the positives, in integers
    twice = jnp.sum(jnp.where(labels, below + not_above, 0))
    return (twice.astype(scores.dtype) / 2) / (n_pos * n_neg).astype(scores.dtype)
