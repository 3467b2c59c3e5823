"""Greedy decoding and beam search against brute-force enumeration of every hypothesis of
a random position-dependent Markov model, and hand-computed length-penalty crossings."""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet.text.beam_search import beam_search, greedy_decode

EOS = 0


def markov_step(table):
    """A one-step model whose logits depend on the step index and the previous token:
    ``logits_t = table[n, t, token]``; the carry is ``(row n, t)``."""
    table = jnp.asarray(table, jnp.float32)

    def step(carry, token):
        row, t = carry
        return (row, t + 1), table[row, t, token]

    return step


def start_carry(n):
    return (jnp.arange(n, dtype=jnp.int32), jnp.zeros((n,), jnp.int32))


def log_softmax_np(z):
    z = np.asarray(z, np.float64)
    return z - z.max(-1, keepdims=True) - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))


def lp(T, penalty, alpha):
    return {"none": 1.0, "average": T ** alpha, "gnmt": ((5 + T) / 6) ** alpha}[penalty]


def brute_force(table, row, start, max_len, penalty="none", alpha=0.0, eos=EOS):
    """Every hypothesis (ends with EOS at any step, or runs to max_len) with its score, best first."""
    table = np.asarray(table, np.float64)
    vocab = table.shape[-1]
    out = []
    for length in range(1, max_len + 1):
        for seq in itertools.product(range(vocab), repeat=length):
            if eos in seq[:-1] or (length < max_len and seq[-1] != eos):
                continue
            prev, logp = start, 0.0
            for t, tok in enumerate(seq):
                logp += log_softmax_np(table[row, t, prev])[tok]
                prev = tok
            out.append((logp / lp(length, penalty, alpha), logp, length, seq))
    out.sort(key=lambda x: -x[0])
    return out


def random_table(seed, n, max_len, vocab, scale=1.5):
    return np.random.default_rng(seed).normal(size=(n, max_len, vocab, vocab)) * scale


def padded(seq, max_len, eos=EOS):
    return list(seq) + [eos] * (max_len - len(seq))


