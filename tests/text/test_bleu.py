"""BLEU and chrF against sacreBLEU and nltk on random corpora, and Papineni et al. (2002)'s
worked examples by hand."""
import math
import warnings

import numpy as np
import pytest

from fnnet.text.bleu import chrf, corpus_bleu, sentence_bleu, tokenize_13a

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "it"]


def random_corpus(rng, segments=30, refs=2, min_len=0, max_len=14, noise=0.4):
    """Hypotheses as noisy copies of a first reference (so every order has matches),
    other references drawn freely; tokens from a small vocabulary."""
    hyps, references = [], []
    for _ in range(segments):
        base = list(rng.choice(WORDS, rng.integers(max(min_len, 1), max_len + 1)))
        hyp = [w if rng.random() > noise else str(rng.choice(WORDS)) for w in base]
        if rng.random() < 0.3:
            hyp = hyp[: max(min_len, len(hyp) - int(rng.integers(0, 4)))]
        rs = [base] + [list(rng.choice(WORDS, rng.integers(max(min_len, 1), max_len + 1)))
                       for _ in range(refs - 1)]
        hyps.append(hyp)
        references.append(rs)
    return hyps, references


def streams(references):
    """nltk's per-segment reference lists to sacreBLEU's reference streams."""
    return [[" ".join(rs[j]) for rs in references] for j in range(len(references[0]))]


# -------------------------------------------------------------- Papineni et al. 2002

REF1 = "it is a guide to action that ensures that the military will forever heed party commands".split()
REF2 = ("it is the guiding principle which guarantees the military forces always being under the "
        "command of the party").split()
REF3 = "it is the practical guide for the army always to heed the directions of the party".split()
CAND1 = "it is a guide to action which ensures that the military always obeys the commands of the party".split()
CAND2 = "it is to insure the troops forever hearing the activity guidebook that party direct".split()


def test_papineni_worked_examples():
    refs = [REF1, REF2, REF3]
    # "the the the the the the the": "the" clipped to its count 2 in reference 1 -> 2/7
    the7 = ["the"] * 7
    assert corpus_bleu([the7], [[("the cat is on the mat").split(), ("there is a cat on the mat").split()]],
                       max_order=1) == pytest.approx(2 / 7, abs=1e-12)
    # candidate 1: 17 of 18 unigrams ("obeys" is in no reference), 10 of 17 bigrams; c = 18 = r
    assert corpus_bleu([CAND1], [refs], max_order=1) == pytest.approx(17 / 18, abs=1e-12)
    assert corpus_bleu([CAND1], [refs], weights=(0.0, 1.0)) == pytest.approx(10 / 17, abs=1e-12)
    # candidate 2: 8 of 14 unigrams, 1 of 13 bigrams; c = 14 is shorter than the closest r = 16
    bp = math.exp(1 - 16 / 14)
    assert corpus_bleu([CAND2], [refs], max_order=1) == pytest.approx(bp * 8 / 14, abs=1e-12)
    assert corpus_bleu([CAND2], [refs], weights=(0.0, 1.0)) == pytest.approx(bp / 13, abs=1e-12)
    # BLEU-2 of candidate 1: the geometric mean of 17/18 and 10/17
    assert corpus_bleu([CAND1], [refs], max_order=2) == pytest.approx(math.sqrt(17 / 18 * 10 / 17), abs=1e-12)
    # corpus level: counts are summed before dividing (not the mean of sentence precisions)
    want = (17 + 8) / (18 + 14) * math.exp(1 - (18 + 16) / (18 + 14))
    assert corpus_bleu([CAND1, CAND2], [refs, refs], max_order=1) == pytest.approx(want, abs=1e-12)


def test_closest_reference_length_breaks_ties_toward_the_shorter():
    # hypothesis of 4 tokens, references of 2 and 6 tokens: both 2 away, r = 2 -> BP = 1
    hyp = ["a", "b", "c", "d"]
    got = corpus_bleu([hyp], [[["a", "b", "c", "d", "e", "f"], ["a", "b"]]], max_order=1)
    # unigram matches a, b, c, d -> p1 = 1; r = 2 (not 6) -> BP = 1
    assert got == pytest.approx(1.0, abs=1e-12)
    # a reference of 5 tokens only: r = 5 > c = 4 -> BP = exp(1 - 5/4)
    assert corpus_bleu([hyp], [[["a", "b", "c", "d", "e"]]], max_order=1) == pytest.approx(
        math.exp(1 - 5 / 4), abs=1e-12)


# ------------------------------------------------------------------------ sacreBLEU

