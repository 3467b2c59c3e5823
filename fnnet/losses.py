"""Loss functions and weight penalties, as pure functions of arrays.

Every loss returns the mean over the batch (over every axis but the class axis for
the classification losses, over every element for the elementwise ones) as a scalar,
so ``loss_fn(outputs, y)`` plugs straight into ``fnnet.train``. Inputs must have
exactly the shapes each loss names: nothing broadcasts (``mse`` of ``(N, 1)`` against
``(N,)`` raises instead of silently becoming ``(N, N)``), and mismatches raise a
``ValueError`` naming the loss and both shapes. Integer labels outside
``[0, num_classes)`` raise a ``ValueError`` when the labels are concrete (eager
calls, or closed over by ``jax.grad``); under ``jit`` they cannot be checked and the
classification losses return NaN for them instead of a wrong number.

The logit-based losses are written so that logits of +-1e4 give finite values and
finite gradients in float32.

The metric-learning losses (triplet, contrastive, and triplet mining inside a batch)
take embeddings ``(..., D)``; their distances are p-norms over the last axis whose
gradient at zero distance is 0, not NaN (a positive pair that collapses to one point
is a fixed point, not a crash).

Imports: jax, numpy.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels", "nll_loss", "sequence_cross_entropy", "mse", "mae",
    "huber", "hinge", "multiclass_hinge", "l1_penalty", "l2_penalty", "default_penalty_mask",
    "pairwise_distances", "triplet_loss", "contrastive_loss", "batch_all_triplet_loss",
    "batch_hard_triplet_loss", "margin_softmax_cross_entropy",
]


# ----------------------------------------------------------------------------- checks

def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_floating(name: str, what: str, x) -> None:
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise TypeError(f"{name}: expected {what} of a floating dtype, got {jnp.result_type(x)}")


def _check_same_shape(name: str, a_what: str, a, b_what: str, b) -> None:
    if jnp.shape(a) != jnp.shape(b):
        raise ValueError(f"{name}: {a_what} and {b_what} must have the same shape (nothing is "
                         f"broadcast), got {a_what} {jnp.shape(a)} and {b_what} {jnp.shape(b)}")


def _check_integer_labels(name: str, scores_what: str, scores, labels) -> None:
    """Labels (...,) integer, scores (..., K); range-checked when concrete."""
    if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise TypeError(f"{name}: expected integer class labels, got dtype "
                        f"{jnp.result_type(labels)} (use the one-hot variant for soft labels)")
    if jnp.ndim(scores) < 1 or jnp.shape(labels) != jnp.shape(scores)[:-1]:
        raise ValueError(f"{name}: expected labels of shape {scores_what}.shape[:-1] = "
                         f"{jnp.shape(scores)[:-1]}, got {scores_what} {jnp.shape(scores)} and "
                         f"labels {jnp.shape(labels)}")
    _check_label_range(name, labels, jnp.shape(scores)[-1])


def _check_label_range(name: str, labels, num_classes: int) -> None:
    """Raise ``ValueError`` if concrete integer ``labels`` fall outside ``[0, num_classes)``.

    Does nothing for traced labels (inside ``jit``/``vmap``), whose values are unknown.
    """
    if not _is_concrete(labels) or np.size(labels) == 0:
        return
    lab = np.asarray(labels)
    lo, hi = int(lab.min()), int(lab.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{name}: labels must lie in [0, {num_classes}), got values from "
                         f"{lo} to {hi}")


def _pick(values: jax.Array, labels: jax.Array) -> jax.Array:
    """``values[..., labels]``; NaN for out-of-range labels (only reachable under jit)."""
    picked = jnp.take_along_axis(values, labels[..., None].astype(jnp.int32), axis=-1,
                                 mode="fill", fill_value=jnp.nan)
    return picked[..., 0]


# ----------------------------------------------------------------- classification losses

def _safe_log(p: jax.Array) -> jax.Array:
    """``max(log p, -100)`` with zero (not NaN) gradient where ``p == 0`` (as PyTorch's BCELoss)."""
    positive = p > 0
    return jnp.where(positive, jnp.maximum(jnp.log(jnp.where(positive, p, 1.0)), -100.0), -100.0)


def binary_cross_entropy(probs: jax.Array, labels: jax.Array) -> jax.Array:
    """Binary cross-entropy of probabilities, averaged over all elements.

    ``L = mean(-[y log p + (1 - y) log(1 - p)])`` with each log clamped at -100 as in
    PyTorch's ``BCELoss``, so ``p`` of exactly 0 or 1 gives a finite loss. Prefer
    :func:`binary_cross_entropy_with_logits` when the model's last step is a sigmoid.

    Args:
      probs: predicted probabilities in [0, 1], any shape.
      labels: targets in [0, 1] (hard or soft), the same shape as ``probs``.

    Returns:
      The mean loss, a scalar.
    """
    name = "binary_cross_entropy"
    _check_floating(name, "probs", probs)
    _check_same_shape(name, "probs", probs, "labels", labels)
    labels = jnp.asarray(labels, jnp.result_type(probs))
    return jnp.mean(-(labels * _safe_log(probs) + (1 - labels) * _safe_log(1 - probs)))


def binary_cross_entropy_with_logits(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Binary cross-entropy of logits ``z`` (sigmoid fused in), averaged over all elements.

    ``L = mean(y softplus(-z) + (1 - y) softplus(z))``, which equals
    ``-[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))]`` without cancellation: each term
    is a stable softplus, finite for ``|z| = 1e4``, with gradient ``sigmoid(z) - y``.

    Args:
      logits: real scores, any shape.
      labels: targets in [0, 1] (hard or soft), the same shape as ``logits``.

    Returns:
      The mean loss, a scalar.
    """
    name = "binary_cross_entropy_with_logits"
    _check_floating(name, "logits", logits)
    _check_same_shape(name, "logits", logits, "labels", labels)
    labels = jnp.asarray(labels, jnp.result_type(logits))
    return jnp.mean(labels * jax.nn.softplus(-logits) + (1 - labels) * jax.nn.softplus(logits))


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy with one-hot or soft labels over the last axis.

    ``L = mean_n(-sum_k y_nk log_softmax(z_n)_k)`` with
    ``log_softmax(z)_k = z_k - max(z) - log sum_j exp(z_j - max(z))``; terms with
    ``y_nk = 0`` contribute 0 even where a logit is ``-inf`` (masking).

    Args:
      logits: ``(..., K)`` real scores.
      labels: ``(..., K)`` class probabilities (rows summing to 1), the same shape.

    Returns:
      The loss averaged over all axes but the last, a scalar.
    """
    name = "softmax_cross_entropy"
    _check_floating(name, "logits", logits)
    if jnp.ndim(logits) < 1:
        raise ValueError(f"{name}: expected logits of shape (..., num_classes), got a scalar")
    _check_same_shape(name, "logits", logits, "labels", labels)
    labels = jnp.asarray(labels, jnp.result_type(logits))
    log_p = jax.nn.log_softmax(logits, axis=-1)
    terms = jnp.where(labels != 0, labels * log_p, 0.0)
    return jnp.mean(-jnp.sum(terms, axis=-1))