@pytest.mark.parametrize("penalty,alpha", [("none", 0.0), ("average", 1.0), ("average", 0.6), ("gnmt", 0.8)])
def test_full_width_equals_exhaustive_search(penalty, alpha):
    n, max_len, vocab = 3, 3, 3
    table = random_table(0, n, max_len, vocab)
    starts = jnp.array([1, 2, 0], jnp.int32)
    hyps = [brute_force(table, i, int(starts[i]), max_len, penalty, alpha) for i in range(n)]
    width = len(hyps[0])                                  # 1 + 2 + 4 + 8 = 15 hypotheses
    assert width == 15
    res = jax.jit(lambda c, s: beam_search(markov_step(table), c, s, beam_width=width, max_len=max_len,
                                           end_token=EOS, length_penalty=penalty, alpha=alpha))(
        start_carry(n), starts)
    for i in range(n):
        for k, (score, logp, length, seq) in enumerate(hyps[i]):
            assert res.sequences[i, k].tolist() == padded(seq, max_len), (i, k)
            assert int(res.lengths[i, k]) == length
            np.testing.assert_allclose(res.log_probs[i, k], logp, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(res.scores[i, k], score, rtol=1e-5, atol=1e-5)


def test_wider_than_the_hypotheses_pads_with_minus_inf():
    n, max_len, vocab = 1, 2, 3                           # 1 + 2 * 3 = 7 hypotheses, width 9
    table = random_table(1, n, max_len, vocab)
    res = beam_search(markov_step(table), start_carry(n), jnp.array([1]), beam_width=9, max_len=max_len,
                      end_token=EOS)
    hyps = brute_force(table, 0, 1, max_len)
    np.testing.assert_allclose(res.scores[0, :7], [h[0] for h in hyps], rtol=1e-5)
    assert np.all(np.isneginf(np.asarray(res.scores[0, 7:])))


def test_narrow_beam_prunes_as_by_hand():
    """Width 2 on a model where the greedy first token leads to a poor continuation: the
    beam keeps both first tokens and finds the better pair, greedy does not."""
    # V = 3, no end token. Step 0: P(1) = 0.5, P(2) = 0.4. After 1: uniform; after 2: token 1 w.p. 0.9.
    logits0 = np.log([0.1, 0.5, 0.4])
    table = np.zeros((1, 2, 3, 3))
    table[0, 0, :] = logits0
    table[0, 1, 1] = np.log([1 / 3, 1 / 3, 1 / 3])
    table[0, 1, 2] = np.log([0.05, 0.9, 0.05])
    step, carry, start = markov_step(table), start_carry(1), jnp.array([0])
    greedy = greedy_decode(step, carry, start, max_len=2, end_token=None)
    assert greedy.sequences[0].tolist() == [1, 0]                     # argmax ties go to the first
    np.testing.assert_allclose(greedy.log_probs[0], math.log(0.5 / 3), rtol=1e-5)
    beam = beam_search(step, carry, start, beam_width=2, max_len=2, end_token=None)
    assert beam.sequences[0, 0].tolist() == [2, 1]
    np.testing.assert_allclose(beam.log_probs[0, 0], math.log(0.4 * 0.9), rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_width_one_equals_greedy(seed):
    n, max_len, vocab = 4, 6, 5
    table = random_table(seed, n, max_len, vocab, scale=2.0)
    starts = jnp.array([1, 2, 3, 4], jnp.int32)
    step = markov_step(table)
    g = greedy_decode(step, start_carry(n), starts, max_len=max_len, end_token=EOS)
    b = beam_search(step, start_carry(n), starts, beam_width=1, max_len=max_len, end_token=EOS,
                    length_penalty="average", alpha=0.7)
    np.testing.assert_array_equal(b.sequences[:, 0], g.sequences)
    np.testing.assert_array_equal(b.lengths[:, 0], g.lengths)
    np.testing.assert_allclose(b.log_probs[:, 0], g.log_probs, rtol=1e-5)
    # greedy by hand in NumPy: argmax of each step's log-softmax, frozen after EOS
    for i in range(n):
        prev, seq, logp = int(starts[i]), [], 0.0
        for t in range(max_len):
            lsm = log_softmax_np(table[i, t, prev])
            prev = int(np.argmax(lsm))
            seq.append(prev)
            logp += lsm[prev]
            if prev == EOS:
                break
        assert g.sequences[i].tolist() == padded(seq, max_len)
        assert int(g.lengths[i]) == len(seq)
        np.testing.assert_allclose(g.log_probs[i], logp, rtol=1e-5)


def crossing_model(p=0.4, q=0.6):
    """V = {EOS, a}. First step: P(EOS) = p; after "a": P(EOS) = q. Hypotheses of max_len 2:
    [EOS] (log p, T = 1), [a, EOS] (log(1-p) + log q, T = 2), [a, a] (log(1-p) + log(1-q), T = 2)."""
    table = np.zeros((1, 2, 2, 2))
    table[0, 0, 1] = np.log([p, 1 - p])                   # start token is "a" = 1
    table[0, 1, 1] = np.log([q, 1 - q])
    return markov_step(table), math.log(p), math.log(1 - p) + math.log(q)


@pytest.mark.parametrize("penalty", ["average", "gnmt"])
def test_length_penalty_changes_the_winner_where_the_arithmetic_says(penalty):
    step, short, long = crossing_model()
    assert short > long                                   # unnormalised, the short one wins
    # short / lp(1) = long / lp(2)  <=>  lp(2) / lp(1) = long / short
    ratio = {"average": 2.0, "gnmt": (7 / 6) / 1.0}[penalty]
    alpha_star = math.log(long / short) / math.log(ratio)
    assert 0.1 < alpha_star < 1.0
    for alpha, winner in ((alpha_star - 0.02, [EOS, EOS]), (alpha_star + 0.02, [1, EOS])):
        res = beam_search(step, start_carry(1), jnp.array([1]), beam_width=2, max_len=2, end_token=EOS,
                          length_penalty=penalty, alpha=alpha)
        assert res.sequences[0, 0].tolist() == winner, (alpha, alpha_star)
    res = beam_search(step, start_carry(1), jnp.array([1]), beam_width=2, max_len=2, end_token=EOS)
    assert res.sequences[0, 0].tolist() == [EOS, EOS]
    assert int(res.lengths[0, 0]) == 1 and int(res.lengths[0, 1]) == 2


def test_eos_freezes_finished_sequences():
    """A sequence whose first token is almost surely EOS stops there; the others run on."""
    n, max_len, vocab = 2, 5, 4
    table = random_table(3, n, max_len, vocab, scale=0.5)
    table[0, 0, :, EOS] = 50.0                            # row 0 ends at once
    table[1, :, :, EOS] = -50.0                           # row 1 never ends
    step = markov_step(table)
    g = greedy_decode(step, start_carry(n), jnp.array([1, 1]), max_len=max_len, end_token=EOS)
    assert g.sequences[0].tolist() == [EOS] * max_len and int(g.lengths[0]) == 1
    assert EOS not in g.sequences[1].tolist() and int(g.lengths[1]) == max_len
    b = beam_search(step, start_carry(n), jnp.array([1, 1]), beam_width=3, max_len=max_len, end_token=EOS)
    assert b.sequences[0, 0].tolist() == [EOS] * max_len and int(b.lengths[0, 0]) == 1
    np.testing.assert_allclose(b.log_probs[0, 0], log_softmax_np(table[0, 0, 1])[EOS], atol=1e-5)
    for k in range(3):                                    # after EOS: only EOS, length frozen
        seq = b.sequences[0, k].tolist()
        if EOS in seq:
            first = seq.index(EOS)
            assert seq[first:] == [EOS] * (max_len - first) and int(b.lengths[0, k]) == first + 1
    assert np.all(np.asarray(b.lengths[1]) == max_len)


def test_bad_input_raises():
    step, carry, start = markov_step(random_table(0, 1, 2, 3)), start_carry(1), jnp.array([1])
    with pytest.raises(ValueError, match=r"end_token must be an int in \[0, 3\).*got 3"):
        beam_search(step, carry, start, beam_width=2, max_len=2, end_token=3)
    with pytest.raises(ValueError, match=r"greedy_decode: end_token must be an int in \[0, 3\)"):
        greedy_decode(step, carry, start, max_len=2, end_token=-1)
    with pytest.raises(ValueError, match="beam_width must be an int >= 1, got 0"):
        beam_search(step, carry, start, beam_width=0, max_len=2, end_token=0)
    with pytest.raises(ValueError, match=r"beam_width 10 exceeds the 3\^2 = 9 sequences"):
        beam_search(step, carry, start, beam_width=10, max_len=2, end_token=0)
    with pytest.raises(ValueError, match="length_penalty must be one of"):
        beam_search(step, carry, start, beam_width=2, max_len=2, end_token=0, length_penalty="wu")
    with pytest.raises(ValueError, match="batch axis 2 first"):
        beam_search(step, carry, jnp.array([1, 1]), beam_width=2, max_len=2, end_token=0)
    with pytest.raises(ValueError, match=r"start_token as integer ids of shape \(N,\)"):
        greedy_decode(step, carry, jnp.array(1), max_len=2)