@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("smoothing,sacre", [("method0", "none"), ("method1", "floor"),
                                             ("method2", "add-k"), ("method3", "exp")])
def test_corpus_bleu_equals_sacrebleu_tokenize_none(seed, smoothing, sacre):
    sacrebleu = pytest.importorskip("sacrebleu")
    rng = np.random.default_rng(seed)
    hyps, refs = random_corpus(rng, segments=25, refs=3, noise=0.6)
    ref = sacrebleu.corpus_bleu([" ".join(h) for h in hyps], streams(refs), tokenize="none",
                                smooth_method=sacre).score
    got = corpus_bleu(hyps, refs, smoothing=smoothing)
    assert 100 * got == pytest.approx(ref, abs=1e-9, rel=0)
    assert got > 0 or ref == 0


def test_corpus_bleu_zero_order_matches_sacrebleu():
    """No 4-gram matches: unsmoothed BLEU is 0, NIST smoothing gives p_4 = 1 / (2 l_4)."""
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps = [["a", "b", "c", "x", "d", "e"]]
    refs = [[["a", "b", "c", "y", "d", "e"]]]
    for smoothing, sacre in (("method0", "none"), ("method3", "exp")):
        ref = sacrebleu.corpus_bleu(["a b c x d e"], [["a b c y d e"]], tokenize="none",
                                    smooth_method=sacre).score
        assert 100 * corpus_bleu(hyps, refs, smoothing=smoothing) == pytest.approx(ref, abs=1e-9)
    # p_1 = 5/6 (x), p_2 = 3/5 (ab bc de), p_3 = 1/4 (abc), p_4 = 0/3 -> 1/(2 * 3)
    by_hand = (5 / 6 * 3 / 5 * 1 / 4 * 1 / (2 * 3)) ** 0.25
    assert corpus_bleu(hyps, refs, smoothing="method3") == pytest.approx(by_hand, abs=1e-12)


def random_sentence(rng):
    pieces = ["Hello", "world", "it's", "3.50", "$", "1,000", "U.S.", "e-mail", "(yes)", "no!",
              "&amp;", "&quot;x&quot;", "10-20", "end.", "a,b", "x/y", "{z}", "tab\there", "-", "?"]
    return " ".join(rng.choice(pieces, rng.integers(1, 12)))


def test_tokenize_13a_equals_sacrebleu():
    pytest.importorskip("sacrebleu")
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    rng = np.random.default_rng(5)
    tok = Tokenizer13a()
    for _ in range(200):
        s = random_sentence(rng)
        assert tokenize_13a(s) == tok(s).split(), s
    assert tokenize_13a("a <skipped> line-\nbreak\nnext") == tok("a <skipped> line-\nbreak\nnext").split()


@pytest.mark.parametrize("seed", [0, 1])
def test_corpus_bleu_on_strings_equals_sacrebleu_default(seed):
    sacrebleu = pytest.importorskip("sacrebleu")
    rng = np.random.default_rng(seed)
    hyps = [random_sentence(rng) for _ in range(40)]
    refs = [[h if rng.random() < 0.3 else random_sentence(rng), random_sentence(rng)] for h in hyps]
    ref = sacrebleu.corpus_bleu(hyps, [[r[0] for r in refs], [r[1] for r in refs]]).score
    assert 100 * corpus_bleu(hyps, refs, smoothing="method3") == pytest.approx(ref, abs=1e-9, rel=0)


def test_sentence_bleu_equals_sacrebleu_sentence_bleu():
    """sacreBLEU's sentence BLEU: NIST smoothing and the effective order (short hypotheses)."""
    sacrebleu = pytest.importorskip("sacrebleu")
    rng = np.random.default_rng(3)
    hyps, refs = random_corpus(rng, segments=60, refs=2, max_len=6)
    for h, rs in zip(hyps, refs):
        ref = sacrebleu.sentence_bleu(" ".join(h), [" ".join(r) for r in rs], tokenize="none").score
        got = sentence_bleu(h, rs, smoothing="method3", effective_order=True)
        assert 100 * got == pytest.approx(ref, abs=1e-9, rel=0), (h, rs)


# ----------------------------------------------------------------------------- nltk

def nltk_smoothing(method):
    from nltk.translate.bleu_score import SmoothingFunction
    return getattr(SmoothingFunction(), method)


