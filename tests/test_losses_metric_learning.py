"""Metric-learning losses: triplet (squared, plain, p-norms, soft margin), contrastive,
and batch-all / batch-hard mining, each against a NumPy loop over the pairs or over
all triplets of the batch, PyTorch's TripletMarginLoss, and float64 gradient checks
(also at zero distance)."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck, losses


def np_dist(a, b, p, squared):
    d = float(np.sum(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** p) ** (1.0 / p))
    return d * d if squared else d


def np_hinge(x, margin):
    return np.log1p(np.exp(x)) if margin is None else max(x + margin, 0.0)


def np_triplet(a, pos, neg, margin, squared, p):
    return np.mean([np_hinge(np_dist(a[i], pos[i], p, squared) - np_dist(a[i], neg[i], p, squared), margin)
                    for i in range(len(a))])


def np_contrastive(e1, e2, same, margin, p):
    out = []
    for i in range(len(e1)):
        d = np_dist(e1[i], e2[i], p, False)
        out.append(0.5 * d * d if same[i] else 0.5 * max(margin - d, 0.0) ** 2)
    return np.mean(out)


def np_triplets(labels):
    """Every valid (anchor, positive, negative) of the batch, by brute force."""
    n = len(labels)
    return [(a, p, q) for a, p, q in itertools.product(range(n), repeat=3)
            if a != p and labels[a] == labels[p] and labels[q] != labels[a]]


def np_batch_all(e, labels, margin, squared, p, average):
    ls = [np_hinge(np_dist(e[a], e[q1], p, squared) - np_dist(e[a], e[q2], p, squared), margin)
          for a, q1, q2 in np_triplets(labels)]
    count = len(ls) if average == "all" else sum(v > 0 for v in ls)
    return sum(ls) / max(count, 1)


def np_batch_hard(e, labels, margin, squared, p):
    out = []
    for a in range(len(labels)):
        pos = [np_dist(e[a], e[j], p, squared) for j in range(len(labels)) if j != a and labels[j] == labels[a]]
        neg = [np_dist(e[a], e[j], p, squared) for j in range(len(labels)) if labels[j] != labels[a]]
        if pos and neg:
            out.append(np_hinge(max(pos) - min(neg), margin))
    return np.mean(out)


LABELS = np.array([0, 0, 1, 1, 1, 2, 3, 3, 0, 4], np.int32)   # identity 2 and 4: anchors without positives


@pytest.mark.parametrize("p, squared, margin", [(2, True, 0.2), (2, False, 0.5), (1, False, 0.3),
                                                (1, True, 0.0), (3, False, 0.1), (1.5, False, None),
                                                (2, True, None)])
def test_triplet_loss_matches_numpy_loop(rng, p, squared, margin):
    a, pos, neg = (rng.normal(size=(12, 5)).astype(np.float32) for _ in range(3))
    got = losses.triplet_loss(jnp.asarray(a), jnp.asarray(pos), jnp.asarray(neg), margin=margin,
                              squared=squared, p=p)
    np.testing.assert_allclose(got, np_triplet(a, pos, neg, margin, squared, p), rtol=2e-5, atol=1e-6)


def test_triplet_loss_l1_keeps_the_absolute_value():
    # |0-1| + |0+1| = 2 to the positive, 4 to the negative: the margin-0 loss is 0. Without
    # the absolute value the differences cancel (0 and -4) and the loss comes out as 4.0.
    a, pos, neg = jnp.array([[0.0, 0.0]]), jnp.array([[1.0, -1.0]]), jnp.array([[2.0, 2.0]])
    assert float(losses.triplet_loss(a, pos, neg, margin=0.0, squared=False, p=1)) == 0.0
    assert float(losses.triplet_loss(a, neg, pos, margin=0.0, squared=False, p=1)) == 2.0
    # odd degree 3: (|1|^3 + |-1|^3)^(1/3) = 2^(1/3) against (2 * 8)^(1/3)
    got = losses.triplet_loss(a, pos, neg, margin=2.0, squared=False, p=3)
    np.testing.assert_allclose(got, 2.0 + 2 ** (1 / 3) - 16 ** (1 / 3), rtol=1e-6)


@pytest.mark.parametrize("p", [1, 2])
def test_triplet_loss_matches_torch_triplet_margin_loss(rng, p):
    torch = pytest.importorskip("torch")
    a, pos, neg = (rng.normal(size=(16, 8)) for _ in range(3))
    ref = torch.nn.TripletMarginLoss(margin=0.7, p=p, eps=0.0)(*(torch.tensor(v) for v in (a, pos, neg)))
    got = losses.triplet_loss(*(jnp.asarray(v, jnp.float32) for v in (a, pos, neg)), margin=0.7,
                              squared=False, p=p)
    np.testing.assert_allclose(got, ref.item(), rtol=1e-5)


@pytest.mark.parametrize("p, squared, margin", [(2, True, 0.3), (2, False, None), (1, False, 0.4),
                                                (3, False, 0.2)])
def test_triplet_loss_gradient(x64, rng, p, squared, margin):
    a, pos, neg = (jnp.asarray(rng.normal(size=(4, 3))) for _ in range(3))
    gradcheck.check_gradients(lambda t: losses.triplet_loss(t[0], t[1], t[2], margin=margin, squared=squared,
                                                            p=p), (a, pos, neg))


@pytest.mark.parametrize("p", [1, 1.5, 2, 3])
def test_plain_distance_gradient_at_zero_is_zero_not_nan(x64, p):
    a = jnp.array([[0.5, -1.0, 2.0]])
    neg = jnp.array([[3.0, 0.0, 0.0]])
    g = jax.grad(lambda t: losses.triplet_loss(t[0], t[1], neg, margin=10.0, squared=False, p=p))((a, a))
    # d(a, p) = 0: its gradient is 0; only the negative's distance moves a
    np.testing.assert_array_equal(g[1], 0.0)
    d = np.abs(np.asarray(a - neg))
    expected = d ** (p - 1) * np.sign(np.asarray(a - neg)) / np.sum(d ** p) ** ((p - 1) / p)
    np.testing.assert_allclose(g[0], -expected, rtol=1e-12)
    gc = jax.grad(lambda e: losses.contrastive_loss(e, a, jnp.array([0]), margin=1.0, p=p))(a)
    np.testing.assert_array_equal(gc, 0.0)   # a different pair at distance 0: finite, 0 by convention


@pytest.mark.parametrize("p", [1, 2, 3])
def test_contrastive_loss_matches_numpy_loop(rng, p):
    e1, e2 = rng.normal(size=(2, 20, 4)).astype(np.float32)
    same = rng.integers(0, 2, 20)
    got = losses.contrastive_loss(jnp.asarray(e1), jnp.asarray(e2), jnp.asarray(same), margin=2.5, p=p)
    np.testing.assert_allclose(got, np_contrastive(e1, e2, same, 2.5, p), rtol=2e-5)
    got_bool = losses.contrastive_loss(jnp.asarray(e1), jnp.asarray(e2), jnp.asarray(same == 1), margin=2.5, p=p)
    np.testing.assert_allclose(got_bool, got, rtol=1e-6)


def test_contrastive_loss_gradient(x64, rng):
    e1, e2 = (jnp.asarray(rng.normal(size=(6, 3))) for _ in range(2))
    same = jnp.array([1, 0, 1, 0, 0, 1])
    gradcheck.check_gradients(lambda t: losses.contrastive_loss(t[0], t[1], same, margin=3.0), (e1, e2))


def test_pairwise_distances_match_numpy_loop(rng):
    e = rng.normal(size=(7, 3)).astype(np.float32)
    for p, squared in [(2, False), (2, True), (1, False), (3, True)]:
        ref = np.array([[np_dist(e[i], e[j], p, squared) for j in range(7)] for i in range(7)])
        np.testing.assert_allclose(losses.pairwise_distances(jnp.asarray(e), p=p, squared=squared), ref,
                                   rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("p, squared, margin, average", [(2, False, 0.2, "positive"), (2, True, 0.5, "all"),
                                                         (1, False, 0.3, "positive"), (2, False, None, "all"),
                                                         (3, False, 1.0, "all")])
def test_batch_all_matches_loop_over_all_triplets(rng, p, squared, margin, average):
    e = rng.normal(size=(len(LABELS), 4)).astype(np.float32)
    got = losses.batch_all_triplet_loss(jnp.asarray(e), jnp.asarray(LABELS), margin=margin, squared=squared,
                                        p=p, average=average)
    np.testing.assert_allclose(got, np_batch_all(e, LABELS, margin, squared, p, average), rtol=2e-5)
    jitted = jax.jit(lambda e, y: losses.batch_all_triplet_loss(e, y, margin=margin, squared=squared, p=p,
                                                                average=average))
    np.testing.assert_allclose(jitted(jnp.asarray(e), jnp.asarray(LABELS)), got, rtol=1e-6)


@pytest.mark.parametrize("p, squared, margin", [(2, False, 0.2), (2, True, 0.5), (1, False, 0.3),
                                                (2, False, None), (3, True, 0.1)])
def test_batch_hard_matches_loop_over_all_triplets(rng, p, squared, margin):
    e = rng.normal(size=(len(LABELS), 4)).astype(np.float32)
    got = losses.batch_hard_triplet_loss(jnp.asarray(e), jnp.asarray(LABELS), margin=margin, squared=squared,
                                         p=p)
    np.testing.assert_allclose(got, np_batch_hard(e, LABELS, margin, squared, p), rtol=2e-5)
    # the hardest triplet of each anchor is the largest of its triplets' losses
    ts = np_triplets(LABELS)
    per_anchor = {}
    for a, q1, q2 in ts:
        v = np_hinge(np_dist(e[a], e[q1], p, squared) - np_dist(e[a], e[q2], p, squared), margin)
        per_anchor[a] = max(per_anchor.get(a, -np.inf), v)
    np.testing.assert_allclose(got, np.mean(list(per_anchor.values())), rtol=2e-5)


def test_mining_gradients(x64, rng):
    e = jnp.asarray(rng.normal(size=(6, 2)))
    y = jnp.asarray(LABELS[:6])                  # a pair, a triple and a singleton
    gradcheck.check_gradients(lambda v: losses.batch_hard_triplet_loss(v, y, margin=0.5), e)
    gradcheck.check_gradients(lambda v: losses.batch_all_triplet_loss(v, y, margin=0.5, average="all"), e)
    gradcheck.check_gradients(lambda v: losses.batch_hard_triplet_loss(v, y, margin=None, squared=True), e)
    # all embeddings at one point: every distance is zero and the gradient is finite (0)
    g = jax.grad(lambda v: losses.batch_hard_triplet_loss(v, y, margin=0.5))(jnp.zeros((6, 2)))
    np.testing.assert_array_equal(g, 0.0)


def test_mining_rejects_bad_batches():
    e = jnp.zeros((4, 2))
    for fn in (losses.batch_hard_triplet_loss, losses.batch_all_triplet_loss):
        with pytest.raises(ValueError, match=r"at least two identities.*one identity \(label 3\) for all 4"):
            fn(e, jnp.array([3, 3, 3, 3]))
        with pytest.raises(ValueError, match="at least two examples.*4 distinct labels for 4"):
            fn(e, jnp.array([0, 1, 2, 3]))
        with pytest.raises(TypeError, match="integer identity labels, got dtype float32"):
            fn(e, jnp.array([0.0, 0.0, 1.0, 1.0]))
        with pytest.raises(ValueError, match=r"labels of shape \(4,\).*got \(3,\)"):
            fn(e, jnp.array([0, 0, 1]))
        with pytest.raises(ValueError, match=r"embeddings of shape \(B, D\), got \(4,\)"):
            fn(jnp.zeros(4), jnp.array([0, 0, 1, 1]))
        with pytest.raises(ValueError, match="norm degree p >= 1, got 0.5"):
            fn(e, jnp.array([0, 0, 1, 1]), p=0.5)
        with pytest.raises(ValueError, match="margin >= 0.*got -0.1"):
            fn(e, jnp.array([0, 0, 1, 1]), margin=-0.1)
    # under jit the labels are unknown: a batch of one identity has no triplet and gives 0
    jitted = jax.jit(losses.batch_hard_triplet_loss)
    assert float(jitted(jnp.ones((4, 2)), jnp.array([3, 3, 3, 3]))) == 0.0
    with pytest.raises(ValueError, match="average 'positive' or 'all', got 'sum'"):
        losses.batch_all_triplet_loss(e, jnp.array([0, 0, 1, 1]), average="sum")


def test_triplet_and_contrastive_reject_bad_input():
    a = jnp.zeros((3, 2))
    with pytest.raises(ValueError, match=r"anchors and negatives must have the same shape.*\(3, 2\).*\(3, 3\)"):
        losses.triplet_loss(a, a, jnp.zeros((3, 3)))
    with pytest.raises(TypeError, match="positives of a floating dtype, got int32"):
        losses.triplet_loss(a, jnp.zeros((3, 2), jnp.int32), a)
    with pytest.raises(ValueError, match="finite norm degree p >= 1, got inf"):
        losses.triplet_loss(a, a, a, p=float("inf"))
    with pytest.raises(ValueError, match=r"same of shape embeddings1.shape\[:-1\] = \(3,\), got \(3, 1\)"):
        losses.contrastive_loss(a, a, jnp.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"same must be 0/1 or bool, got \[2\]"):
        losses.contrastive_loss(a, a, jnp.array([0, 1, 2]))
    with pytest.raises(ValueError, match="margin > 0, got 0"):
        losses.contrastive_loss(a, a, jnp.array([0, 1, 1]), margin=0)