def softmax_cross_entropy_with_integer_labels(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy with integer class labels.

    ``L = mean_n(logsumexp(z_n) - z_{n, y_n})``, computed with ``m_n = max_k z_nk`` as
    ``log sum_k exp(z_nk - m_n) - (z_{n, y_n} - m_n)``: the shift keeps it finite and
    exact to rounding for logits of any size, and gathering the label's logit from the
    input (not from a normalised ``log_softmax`` array) compiles to the same program
    size as optax's version.

    Args:
      logits: ``(..., K)`` real scores.
      labels: ``(...)`` integers in ``[0, K)``.

    Returns:
      The loss averaged over all axes but the last, a scalar.

    >>> import jax.numpy as jnp
    >>> logits = jnp.array([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]])
    >>> loss = softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 2]))
    >>> round(float(loss), 4)  # (0 + log 3) / 2
    0.5493
    """
    name = "softmax_cross_entropy_with_integer_labels"
    _check_floating(name, "logits", logits)
    _check_integer_labels(name, "logits", logits, labels)
    m = jax.lax.stop_gradient(jnp.max(logits, axis=-1))
    log_norm = jnp.log(jnp.sum(jnp.exp(logits - m[..., None]), axis=-1))
    return jnp.mean(log_norm - (_pick(logits, jnp.asarray(labels)) - m))


def nll_loss(log_probs: jax.Array, labels: jax.Array) -> jax.Array:
    """Negative log-likelihood of integer labels under given log-probabilities.

    ``L = mean_n(-log_probs[n, y_n])``, PyTorch's ``NLLLoss``: feed it
    ``log_softmax`` outputs (then it equals softmax cross-entropy).

    Args:
      log_probs: ``(..., K)`` log-probabilities.
      labels: ``(...)`` integers in ``[0, K)``.

    Returns:
      The mean loss, a scalar.
    """
    name = "nll_loss"
    _check_floating(name, "log_probs", log_probs)
    _check_integer_labels(name, "log_probs", log_probs, labels)
    return jnp.mean(-_pick(log_probs, jnp.asarray(labels)))


def _sequence_mask(name: str, labels, mask, lengths):
    """The float weights ``(B, T)`` of the real tokens, from ``mask`` or ``lengths`` (or all ones)."""
    if mask is not None and lengths is not None:
        raise ValueError(f"{name}: pass mask or lengths, not both")
    if lengths is not None:
        lengths = jnp.asarray(lengths)
        if lengths.shape != labels.shape[:1] or not jnp.issubdtype(lengths.dtype, jnp.integer):
            raise ValueError(f"{name}: expected integer lengths of shape ({labels.shape[0]},), got "
                             f"{lengths.dtype} {lengths.shape}")
        return jnp.arange(labels.shape[1])[None, :] < lengths[:, None]
    if mask is None:
        return jnp.ones(labels.shape, bool)
    mask = jnp.asarray(mask)
    if mask.shape != labels.shape:
        raise ValueError(f"{name}: expected a mask of the labels' shape {labels.shape}, got {mask.shape}")
    return mask.astype(bool)


def sequence_cross_entropy(logits: jax.Array, labels: jax.Array, *, mask: jax.Array | None = None,
                           lengths: jax.Array | None = None, label_smoothing: float = 0.0) -> jax.Array:
    """Softmax cross-entropy of a batch of sequences, averaged over the real tokens only.

    With ``m_bt`` 1 at real tokens and 0 at padding, ``q = (1 - eps) onehot(y) + eps / V``
    (label smoothing, Szegedy et al. 2016)::

        L = sum_bt m_bt (-sum_v q_btv log_softmax(z_bt)_v) / sum_bt m_bt

    which is PyTorch's ``cross_entropy(..., ignore_index=pad, label_smoothing=eps)`` with
    mean reduction. Labels at padded positions are never read (any value is allowed
    there); a batch with no real token gives 0.

    Args:
      logits: ``(B, T, V)`` real scores.
      labels: ``(B, T)`` integers in ``[0, V)`` at the real tokens.
      mask: ``(B, T)`` bool (or 0/1), True at real tokens; or
      lengths: ``(B,)`` integers, the first ``lengths[b]`` tokens of row ``b`` are real.
        Neither: every token is real.
      label_smoothing: ``eps`` in ``[0, 1]``.

    Returns:
      The mean loss per real token, a scalar.
    """
    name = "sequence_cross_entropy"
    _check_floating(name, "logits", logits)
    if jnp.ndim(logits) != 3:
        raise ValueError(f"{name}: expected logits of shape (B, T, V), got {jnp.shape(logits)}")
    if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise TypeError(f"{name}: expected integer labels, got dtype {jnp.result_type(labels)}")
    labels = jnp.asarray(labels)
    if labels.shape != logits.shape[:2]:
        raise ValueError(f"{name}: expected labels of shape logits.shape[:2] = {logits.shape[:2]}, "
                         f"got {labels.shape}")
    if not (isinstance(label_smoothing, (int, float)) and 0.0 <= label_smoothing <= 1.0):
        raise ValueError(f"{name}: label_smoothing must be a float in [0, 1], got {label_smoothing!r}")
    real = _sequence_mask(name, labels, mask, lengths)
    if _is_concrete(labels) and _is_concrete(real):
        _check_label_range(name, np.asarray(labels)[np.asarray(real)], logits.shape[-1])
    safe = jnp.where(real, labels, 0)
    m = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    log_p = logits - m - jnp.log(jnp.sum(jnp.exp(logits - m), axis=-1, keepdims=True))
    per = -_pick(log_p, safe)
    if label_smoothing:
        per = (1.0 - label_smoothing) * per - label_smoothing * jnp.mean(log_p, axis=-1)
    weights = real.astype(per.dtype)
    return jnp.sum(per * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def hinge(scores: jax.Array, labels: jax.Array) -> jax.Array:
    """Binary hinge loss with labels in {-1, +1}: ``L = mean(max(0, 1 - y s))``.

    Args:
      scores: real scores, any shape.
      labels: -1 or +1, the same shape (checked when concrete).

    Returns:
      The mean loss, a scalar.
    """
    name = "hinge"
    _check_floating(name, "scores", scores)
    _check_same_shape(name, "scores", scores, "labels", labels)
    if _is_concrete(labels) and np.size(labels):
        bad = ~np.isin(np.asarray(labels), (-1, 1))
        if bad.any():
            raise ValueError(f"{name}: labels must be -1 or +1, got "
                             f"{np.unique(np.asarray(labels)[bad])[:5].tolist()}")
    labels = jnp.asarray(labels, jnp.result_type(scores))
    return jnp.mean(jax.nn.relu(1 - labels * scores))


def multiclass_hinge(scores: jax.Array, labels: jax.Array, *, margin: float = 1.0,
                     aggregate: str = "sum") -> jax.Array:
    """Multiclass hinge (SVM) loss with integer labels.

    ``aggregate="sum"`` (Weston & Watkins 1999; the CS231n SVM loss; PyTorch's
    ``MultiMarginLoss`` times K): ``L_n = sum_{j != y} max(0, s_j - s_y + margin)``.
    ``aggregate="max"`` (Crammer & Singer 2001; optax's ``multiclass_hinge_loss``):
    ``L_n = max_j(s_j + margin [j != y]) - s_y``.

    Args:
      scores: ``(..., K)`` real scores.
      labels: ``(...)`` integers in ``[0, K)``.
      margin: the margin Delta.
      aggregate: ``"sum"`` or ``"max"`` over the wrong classes.

    Returns:
      The mean over the batch, a scalar.
    """
    name = "multiclass_hinge"
    _check_floating(name, "scores", scores)
    _check_integer_labels(name, "scores", scores, labels)
    labels = jnp.asarray(labels)
    wrong = 1.0 - jax.nn.one_hot(labels, scores.shape[-1], dtype=scores.dtype)
    correct = _pick(scores, labels)[..., None]
    if aggregate == "sum":
        per = jnp.sum(wrong * jax.nn.relu(scores - correct + margin), axis=-1)
    elif aggregate == "max":
        per = jnp.max(scores + margin * wrong, axis=-1) - correct[..., 0]
    else:
        raise ValueError(f"{name}: aggregate must be 'sum' or 'max', got {aggregate!r}")
    return jnp.mean(per)


# -------------------------------------------------------------------- regression losses

def _elementwise(name: str, pred, target):
    _check_floating(name, "pred", pred)
    _check_same_shape(name, "pred", pred, "target", target)
    return pred - jnp.asarray(target, jnp.result_type(pred))


def mse(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared error ``mean((pred - target)^2)`` over all elements (same shapes)."""
    r = _elementwise("mse", pred, target)
    return jnp.mean(r * r)


def mae(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean absolute error ``mean(|pred - target|)`` over all elements (same shapes).

    ``|r|`` is computed as ``sign(r) r``, so the derivative at ``pred == target`` is 0,
    as in PyTorch's ``l1_loss`` (``jnp.abs`` gives 1 there)."""
    r = _elementwise("mae", pred, target)
    return jnp.mean(jnp.sign(r) * r)


def huber(pred: jax.Array, target: jax.Array, delta: float = 1.0) -> jax.Array:
    """Huber loss (Huber 1964) averaged over all elements, ``r = pred - target``.

    ``l(r) = r^2 / 2`` for ``|r| <= delta`` and ``delta (|r| - delta / 2)`` beyond:
    quadratic near zero, linear (gradient ``delta sign(r)``) in the tails. Equals
    optax's ``huber_loss`` and PyTorch's ``HuberLoss(delta=delta)``.
    """
    if not delta > 0:
        raise ValueError(f"huber: delta must be positive, got {delta}")
    r = _elementwise("huber", pred, target)
    a = jnp.abs(r)
    quad = jnp.minimum(a, delta)
    return jnp.mean(0.5 * quad * quad + delta * (a - quad))


# --------------------------------------------------------------- metric learning

def _check_norm_degree(name: str, p) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 1 <= p < float("inf"):
        raise ValueError(f"{name}: expected a finite norm degree p >= 1, got {p!r}")
    return float(p)


def _check_margin(name: str, margin, allow_none: bool) -> None:
    if margin is None and allow_none:
        return
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
        soft = " (or None for the soft margin)" if allow_none else ""
        raise ValueError(f"{name}: expected a margin >= 0{soft}, got {margin!r}")


def _norm(diff: jax.Array, p: float, squared: bool) -> jax.Array:
    """``||diff||_p`` over the last axis (squared if asked), with gradient 0 at ``diff = 0``.

    ``|x|`` is ``sign(x) x`` (derivative 0 at 0) and the root ``s^(1/p)`` of the sum
    ``s = sum |x|^p`` is taken only where ``s > 0`` (its derivative is infinite at 0).
    The squared Euclidean norm is the plain sum of squares, smooth everywhere.
    """
    if p == 2.0:
        s = jnp.sum(diff * diff, axis=-1)
        if squared:
            return s
    elif p == 1.0:
        s = jnp.sum(jnp.sign(diff) * diff, axis=-1)
    else:
        s = jnp.sum((jnp.sign(diff) * diff) ** p, axis=-1)
    if p == 1.0:
        root = s
    else:
        positive = s > 0
        root = jnp.where(positive, jnp.where(positive, s, 1.0) ** (1.0 / p), 0.0)
    return root * root if squared else root


def _hinge_or_soft(x: jax.Array, margin) -> jax.Array:
    """``max(x + margin, 0)``, or the soft margin ``softplus(x)`` when ``margin`` is None."""
    return jax.nn.softplus(x) if margin is None else jax.nn.relu(x + margin)


def pairwise_distances(embeddings: jax.Array, *, p: float = 2.0, squared: bool = False) -> jax.Array:
    """All distances within a batch, ``D[i, j] = ||e_i - e_j||_p`` (squared if asked).

    Computed from the differences themselves (not ``|a|^2 - 2 a.b + |b|^2``, which
    cancels), so ``D`` is symmetric with an exactly zero diagonal, and the gradient at
    zero distance is 0.

    Args:
      embeddings: ``(B, D)`` floating.
      p: the norm degree, ``p >= 1``.
      squared: return ``||e_i - e_j||_p^2``.

    Returns:
      ``(B, B)`` distances.
    """
    name = "pairwise_distances"
    _check_floating(name, "embeddings", embeddings)
    if jnp.ndim(embeddings) != 2:
        raise ValueError(f"{name}: expected embeddings of shape (B, D), got {jnp.shape(embeddings)}")
    p = _check_norm_degree(name, p)
    return _norm(embeddings[:, None, :] - embeddings[None, :, :], p, squared)


def triplet_loss(anchors: jax.Array, positives: jax.Array, negatives: jax.Array, *,
                 margin: float | None = 0.2, squared: bool = True, p: float = 2.0) -> jax.Array:
    """Triplet loss (Schroff, Kalenichenko & Philbin 2015, FaceNet), averaged over triplets.

    ``L = mean_i max(d(a_i, p_i) - d(a_i, n_i) + margin, 0)``: the anchor must be
    closer to the positive (same identity) than to the negative by ``margin``. The
    notes' (and FaceNet's) form uses ``d = ||a - b||_2^2`` (``squared=True``); with
    ``squared=False`` it is ``d = ||a - b||_p``, whose gradient at zero distance is 0
    (as PyTorch's ``TripletMarginLoss`` up to its ``eps`` added to the difference).
    ``margin=None`` is the soft margin ``log(1 + exp(d_ap - d_an))`` (Hermans, Beyer &
    Leibe 2017).

    Args:
      anchors, positives, negatives: ``(..., D)`` embeddings, the same shape.
      margin: ``alpha >= 0``, or None for the soft margin.
      squared: square the distance (the notes' form).
      p: the norm degree, ``p >= 1`` (for ``p = 1``, ``d = sum_k |a_k - b_k|``).

    Returns:
      The mean loss, a scalar.

    >>> import jax.numpy as jnp
    >>> a, pos, neg = jnp.array([[0.0, 0.0]]), jnp.array([[1.0, -1.0]]), jnp.array([[2.0, 2.0]])
    >>> float(triplet_loss(a, pos, neg, margin=0.0, squared=False, p=1))  # max(2 - 4, 0)
    0.0
    """
    name = "triplet_loss"
    for what, x in (("anchors", anchors), ("positives", positives), ("negatives", negatives)):
        _check_floating(name, what, x)
    if jnp.ndim(anchors) < 1:
        raise ValueError(f"{name}: expected embeddings of shape (..., D), got a scalar")
    _check_same_shape(name, "anchors", anchors, "positives", positives)
    _check_same_shape(name, "anchors", anchors, "negatives", negatives)
    _check_margin(name, margin, allow_none=True)
    p = _check_norm_degree(name, p)
    d_ap = _norm(anchors - positives, p, squared)
    d_an = _norm(anchors - negatives, p, squared)
    return jnp.mean(_hinge_or_soft(d_ap - d_an, margin))


def contrastive_loss(embeddings1: jax.Array, embeddings2: jax.Array, same: jax.Array, *,
                     margin: float = 1.0, p: float = 2.0) -> jax.Array:
    """Contrastive loss of pairs (Hadsell, Chopra & LeCun 2006), averaged over pairs.

    With ``d = ||e1 - e2||_p`` and ``y = 1`` for a pair of the same identity::

        L = mean(y d^2 / 2 + (1 - y) max(margin - d, 0)^2 / 2)

    Same pairs are pulled together; different pairs are pushed apart until they are
    ``margin`` away. The gradient at ``d = 0`` is 0 (NaN in a naive ``sqrt``).

    Args:
      embeddings1, embeddings2: ``(..., D)`` embeddings, the same shape.
      same: ``(...)`` 1 (or True) for a pair of the same identity, 0 for different
        ones (checked when concrete).
      margin: ``m > 0``.
      p: the norm degree, ``p >= 1``.

    Returns:
      The mean loss, a scalar.
    """
    name = "contrastive_loss"
    _check_floating(name, "embeddings1", embeddings1)
    _check_floating(name, "embeddings2", embeddings2)
    if jnp.ndim(embeddings1) < 1:
        raise ValueError(f"{name}: expected embeddings of shape (..., D), got a scalar")
    _check_same_shape(name, "embeddings1", embeddings1, "embeddings2", embeddings2)
    if jnp.shape(same) != jnp.shape(embeddings1)[:-1]:
        raise ValueError(f"{name}: expected same of shape embeddings1.shape[:-1] = "
                         f"{jnp.shape(embeddings1)[:-1]}, got {jnp.shape(same)}")
    if _is_concrete(same) and np.size(same):
        bad = ~np.isin(np.asarray(same), (0, 1))
        if bad.any():
            raise ValueError(f"{name}: same must be 0/1 or bool, got "
                             f"{np.unique(np.asarray(same)[bad])[:5].tolist()}")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin > 0:
        raise ValueError(f"{name}: expected a margin > 0, got {margin!r}")
    p = _check_norm_degree(name, p)
    d = _norm(embeddings1 - embeddings2, p, squared=False)
    y = jnp.asarray(same, jnp.result_type(embeddings1))
    gap = jax.nn.relu(margin - d)
    return jnp.mean(0.5 * (y * d * d + (1 - y) * gap * gap))


def _mining_inputs(name: str, embeddings, labels, margin, p):
    """Check a mining call; return the norm degree and the masks ``(B, B)`` of
    positives (same label, not the anchor itself) and negatives (another label)."""
    _check_floating(name, "embeddings", embeddings)
    if jnp.ndim(embeddings) != 2:
        raise ValueError(f"{name}: expected embeddings of shape (B, D), got {jnp.shape(embeddings)}")
    if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise TypeError(f"{name}: expected integer identity labels, got dtype {jnp.result_type(labels)}")
    if jnp.shape(labels) != jnp.shape(embeddings)[:1]:
        raise ValueError(f"{name}: expected labels of shape ({jnp.shape(embeddings)[0]},), one per "
                         f"embedding, got {jnp.shape(labels)}")
    _check_margin(name, margin, allow_none=True)
    p = _check_norm_degree(name, p)
    if _is_concrete(labels):
        lab = np.asarray(labels)
        ids, counts = np.unique(lab, return_counts=True)
        if len(ids) < 2:
            got = f"one identity (label {int(ids[0])})" if len(ids) else "no examples"
            raise ValueError(f"{name}: expected a batch of at least two identities (every anchor "
                             f"needs a negative), got {got} for all {lab.size} examples")
        if counts.max() < 2:
            raise ValueError(f"{name}: expected an identity with at least two examples in the batch "
                             f"(an anchor needs a positive), got {len(ids)} distinct labels for "
                             f"{lab.size} examples")
    labels = jnp.asarray(labels)
    same = labels[:, None] == labels[None, :]
    eye = jnp.eye(labels.shape[0], dtype=bool)
    return p, same & ~eye, ~same


def batch_all_triplet_loss(embeddings: jax.Array, labels: jax.Array, *, margin: float | None = 0.2,
                           squared: bool = False, p: float = 2.0,
                           average: str = "positive") -> jax.Array:
    """Triplet loss over every valid triplet of a batch ("batch all", Hermans et al. 2017).

    A triplet ``(a, p, n)`` of batch indices is valid when ``y_a = y_p``, ``a != p``
    and ``y_n != y_a``; its loss is ``l_apn = max(D_ap - D_an + margin, 0)`` with
    ``D`` the :func:`pairwise_distances`. ``average="positive"`` divides the sum by
    the number of triplets with ``l_apn > 0`` (Hermans et al.'s "BA != 0", which keeps
    the gradient from fading as easy triplets pile up); ``average="all"`` by the
    number of valid triplets. 0 when there is none.

    Args:
      embeddings: ``(B, D)`` floating.
      labels: ``(B,)`` integer identities; a concrete batch must hold two identities
        and a positive pair (a ``ValueError`` says which is missing). Under ``jit``
        it cannot be checked, and such a batch gives 0.
      margin: ``alpha >= 0``, or None for the soft margin ``softplus(D_ap - D_an)``.
      squared: use squared distances (the notes' form); Hermans et al. use plain ones.
      p: the norm degree, ``p >= 1``.
      average: ``"positive"`` or ``"all"``.

    Returns:
      The mean loss, a scalar. Memory is ``B^3``: fine for batches of a few hundred.
    """
    name = "batch_all_triplet_loss"
    if average not in ("positive", "all"):
        raise ValueError(f"{name}: expected average 'positive' or 'all', got {average!r}")
    p, positive, negative = _mining_inputs(name, embeddings, labels, margin, p)
    d = _norm(embeddings[:, None, :] - embeddings[None, :, :], p, squared)
    valid = positive[:, :, None] & negative[:, None, :]
    losses = jnp.where(valid, _hinge_or_soft(d[:, :, None] - d[:, None, :], margin), 0.0)
    count = jnp.sum(valid & (losses > 0)) if average == "positive" else jnp.sum(valid)
    return jnp.sum(losses) / jnp.maximum(count, 1).astype(losses.dtype)


def batch_hard_triplet_loss(embeddings: jax.Array, labels: jax.Array, *, margin: float | None = 0.2,
                            squared: bool = False, p: float = 2.0) -> jax.Array:
    """Triplet loss of each anchor's hardest positive and hardest negative in the batch
    ("batch hard", Hermans, Beyer & Leibe 2017, "In defense of the triplet loss").

    ``L = mean_a max(max_{p: y_p = y_a, p != a} D_ap - min_{n: y_n != y_a} D_an + margin, 0)``
    over the anchors that have a positive in the batch, ``D`` the
    :func:`pairwise_distances` (plain Euclidean by default, as in the paper). Batches of
    ``P`` identities with ``K`` images each give every anchor ``K - 1`` positives.

    Args:
      embeddings: ``(B, D)`` floating.
      labels: ``(B,)`` integer identities; a concrete batch must hold two identities
        and a positive pair (a ``ValueError`` says which is missing). Under ``jit``
        it cannot be checked, and such a batch gives 0.
      margin: ``alpha >= 0``, or None for the soft margin ``softplus(.)`` of the paper.
      squared: use squared distances (the notes' form).
      p: the norm degree, ``p >= 1``.

    Returns:
      The mean loss over anchors with a positive, a scalar.
    """
    name = "batch_hard_triplet_loss"
    p, positive, negative = _mining_inputs(name, embeddings, labels, margin, p)
    d = _norm(embeddings[:, None, :] - embeddings[None, :, :], p, squared)
    hardest_positive = jnp.max(jnp.where(positive, d, 0.0), axis=1)
    has_negative = jnp.any(negative, axis=1)
    hardest_negative = jnp.min(jnp.where(negative, d, jnp.inf), axis=1)
    hardest_negative = jnp.where(has_negative, hardest_negative, 0.0)
    anchors = jnp.any(positive, axis=1) & has_negative
    losses = jnp.where(anchors, _hinge_or_soft(hardest_positive - hardest_negative, margin), 0.0)
    return jnp.sum(losses) / jnp.maximum(jnp.sum(anchors), 1).astype(losses.dtype)


def margin_softmax_cross_entropy(cosines: jax.Array, labels: jax.Array, *, scale=16.0,
                                 cosine_margin: float = 0.0, angular_margin: float = 0.0) -> jax.Array:
    """Softmax cross-entropy over scaled cosines with a margin on the true class
    (NormFace, CosFace / AM-softmax, ArcFace).

    The classifier compares an L2-normalised embedding with L2-normalised class
    weights, ``cos theta_nj = <e_n, w_j> / (|e_n| |w_j|)``; the true class's logit is
    pushed down by a margin before the softmax, so the loss only falls once the
    embedding sits well inside its class's cone:

        L = mean_n -log( exp(s psi_n) / (exp(s psi_n) + sum_{j != y_n} exp(s cos theta_nj)) )
        psi_n = cos(theta_{n,y_n} + m_a) - m_c

    ``m_c = cosine_margin`` alone is CosFace (Wang et al. 2018) / AM-softmax, ``m_a =
    angular_margin`` alone is ArcFace (Deng et al. 2019), both zero is NormFace (Wang
    et al. 2017). As in the ArcFace reference code, where ``theta + m_a > pi`` (the
    angle would wrap round) ``cos(theta + m_a)`` is replaced by
    ``cos theta - m_a sin(m_a)``. ``cos(theta + m_a)`` is computed as
    ``c cos m_a - sqrt(1 - c^2) sin m_a`` with ``c`` clipped to ``[-1, 1]``; the square
    root's derivative is taken as 0 where ``c = +-1`` (there it is infinite).

    Args:
      cosines: ``(N, C)`` cosine similarities in ``[-1, 1]``, floating.
      labels: ``(N,)`` integer classes in ``[0, C)``.
      scale: ``s > 0``, the logits' scale (a float, or a scalar array such as a
        learned parameter).
      cosine_margin: ``m_c >= 0``, subtracted from the true class's cosine.
      angular_margin: ``m_a`` in ``[0, pi/2]``, added to the true class's angle.

    Returns:
      The mean loss over the batch, a scalar.
    """
    name = "margin_softmax_cross_entropy"
    _check_floating(name, "cosines", cosines)
    if jnp.ndim(cosines) != 2:
        raise ValueError(f"{name}: expected cosines of shape (N, num_classes), got {jnp.shape(cosines)}")
    _check_integer_labels(name, "cosines", cosines, labels)
    if _is_concrete(scale) and not (np.ndim(scale) == 0 and float(scale) > 0):
        raise ValueError(f"{name}: expected a scalar scale > 0, got {scale!r}")
    _check_margin(name, cosine_margin, allow_none=False)
    _check_margin(name, angular_margin, allow_none=False)
    if angular_margin > np.pi / 2:
        raise ValueError(f"{name}: expected an angular_margin in [0, pi/2] radians, got {angular_margin!r}")
    c = jnp.clip(cosines, -1.0, 1.0)
    target = _pick(c, jnp.asarray(labels))
    if angular_margin:
        m = float(angular_margin)
        rest = 1.0 - target * target
        inside = rest > 0
        sine = jnp.where(inside, jnp.sqrt(jnp.where(inside, rest, 1.0)), 0.0)
        shifted = target * np.cos(m) - sine * np.sin(m)
        # theta + m > pi  <=>  cos theta < cos(pi - m)
        shifted = jnp.where(target > np.cos(np.pi - m), shifted, target - m * np.sin(m))
    else:
        shifted = target
    shifted = shifted - cosine_margin
    one_hot = jax.nn.one_hot(labels, c.shape[1], dtype=c.dtype)
    logits = scale * (c + one_hot * (shifted - target)[:, None])
    return softmax_cross_entropy_with_integer_labels(logits, labels)


# ------------------------------------------------------------------------- penalties

_NOT_PENALISED = frozenset({"bias", "scale", "b_ih", "b_hh"})


def _leaf_name(path) -> str | None:
    if not path:
        return None
    k = path[-1]
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def default_penalty_mask(params: Any) -> Any:
    """A tree of bools like ``params``: False for leaves named ``bias``, ``scale``,
    ``b_ih`` or ``b_hh`` (biases and normalisation scales), True for the rest."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: _leaf_name(path) not in _NOT_PENALISED, params)


def _masked_leaves(name: str, params, mask):
    if mask is None:
        mask = default_penalty_mask(params)
    elif callable(mask):
        mask = mask(params)
    p_leaves, p_def = jax.tree.flatten(params)
    m_leaves, m_def = jax.tree.flatten(mask)
    if p_def != m_def:
        raise ValueError(f"{name}: mask must have the structure of params, got {m_def} "
                         f"for params {p_def}")
    return [p for p, m in zip(p_leaves, m_leaves) if m]


def l1_penalty(params: Any, mask: Any = None, *, coefficient: float = 1.0) -> jax.Array:
    """L1 penalty ``coefficient * sum_i |w_i|`` over the masked leaves of ``params``.

    Args:
      params: a pytree of arrays.
      mask: ``None`` (default: :func:`default_penalty_mask`, which leaves out biases
        and normalisation scales), a tree of bools like ``params``, or a function
        ``params -> tree of bools``.
      coefficient: the multiplier lambda.

    Returns:
      A scalar (0.0 when no leaf is selected).

    The derivative at ``w_i = 0`` is 0, as ``torch.abs``'s (``|w|`` is computed as
    ``sign(w) w``: ``jnp.abs``'s derivative at 0 is 1).
    """
    leaves = _masked_leaves("l1_penalty", params, mask)
    return coefficient * sum((jnp.sum(jnp.sign(w) * w) for w in leaves), jnp.asarray(0.0))


def l2_penalty(params: Any, mask: Any = None, *, coefficient: float = 1.0) -> jax.Array:
    """L2 penalty ``(coefficient / 2) * sum_i w_i^2`` over the masked leaves of ``params``.

    Its gradient is ``coefficient * w``. For plain SGD with learning rate ``lr``,
    adding it to the loss is exactly weight decay:
    ``w <- w - lr (g + lambda w) = (1 - lr lambda) w - lr g``, i.e. the weights shrink by
    the factor ``lr * lambda`` each step. For adaptive methods (Adam, RMSprop) it is
    not: the penalty's gradient ``lambda w`` is divided by the running RMS of the
    gradient like everything else, so weights with large gradients are barely
    regularised. Decoupled weight decay (AdamW, Loshchilov & Hutter 2019) applies
    ``lr * lambda * w`` outside the adaptive scaling; use the optimizer's
    ``weight_decay`` for that, not this penalty.

    Args:
      params: a pytree of arrays.
      mask: ``None`` (default: :func:`default_penalty_mask`, which leaves out biases
        and normalisation scales), a tree of bools like ``params``, or a function
        ``params -> tree of bools``.
      coefficient: lambda.

    Returns:
      A scalar (0.0 when no leaf is selected).

    >>> import jax.numpy as jnp
    >>> params = {"dense": {"kernel": jnp.array([[3.0, 4.0]]), "bias": jnp.array([10.0])}}
    >>> float(l2_penalty(params, coefficient=0.1))  # 0.1 / 2 * (9 + 16); the bias is left out
    1.25
    """
    leaves = _masked_leaves("l2_penalty", params, mask)
    return 0.5 * coefficient * sum((jnp.sum(w * w) for w in leaves), jnp.asarray(0.0))