@pytest.mark.parametrize("method", [f"method{i}" for i in range(5)])
@pytest.mark.parametrize("weights", [None, (0.5, 0.3, 0.2)])
def test_corpus_bleu_equals_nltk(method, weights):
    """Hypotheses of at least 5 tokens: nltk's per-segment denominator max(1, l) is then l."""
    pytest.importorskip("nltk")
    from nltk.translate import bleu_score
    rng = np.random.default_rng(11)
    hyps, refs = random_corpus(rng, segments=20, refs=2, min_len=5, noise=0.7)
    kwargs = {} if weights is None else {"weights": weights}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = bleu_score.corpus_bleu(refs, hyps, smoothing_function=nltk_smoothing(method),
                                     weights=weights or (0.25,) * 4)
    got = corpus_bleu(hyps, refs, smoothing=method, **kwargs)
    assert got == pytest.approx(ref, abs=1e-9, rel=0)


@pytest.mark.parametrize("method", [f"method{i}" for i in range(8)])
def test_sentence_bleu_equals_nltk_for_each_smoothing(method):
    pytest.importorskip("nltk")
    from nltk.translate import bleu_score
    rng = np.random.default_rng(7)
    hyps, refs = random_corpus(rng, segments=40, refs=2, min_len=6, max_len=12, noise=0.35)
    compared = 0
    for h, rs in zip(hyps, refs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ref = bleu_score.sentence_bleu(rs, h, smoothing_function=nltk_smoothing(method))
            except AssertionError:                 # method6 without a trigram match
                with pytest.raises(ValueError, match="trigram"):
                    sentence_bleu(h, rs, smoothing=method)
                continue
        assert sentence_bleu(h, rs, smoothing=method) == pytest.approx(ref, abs=1e-9, rel=0), (h, rs)
        compared += 1
    assert compared >= 20


# ----------------------------------------------------------------------------- chrF

@pytest.mark.parametrize("word_order", [0, 2])
def test_chrf_equals_sacrebleu(word_order):
    sacrebleu = pytest.importorskip("sacrebleu")
    from sacrebleu.metrics import CHRF
    rng = np.random.default_rng(4)
    hyps = [random_sentence(rng) for _ in range(30)]
    refs = [[h[::-1] if rng.random() < 0.2 else (h[:-3] + "xy" if rng.random() < 0.5 else random_sentence(rng)),
             random_sentence(rng)] for h in hyps]
    metric = CHRF(word_order=word_order)
    ref = metric.corpus_score(hyps, [[r[0] for r in refs], [r[1] for r in refs]]).score
    assert 100 * chrf(hyps, refs, word_order=word_order) == pytest.approx(ref, abs=1e-9, rel=0)
    for h, rs in list(zip(hyps, refs))[:10]:
        ref = metric.sentence_score(h, rs).score
        assert 100 * chrf([h], [rs], word_order=word_order) == pytest.approx(ref, abs=1e-9, rel=0)
    del sacrebleu


def test_chrf_by_hand():
    # "ab" against "abc": unigrams P = 2/2, R = 2/3; bigrams P = 1/1, R = 1/2; order 3 has no
    # hypothesis n-gram and is left out. P = 1, R = 7/12, chrF_2 = 5 P R / (4 P + R).
    p, r = 1.0, (2 / 3 + 1 / 2) / 2
    assert chrf(["ab"], [["abc"]], char_order=3) == pytest.approx(5 * p * r / (4 * p + r), abs=1e-12)
    assert chrf(["a b"], [["ab"]]) == pytest.approx(1.0)     # whitespace is removed


# --------------------------------------------------------------------------- errors

def test_bad_input_raises():
    with pytest.raises(ValueError, match="corpus_bleu: expected at least one hypothesis"):
        corpus_bleu([], [])
    with pytest.raises(ValueError, match="2 hypotheses and 1 reference lists"):
        corpus_bleu(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="non-empty list of references for hypothesis 0"):
        corpus_bleu(["a"], [[]])
    with pytest.raises(TypeError, match="wrap it in a list"):
        sentence_bleu("a b", "a b")
    with pytest.raises(ValueError, match="smoothing must be one of"):
        corpus_bleu(["a"], [["a"]], smoothing="exp")
    with pytest.raises(ValueError, match="max_order=3 but 2 weights"):
        corpus_bleu(["a"], [["a"]], max_order=3, weights=(0.5, 0.5))
    with pytest.raises(ValueError, match="tokenize must be"):
        corpus_bleu(["a"], [["a"]], tokenize="intl")
    with pytest.raises(ValueError, match="chrf: expected at least one hypothesis"):
        chrf([], [])
    with pytest.raises(ValueError, match="chrf: char_order must be"):
        chrf(["a"], [["a"]], char_order=0)
    # an empty hypothesis segment is legal (as in sacreBLEU): its brevity penalty is 0
    assert corpus_bleu([""], [["a b"]]) == 0.0
