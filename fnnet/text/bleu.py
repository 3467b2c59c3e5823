"""BLEU (Papineni et al. 2002) with the smoothing methods of Chen & Cherry (2014), the
13a tokenizer of mteval / sacreBLEU, and chrF (Popovic 2015).

Corpus BLEU with ``N`` orders and weights ``w_n`` (uniform ``1/N`` by default)::

    p_n  = sum_segments sum_g min(c_hyp(g), max_r c_r(g)) / sum_segments #n-grams(hyp)
    BP   = 1 if c > r else exp(1 - r / c)          (0 if c = 0)
    BLEU = BP * exp(sum_n w_n log p_n)

with ``c`` the total hypothesis length and ``r`` the sum over segments of the
reference length closest to the hypothesis's (the shorter one on a tie). Counts are
clipped against every reference of a segment (the modified precision). Scores are
fractions in [0, 1]: sacreBLEU reports ``100 *`` these.

Smoothing (``smoothing=``, nltk's names for Chen & Cherry's methods; ``p_n = m_n / l_n``):

- ``"method0"``: none; a zero precision makes BLEU 0.
- ``"method1"``: ``p_n = epsilon / l_n`` where ``m_n = 0`` (sacreBLEU's ``floor``).
- ``"method2"``: ``p_n = (m_n + 1) / (l_n + 1)`` for ``n >= 2`` (Lin & Och 2004;
  sacreBLEU's ``add-k`` with ``k = 1``).
- ``"method3"``: ``p_n = 1 / (2^j l_n)`` for the ``j``-th order with ``m_n = 0`` (NIST
  geometric smoothing; sacreBLEU's ``exp``, its default).
- ``"method4"``: ``p_n = ln(c) / (k 2^j l_n)`` for the ``j``-th zero order (``c > 1``).
- ``"method5"``: ``p'_n = (p'_{n-1} + p_n + p_{n+1}) / 3`` with ``p'_0 = p_1 + 1`` (needs
  the ``N + 1``-gram precision).
- ``"method6"``: ``p_n = (m_n + alpha pi_n) / (l_n + alpha)`` for ``n >= 3``, with the
  prior ``pi_n = p_{n-1}^2 / p_{n-2}`` (Gao & He 2013); needs ``p_3 > 0``.
- ``"method7"``: method4, then method5.

As in nltk and sacreBLEU, a corpus with no matching unigram scores 0 whatever the
smoothing. Where nltk and sacreBLEU differ this module follows sacreBLEU: an order's
denominator ``l_n`` is the true number of hypothesis n-grams (nltk counts at least 1
per segment), and an order with no hypothesis n-gram at all has precision 0 (BLEU 0),
or is left out with ``effective_order=True`` (sacreBLEU's sentence BLEU). Methods 5 to 7
use corpus counts (nltk's ``corpus_bleu`` reads them from its last segment).

chrF is the F-beta score of character n-gram precision and recall averaged over the
orders ``1..char_order`` (and word orders ``1..word_order`` for chrF++), summed over
the corpus (the best reference per segment), as sacreBLEU's ``CHRF``.

This is plain Python over token lists, not JAX: counting n-grams in dictionaries has
nothing to compile or differentiate, and exact integer counts keep the scores equal to
the reference implementations to rounding.

Imports: the standard library only.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Callable, Sequence

__all__ = ["corpus_bleu", "sentence_bleu", "tokenize_13a", "chrf", "SMOOTHING_METHODS"]

SMOOTHING_METHODS = tuple(f"method{i}" for i in range(8))

# ------------------------------------------------------------------------- tokenizer

_13A_RULES = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),   # symbols and punctuation
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),                # . and , unless after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),                # . and , unless before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),                     # - after a digit
)


def tokenize_13a(line: str) -> list[str]:
    """Split ``line`` into tokens as mteval-v13a (sacreBLEU's default ``tokenize="13a"``).

    Drops ``<skipped>``, joins ``-\\n`` line breaks, unescapes ``&quot; &amp; &lt; &gt;``,
    then puts spaces around punctuation and symbols, around ``.`` and ``,`` unless
    between digits, and after a ``-`` that follows a digit.

    >>> tokenize_13a("It costs $3.50, isn't it?")
    ['It', 'costs', '$', '3.50', ',', "isn't", 'it', '?']
    """
    if not isinstance(line, str):
        raise TypeError(f"tokenize_13a: expected a str, got {type(line).__name__}")
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = (line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                .replace("&gt;", ">"))
    line = f" {line} "
    for pattern, repl in _13A_RULES:
        line = pattern.sub(repl, line)
    return line.split()


def _tokenizer(name: str, tokenize) -> Callable[[str], list]:
    if callable(tokenize):
        return tokenize
    if tokenize == "13a":
        return tokenize_13a
    if tokenize == "none":
        return str.split
    raise ValueError(f"{name}: tokenize must be '13a', 'none' or a callable, got {tokenize!r}")


# ---------------------------------------------------------------------------- inputs

def _as_tokens(name: str, what: str, x, tok):
    if isinstance(x, str):
        return tuple(tok(x))
    if isinstance(x, (list, tuple)):
        return tuple(x)
    raise TypeError(f"{name}: expected each {what} as a str or a list of tokens, got {type(x).__name__}")


def _prepare(name: str, hypotheses, references, tokenize):
    """Tokenised ``(hyps, refs)`` with ``refs[i]`` the references of hypothesis ``i``."""
    if isinstance(hypotheses, str) or not isinstance(hypotheses, Sequence):
        raise TypeError(f"{name}: expected a sequence of hypotheses, got {type(hypotheses).__name__}")
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError(f"{name}: expected a sequence of reference lists, got {type(references).__name__}")
    if len(hypotheses) == 0:
        raise ValueError(f"{name}: expected at least one hypothesis, got an empty corpus")
    if len(hypotheses) != len(references):
        raise ValueError(f"{name}: expected one list of references per hypothesis, got "
                         f"{len(hypotheses)} hypotheses and {len(references)} reference lists")
    tok = _tokenizer(name, tokenize)
    hyps, refs = [], []
    for i, (h, rs) in enumerate(zip(hypotheses, references)):
        if isinstance(rs, str) or not isinstance(rs, Sequence) or len(rs) == 0:
            raise ValueError(f"{name}: expected a non-empty list of references for hypothesis {i}, "
                             f"got {rs!r}")
        hyps.append(_as_tokens(name, "hypothesis", h, tok))
        refs.append([_as_tokens(name, "reference", r, tok) for r in rs])
    return hyps, refs


def _ngrams(tokens: tuple, n: int) -> Counter:
    return Counter(tokens[i:i + n] for i in range(len(tokens) - n + 1))


def _closest_length(hyp_len: int, ref_lens) -> int:
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


def _statistics(hyps, refs, max_order: int):
    """``(matches[n], totals[n], c, r)`` summed over the corpus, for orders ``1..max_order``."""
    matches, totals = [0] * max_order, [0] * max_order
    c = r = 0
    for hyp, rs in zip(hyps, refs):
        c += len(hyp)
        r += _closest_length(len(hyp), [len(x) for x in rs])
        for n in range(1, max_order + 1):
            counts = _ngrams(hyp, n)
            if not counts:
                continue
            best: Counter = Counter()
            for ref in rs:
                best |= _ngrams(ref, n)          # max count over the references
            matches[n - 1] += sum(min(k, best[g]) for g, k in counts.items())
            totals[n - 1] += sum(counts.values())
    return matches, totals, c, r


# ------------------------------------------------------------------------------ BLEU

def _smooth(method: str, m: list, l: list, c: int, next_precision: float, *, epsilon, alpha, k):
    """Precisions ``p_n`` (floats) from matches ``m`` and totals ``l`` under ``method``."""
    N = len(m)
    p = [m[i] / l[i] if l[i] else 0.0 for i in range(N)]
    if method == "method1":
        return [epsilon / l[i] if m[i] == 0 and l[i] else p[i] for i in range(N)]
    if method == "method2":
        return [p[0]] + [(m[i] + 1) / (l[i] + 1) for i in range(1, N)]
    if method == "method3":
        j = 0
        for i in range(N):
            if m[i] == 0 and l[i]:
                j += 1
                p[i] = 1.0 / (2 ** j * l[i])
        return p
    if method in ("method4", "method7"):
        j = 0
        for i in range(N):
            if m[i] == 0 and l[i] and c > 1:
                j += 1
                p[i] = math.log(c) / (k * 2 ** j) / l[i]
        if method == "method4":
            return p
    if method in ("method5", "method7"):
        ahead = p + [next_precision]
        prev = p[0] + 1.0
        for i in range(N):
            p[i] = (prev + ahead[i] + ahead[i + 1]) / 3.0
            prev = p[i]
        return p
    if method == "method6":
        if N < 3 or p[2] == 0:
            raise ValueError("corpus_bleu: smoothing 'method6' needs at least 3 orders and a "
                             f"non-zero trigram precision, got precisions {p}")
        for i in range(2, N):
            prior = p[i - 1] ** 2 / p[i - 2] if p[i - 2] else 0.0
            p[i] = (m[i] + alpha * prior) / (l[i] + alpha)
        return p
    return p                                                           # method0


def _check_order(name: str, max_order, weights):
    if weights is not None:
        weights = tuple(float(w) for w in weights)
        if max_order is not None and max_order != len(weights):
            raise ValueError(f"{name}: max_order={max_order} but {len(weights)} weights were given")
        max_order = len(weights)
    max_order = 4 if max_order is None else max_order
    if isinstance(max_order, bool) or not isinstance(max_order, int) or max_order < 1:
        raise ValueError(f"{name}: max_order must be an int >= 1, got {max_order!r}")
    return max_order, weights


def corpus_bleu(hypotheses: Sequence, references: Sequence, *, max_order: int | None = None,
                weights: Sequence[float] | None = None, smoothing: str = "method0",
                effective_order: bool = False, tokenize="13a", epsilon: float = 0.1,
                alpha: float = 5.0, k: float = 5.0) -> float:
    """Corpus BLEU of ``hypotheses`` against their references (see the module docstring).

    Args:
      hypotheses: one entry per segment: a list of tokens, or a str that ``tokenize`` splits.
      references: ``references[i]`` is the non-empty list of references of hypothesis
        ``i`` (nltk's layout; sacreBLEU's streams ``refs[j][i]`` transposed), as tokens or str.
      max_order: the largest n-gram order ``N`` (default 4, or ``len(weights)``).
      weights: ``w_1..w_N`` (default uniform ``1/N``).
      smoothing: ``"method0"`` ... ``"method7"`` (Chen & Cherry 2014, nltk's numbering).
      effective_order: leave out the orders of which the hypotheses have no n-gram
        (uniform weights over the rest), as sacreBLEU's sentence BLEU.
      tokenize: for str inputs: ``"13a"`` (:func:`tokenize_13a`), ``"none"`` (split on
        whitespace) or a callable ``str -> list``.
      epsilon, alpha, k: the constants of methods 1, 6 and 4 (Chen & Cherry's values).

    Returns:
      BLEU as a float in [0, 1].

    >>> corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]])
    1.0
    """
    name = "corpus_bleu"
    max_order, weights = _check_order(name, max_order, weights)
    if smoothing not in SMOOTHING_METHODS:
        raise ValueError(f"{name}: smoothing must be one of {SMOOTHING_METHODS}, got {smoothing!r}")
    hyps, refs = _prepare(name, hypotheses, references, tokenize)
    stats_order = max_order + 1 if smoothing in ("method5", "method7") else max_order
    matches, totals, c, r = _statistics(hyps, refs, stats_order)
    bp = 1.0 if c > r else (math.exp(1.0 - r / c) if c > 0 else 0.0)
    if matches[0] == 0:
        return 0.0
    next_precision = 0.0
    if stats_order > max_order:
        next_precision = matches[-1] / totals[-1] if totals[-1] else 0.0
        matches, totals = matches[:max_order], totals[:max_order]
    p = _smooth(smoothing, matches, totals, c, next_precision, epsilon=epsilon, alpha=alpha, k=k)
    orders = range(max_order)
    if effective_order:
        orders = [i for i in orders if totals[i] > 0]
    if weights is None:
        w = [1.0 / len(orders)] * len(orders)
    else:
        w = [weights[i] for i in orders]
    if any(p[i] <= 0 for i in orders):
        return 0.0
    return bp * math.exp(math.fsum(wi * math.log(p[i]) for wi, i in zip(w, orders)))


def sentence_bleu(hypothesis, references: Sequence, **kwargs) -> float:
    """BLEU of one hypothesis against its list of references: :func:`corpus_bleu` of a
    one-segment corpus, with the same keyword arguments.

    sacreBLEU's ``sentence_bleu`` is ``smoothing="method3", effective_order=True``.
    """
    if isinstance(references, str):
        raise TypeError("sentence_bleu: expected a list of references, got a str (wrap it in a list)")
    return corpus_bleu([hypothesis], [references], **kwargs)


# ------------------------------------------------------------------------------ chrF

_PUNCTUATION = frozenset('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~')


def _words(sentence: str) -> list[str]:
    """Whitespace words with one leading or trailing punctuation mark split off (chrF++)."""
    out = []
    for w in sentence.split():
        if len(w) > 1 and w[-1] in _PUNCTUATION:
            out += [w[:-1], w[-1]]
        elif len(w) > 1 and w[0] in _PUNCTUATION:
            out += [w[0], w[1:]]
        else:
            out.append(w)
    return out


def _chrf_ngrams(sentence: str, char_order: int, word_order: int, whitespace: bool) -> list[Counter]:
    chars = sentence if whitespace else "".join(sentence.split())
    grams = [Counter(chars[i:i + n] for i in range(len(chars) - n + 1)) for n in range(1, char_order + 1)]
    words = _words(sentence) if word_order else []
    grams += [Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
              for n in range(1, word_order + 1)]
    return grams


def _chrf_score(stats: list, beta: float) -> float:
    """F-beta of the precision and recall averaged over the orders with n-grams on both sides."""
    precision = recall = 0.0
    orders = 0
    for n_hyp, n_ref, n_match in stats:
        if n_hyp > 0 and n_ref > 0:
            precision += n_match / n_hyp
            recall += n_match / n_ref
            orders += 1
    if orders == 0 or precision + recall == 0:
        return 0.0
    precision, recall = precision / orders, recall / orders
    b2 = beta * beta
    return (1 + b2) * precision * recall / (b2 * precision + recall)


def chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str]], *, char_order: int = 6,
         word_order: int = 0, beta: float = 2.0, whitespace: bool = False) -> float:
    """Corpus chrF (Popovic 2015; chrF++ with ``word_order=2``), as sacreBLEU's ``CHRF``.

    Per order ``n``: ``P_n = matches / hypothesis n-grams``, ``R_n = matches / reference
    n-grams`` over the corpus (each segment scored against its best reference); ``P`` and
    ``R`` are their means over the orders that have n-grams on both sides, and
    ``chrF = (1 + beta^2) P R / (beta^2 P + R)``. Characters are taken with whitespace
    removed unless ``whitespace=True``.

    Args:
      hypotheses: strings, one per segment.
      references: ``references[i]`` the non-empty list of reference strings of segment ``i``.
      char_order, word_order, beta: sacreBLEU's defaults 6, 0, 2.

    Returns:
      chrF as a float in [0, 1] (sacreBLEU reports ``100 *`` this).
    """
    name = "chrf"
    for what, v, lo in (("char_order", char_order, 1), ("word_order", word_order, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name}: {what} must be an int >= {lo}, got {v!r}")
    if not beta > 0:
        raise ValueError(f"{name}: beta must be positive, got {beta!r}")
    hyps, refs = _prepare(name, hypotheses, references, lambda s: s)
    if any(not isinstance(h, str) for h in hypotheses) or any(
            not isinstance(r, str) for rs in references for r in rs):
        raise TypeError(f"{name}: expected hypotheses and references as str")
    orders = char_order + word_order
    total = [[0, 0, 0] for _ in range(orders)]
    for h, rs in zip(hypotheses, references):
        h_grams = _chrf_ngrams(h, char_order, word_order, whitespace)
        best, best_f = None, -1.0
        for ref in rs:
            r_grams = _chrf_ngrams(ref, char_order, word_order, whitespace)
            stats = []
            for hg, rg in zip(h_grams, r_grams):
                n_match = sum(min(cnt, rg[g]) for g, cnt in hg.items() if g in rg)
                stats.append((sum(hg.values()) if rg else 0, sum(rg.values()), n_match))
            f = _chrf_score(stats, beta)
            if f > best_f:
                best, best_f = stats, f
        for i, s in enumerate(best):
            for j in range(3):
                total[i][j] += s[j]
    del hyps, refs
    return _chrf_score(total, beta)
