"""Word vectors: cosine similarity, nearest neighbours, analogies, evaluation, files.

A :class:`WordVectors` is a word list and a ``(V, d)`` matrix, row ``i`` the vector of
``words[i]`` (a frozen dataclass registered as a JAX pytree: ``vectors`` is its one
leaf, ``words`` static). Everything else is a function of it:

- ``cosine_similarity(u, v) = <u, v> / (|u| |v|)`` along the last axis (a JAX kernel);
- :func:`most_similar`: the words whose unit vectors are nearest (by cosine) to the
  mean of the unit vectors of ``positive`` minus those of ``negative`` (gensim's
  ``KeyedVectors.most_similar``), the query words excluded;
- :func:`analogy`: ``a : b :: c : ?`` by 3CosAdd, ``argmax_d cos(d, b - a + c)``
  (Mikolov et al. 2013), or 3CosMul (Levy & Goldberg 2014, eq. 4, cosines shifted to
  ``[0, 1]``)::

      3CosMul(d) = cos'(d, b) cos'(d, c) / (cos'(d, a) + 1e-6),   cos' = (1 + cos) / 2

  with ``a``, ``b``, ``c`` excluded from the answers (as gensim and word2vec's
  ``compute-accuracy`` do);
- :func:`evaluate_word_pairs`: Spearman's (and Pearson's) correlation between human
  similarity scores (WordSim-353, SimLex-999) and the model's cosines, over the pairs
  whose two words are in the vocabulary; the out-of-vocabulary pairs are counted and
  reported, never silently dropped;
- :func:`evaluate_analogies`: accuracy on an analogy set (word2vec's
  ``questions-words.txt`` format), per section and in total, questions with an
  unknown word counted apart (gensim's ``evaluate_word_analogies`` protocol);
- :func:`save_word2vec_format` / :func:`load_word2vec_format`: the text and binary
  formats of the original word2vec tool, which gensim's ``KeyedVectors`` reads.

Lookups, rankings and file handling run in NumPy (small, data-dependent, nothing to
differentiate); ``cosine_similarity`` is the differentiable kernel.

Imports: jax, numpy and the standard library.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["WordVectors", "cosine_similarity", "similarity", "unit_vectors", "most_similar", "analogy",
           "spearman", "pearson", "read_word_pairs", "read_analogies", "evaluate_word_pairs",
           "evaluate_analogies", "save_word2vec_format", "load_word2vec_format", "ANALOGY_METHODS"]

ANALOGY_METHODS = ("add", "mul")


@functools.partial(jax.tree_util.register_dataclass, data_fields=["vectors"], meta_fields=["words"])
@dataclasses.dataclass(frozen=True)
class WordVectors:
    """Words and their vectors: ``vectors[i]`` belongs to ``words[i]``.

    Attributes:
      words: the distinct words, a tuple of non-empty strings without whitespace (the
        word2vec file formats separate fields by spaces).
      vectors: a ``(len(words), d)`` floating array (NumPy or JAX).

    ``wv["fire"]`` is a word's vector, ``"fire" in wv`` a membership test and
    ``wv.index("fire")`` its row (a ``KeyError`` naming the word if it is unknown).
    """
    words: tuple[str, ...]
    vectors: object

    def __post_init__(self):
        words = self.words
        if isinstance(words, str) or not isinstance(words, Sequence):
            raise TypeError(f"WordVectors: expected words as a sequence of strings, got {type(words).__name__}")
        words = tuple(words)
        object.__setattr__(self, "words", words)
        shape = getattr(self.vectors, "shape", None)
        if shape is None:
            if self.vectors is None or type(self.vectors) is object:
                return          # a placeholder leaf of a JAX tree operation, not user data
            object.__setattr__(self, "vectors", np.asarray(self.vectors))
            shape = self.vectors.shape
        if len(shape) != 2:
            raise ValueError(f"WordVectors: expected vectors of shape (V, d), got shape {tuple(shape)}")
        if shape[0] != len(words):
            raise ValueError(f"WordVectors: expected one vector per word ({len(words)} words), "
                             f"got {shape[0]} rows")
        if not jnp.issubdtype(self.vectors.dtype, jnp.floating):
            raise TypeError(f"WordVectors: expected floating vectors, got dtype {self.vectors.dtype}")

    @functools.cached_property
    def _index(self) -> dict:
        index = {}
        for i, w in enumerate(self.words):
            if not isinstance(w, str) or not w or any(c.isspace() for c in w):
                raise ValueError(f"WordVectors: expected non-empty words without whitespace, got words[{i}] = {w!r}")
            if w in index:
                raise ValueError(f"WordVectors: expected distinct words, got {w!r} at rows {index[w]} and {i}")
            index[w] = i
        return index

    @property
    def dim(self) -> int:
        """The vector size ``d``."""
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word) -> bool:
        return word in self._index

    def index(self, word: str) -> int:
        """The row of ``word``; a ``KeyError`` naming it if it is not in the vocabulary."""
        i = self._index.get(word)
        if i is None:
            raise KeyError(f"word {word!r} is not in the vocabulary ({len(self.words)} words)")
        return i

    def __getitem__(self, word: str):
        return self.vectors[self.index(word)]


def _check_vectors(name: str, wv) -> None:
    if not isinstance(wv, WordVectors):
        raise TypeError(f"{name}: expected a WordVectors, got {type(wv).__name__}")
    wv._index  # noqa: B018  (builds the index: checks the words once)


# ------------------------------------------------------------------------- similarity


def cosine_similarity(u: jax.Array, v: jax.Array, *, eps: float = 1e-12) -> jax.Array:
    """Cosine of the angle between ``u`` and ``v`` along the last axis.

    ``cos(u, v) = <u, v> / max(|u| |v|, eps)``: 1 for parallel, 0 for orthogonal, -1
    for opposite vectors; 0 when either is the zero vector.

    Args:
      u, v: floating arrays of the same shape ``(..., d)``.
      eps: floor of the product of norms.

    Returns:
      ``(...)``, the cosines.

    >>> float(cosine_similarity(jnp.array([1.0, 0.0]), jnp.array([1.0, 1.0])))  # doctest: +ELLIPSIS
    0.7071...
    """
    u, v = jnp.asarray(u), jnp.asarray(v)
    for label, a in (("u", u), ("v", v)):
        if not jnp.issubdtype(a.dtype, jnp.floating):
            raise TypeError(f"cosine_similarity: expected floating {label}, got dtype {a.dtype}")
    if u.shape != v.shape or u.ndim < 1:
        raise ValueError(f"cosine_similarity: expected u and v of one shape (..., d), got {u.shape} and {v.shape}")
    dot = jnp.sum(u * v, axis=-1)
    norms = jnp.sqrt(jnp.sum(u * u, axis=-1)) * jnp.sqrt(jnp.sum(v * v, axis=-1))
    return dot / jnp.maximum(norms, eps)


def unit_vectors(wv: WordVectors) -> np.ndarray:
    """The rows of ``wv.vectors`` scaled to unit length (zero rows stay zero), float32 NumPy."""
    _check_vectors("unit_vectors", wv)
    m = np.asarray(wv.vectors, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.maximum(norms, np.float32(1e-12))


def similarity(wv: WordVectors, word1: str, word2: str) -> float:
    """``cos(wv[word1], wv[word2])``; a ``KeyError`` naming an unknown word."""
    _check_vectors("similarity", wv)
    u = np.asarray(wv[word1], np.float64)
    v = np.asarray(wv[word2], np.float64)
    return float(u @ v / max(np.linalg.norm(u) * np.linalg.norm(v), 1e-12))


def _as_list(words) -> list:
    if words is None:
        return []
    if isinstance(words, str) or (hasattr(words, "shape") and len(np.shape(words)) == 1):
        return [words]
    return list(words)


def _query_vector(name: str, wv: WordVectors, units: np.ndarray, item) -> tuple[np.ndarray, int | None]:
    if isinstance(item, str):
        i = wv.index(item)
        return units[i], i
    vec = np.asarray(item, np.float32)
    if vec.shape != (wv.dim,):
        raise ValueError(f"{name}: expected a word or a vector of shape ({wv.dim},), got shape {vec.shape}")
    return vec / max(float(np.linalg.norm(vec)), 1e-12), None


def _top(scores: np.ndarray, topn: int, exclude: set, words) -> list[tuple[str, float]]:
    k = min(len(scores), topn + len(exclude))
    best = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    best = best[np.lexsort((best, -scores[best]))]          # by score, ties by row
    return [(words[i], float(scores[i])) for i in best if i not in exclude][:topn]


def most_similar(wv: WordVectors, positive, negative=(), *, topn: int = 10,
                 restrict_vocab: int | None = None) -> list[tuple[str, float]]:
    """The ``topn`` words nearest to ``mean(unit(p) for p in positive, -unit(n) for n in negative)``.

    As gensim's ``KeyedVectors.most_similar``: each query word enters as its unit
    vector with weight +1 (positive) or -1 (negative), the mean is normalised, and
    every vocabulary word is scored by its cosine with it; the query words are left out.

    Args:
      wv: the vectors.
      positive: a word, a vector of shape ``(d,)``, or a list of them.
      negative: likewise, subtracted.
      topn: how many words to return.
      restrict_vocab: search only the first ``restrict_vocab`` rows (None: all).

    Returns:
      ``[(word, cosine), ...]`` by decreasing cosine.
    """
    _check_vectors("most_similar", wv)
    positive, negative = _as_list(positive), _as_list(negative)
    if not positive and not negative:
        raise ValueError("most_similar: expected at least one positive or negative word, got none")
    if not isinstance(topn, int) or isinstance(topn, bool) or topn < 1:
        raise ValueError(f"most_similar: expected topn >= 1, got {topn!r}")
    units = unit_vectors(wv)
    terms, exclude = [], set()
    for sign, items in ((1.0, positive), (-1.0, negative)):
        for item in items:
            vec, i = _query_vector("most_similar", wv, units, item)
            terms.append(sign * vec)
            if i is not None:
                exclude.add(i)
    mean = np.mean(terms, axis=0)
    mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
    limit = len(wv) if restrict_vocab is None else min(int(restrict_vocab), len(wv))
    scores = units[:limit] @ mean
    return _top(scores, topn, exclude, wv.words)


def _analogy_scores(candidates: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray,
                    method: str) -> np.ndarray:
    """Scores ``(n, V)`` of every candidate unit vector as the answer to ``a[k] : b[k] :: c[k] : ?``.

    ``a``, ``b``, ``c`` are ``(n, d)`` unit vectors.
    """
    if method == "add":   # gensim: the normalised mean of the weighted unit vectors
        target = (b + c - a) / 3.0
        target = target / np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-12)
        return target @ candidates.T
    shift = lambda q: (1.0 + q @ candidates.T) / 2.0           # noqa: E731
    return shift(b) * shift(c) / (shift(a) + 1e-6)


def _check_method(name: str, method: str) -> None:
    if method not in ANALOGY_METHODS:
        raise ValueError(f"{name}: expected method in {ANALOGY_METHODS} ('add' = 3CosAdd, 'mul' = 3CosMul), "
                         f"got {method!r}")


def analogy(wv: WordVectors, a: str, b: str, c: str, *, method: str = "add", topn: int = 1,
            restrict_vocab: int | None = None) -> list[tuple[str, float]]:
    """Answers to ``a : b :: c : ?`` ("man : king :: woman : queen").

    ``method="add"`` (3CosAdd) ranks ``d`` by ``cos(d, unit(b) - unit(a) + unit(c))``;
    ``method="mul"`` (3CosMul) by ``cos'(d, b) cos'(d, c) / (cos'(d, a) + 1e-6)`` with
    ``cos' = (1 + cos) / 2``. The three query words are never answers.

    Args:
      wv: the vectors.
      a, b, c: three distinct words of the vocabulary.
      method: ``"add"`` or ``"mul"``.
      topn: how many answers.
      restrict_vocab: search only the first ``restrict_vocab`` rows.

    Returns:
      ``[(word, score), ...]`` by decreasing score.
    """
    _check_vectors("analogy", wv)
    _check_method("analogy", method)
    if len({a, b, c}) < 3:
        raise ValueError(f"analogy: expected three distinct words a : b :: c : ?, got {a!r}, {b!r}, {c!r}")
    if not isinstance(topn, int) or isinstance(topn, bool) or topn < 1:
        raise ValueError(f"analogy: expected topn >= 1, got {topn!r}")
    ia, ib, ic = wv.index(a), wv.index(b), wv.index(c)
    limit = len(wv) if restrict_vocab is None else min(int(restrict_vocab), len(wv))
    units = unit_vectors(wv)
    scores = _analogy_scores(units[:limit], units[[ia]], units[[ib]], units[[ic]], method)[0]
    return _top(scores, topn, {ia, ib, ic}, wv.words)


# ------------------------------------------------------------------------- correlation


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (scipy's ``rankdata(method="average")``)."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    counts = np.diff(np.r_[first, len(x)])
    avg = first + (counts + 1) / 2.0
    ranks = np.empty(len(x))
    ranks[order] = avg[group]
    return ranks


def pearson(x, y) -> float:
    """Pearson's correlation ``cov(x, y) / (std(x) std(y))`` (NaN if either is constant)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"pearson: expected two 1-D sequences of one length >= 2, got shapes {x.shape}, {y.shape}")
    xc, yc = x - x.mean(), y - y.mean()
    denom = np.sqrt(np.sum(xc * xc) * np.sum(yc * yc))
    return float(np.sum(xc * yc) / denom) if denom > 0 else float("nan")


def spearman(x, y) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks (ties averaged)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"spearman: expected two 1-D sequences of one length >= 2, got shapes {x.shape}, {y.shape}")
    return pearson(_ranks(x), _ranks(y))


# ------------------------------------------------------------------------- evaluation sets


def _open_text(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no file at {os.fspath(path)!r}")
    return open(path, encoding="utf-8")


def read_word_pairs(path: str | os.PathLike, *, delimiter: str = "\t") -> list[tuple[str, str, float]]:
    """``(word1, word2, score)`` from a similarity file (WordSim-353, SimLex-999 as gensim ships them).

    Lines starting with ``#`` and lines that are not ``word1<delimiter>word2<delimiter>score``
    are skipped, as gensim's ``evaluate_word_pairs`` skips them.
    """
    out = []
    with _open_text(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.rstrip("\n").split(delimiter)
            if len(parts) != 3:
                continue
            try:
                out.append((parts[0].strip(), parts[1].strip(), float(parts[2])))
            except ValueError:
                continue
    return out


def read_analogies(path: str | os.PathLike) -> list[tuple[str, str, str, str, str]]:
    """``(section, a, b, c, d)`` from a word2vec analogy file (``: section`` header lines)."""
    out, section = [], None
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            if line.startswith(": "):
                section = line[2:].strip()
                continue
            parts = line.split()
            if len(parts) != 4:
                continue
            if section is None:
                raise ValueError(f"read_analogies: expected a ': section' line before line {number} of {path}")
            out.append((section, *parts))
    return out


def _lookup(wv: WordVectors, case_insensitive: bool, restrict_vocab: int | None) -> dict:
    limit = len(wv) if restrict_vocab is None else min(int(restrict_vocab), len(wv))
    if not case_insensitive:
        return {w: i for i, w in enumerate(wv.words[:limit])}
    table = {}
    for i in range(limit - 1, -1, -1):     # the first of several case variants wins (gensim)
        table[wv.words[i].lower()] = i
    return table


def evaluate_word_pairs(wv: WordVectors, pairs, *, case_insensitive: bool = True,
                        restrict_vocab: int | None = 300000, delimiter: str = "\t") -> dict:
    """Correlation of the model's cosines with human similarity scores.

    Pairs with a word outside the vocabulary (the first ``restrict_vocab`` words,
    matched case-insensitively by default) are left out of the correlation and counted
    (gensim's ``evaluate_word_pairs`` with ``dummy4unknown=False``).

    Args:
      wv: the vectors.
      pairs: a file path (see :func:`read_word_pairs`) or ``[(word1, word2, score), ...]``.
      case_insensitive: match words ignoring case.
      restrict_vocab: only the first rows count as vocabulary (None: all).
      delimiter: field separator of a pairs file.

    Returns:
      ``{"spearman", "pearson", "pairs" (in the set), "used" (in vocabulary), "oov"
      (pairs left out), "oov_ratio" (oov / pairs)}``.
    """
    _check_vectors("evaluate_word_pairs", wv)
    if isinstance(pairs, (str, os.PathLike)):
        pairs = read_word_pairs(pairs, delimiter=delimiter)
    pairs = list(pairs)
    if not pairs:
        raise ValueError("evaluate_word_pairs: expected at least one (word1, word2, score) pair, got none")
    table = _lookup(wv, case_insensitive, restrict_vocab)
    units = unit_vectors(wv)
    gold, model, oov = [], [], 0
    for w1, w2, score in pairs:
        k1, k2 = (w1.lower(), w2.lower()) if case_insensitive else (w1, w2)
        if k1 not in table or k2 not in table:
            oov += 1
            continue
        gold.append(float(score))
        model.append(float(np.dot(units[table[k1]].astype(np.float64), units[table[k2]].astype(np.float64))))
    if len(gold) < 2:
        raise ValueError(f"evaluate_word_pairs: expected at least 2 pairs in the vocabulary, got {len(gold)} "
                         f"of {len(pairs)} ({oov} out of vocabulary)")
    return {"spearman": spearman(gold, model), "pearson": pearson(gold, model), "pairs": len(pairs),
            "used": len(gold), "oov": oov, "oov_ratio": oov / len(pairs)}


def evaluate_analogies(wv: WordVectors, questions, *, method: str = "add", case_insensitive: bool = True,
                       restrict_vocab: int | None = 300000, batch: int = 1024) -> dict:
    """Accuracy on ``a : b :: c : d`` questions, by section and in total.

    A question is answered by :func:`analogy` (3CosAdd or 3CosMul) over the first
    ``restrict_vocab`` words, ``a``, ``b`` and ``c`` excluded; it is right when the best
    answer is ``d``. Questions with a word outside that vocabulary are left out and
    counted (gensim's ``evaluate_word_analogies`` with ``dummy4unknown=False``).

    Args:
      wv: the vectors.
      questions: a file path (see :func:`read_analogies`) or ``[(section, a, b, c, d), ...]``.
      method: ``"add"`` or ``"mul"``.
      case_insensitive: match words ignoring case.
      restrict_vocab: only the first rows count as vocabulary (None: all).
      batch: questions scored per matrix product.

    Returns:
      ``{"accuracy" (correct / answered; NaN if none), "correct", "answered",
      "questions", "oov", "oov_ratio", "sections": {name: {"correct", "answered", "oov"}}}``.
    """
    _check_vectors("evaluate_analogies", wv)
    _check_method("evaluate_analogies", method)
    if isinstance(questions, (str, os.PathLike)):
        questions = read_analogies(questions)
    questions = list(questions)
    if not questions:
        raise ValueError("evaluate_analogies: expected at least one (section, a, b, c, d) question, got none")
    table = _lookup(wv, case_insensitive, restrict_vocab)
    limit = len(wv) if restrict_vocab is None else min(int(restrict_vocab), len(wv))
    units = unit_vectors(wv)[:limit]
    sections: dict = {}
    rows, kept_sections = [], []
    for q in questions:
        if len(q) != 5:
            raise ValueError(f"evaluate_analogies: expected (section, a, b, c, d) questions, got {q!r}")
        section, words = q[0], q[1:]
        entry = sections.setdefault(section, {"correct": 0, "answered": 0, "oov": 0})
        keys = [w.lower() for w in words] if case_insensitive else list(words)
        if any(k not in table for k in keys):
            entry["oov"] += 1
            continue
        rows.append([table[k] for k in keys])
        kept_sections.append(section)
    rows = np.asarray(rows, np.int64).reshape(-1, 4)
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        scores = _analogy_scores(units, units[chunk[:, 0]], units[chunk[:, 1]], units[chunk[:, 2]], method)
        n = np.arange(len(chunk))
        for col in range(3):
            scores[n, chunk[:, col]] = -np.inf
        best = np.argmax(scores, axis=1)
        for k, (guess, answer) in enumerate(zip(best, chunk[:, 3])):
            entry = sections[kept_sections[start + k]]
            entry["answered"] += 1
            entry["correct"] += int(guess == answer)
    correct = sum(s["correct"] for s in sections.values())
    answered = sum(s["answered"] for s in sections.values())
    oov = sum(s["oov"] for s in sections.values())
    return {"accuracy": correct / answered if answered else float("nan"), "correct": correct,
            "answered": answered, "questions": len(questions), "oov": oov, "oov_ratio": oov / len(questions),
            "sections": sections}


# ------------------------------------------------------------------------- files


def save_word2vec_format(wv: WordVectors, path: str | os.PathLike, *, binary: bool = False) -> None:
    """Write ``wv`` in the word2vec format (gensim's ``KeyedVectors.load_word2vec_format`` reads it).

    Both forms start with the header line ``"V d\\n"``. Text: one line per word,
    ``word v1 v2 ... vd``, each value printed with 9 significant digits (a float32
    reads back exactly). Binary (``binary=True``): ``word``, a space, the ``d``
    little-endian float32 values, then ``"\\n"`` (the C tool's layout).
    """
    _check_vectors("save_word2vec_format", wv)
    m = np.asarray(wv.vectors, dtype="<f4")
    with open(path, "wb") as f:
        f.write(f"{len(wv)} {wv.dim}\n".encode("utf-8"))
        if binary:
            for word, row in zip(wv.words, m):
                f.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
        else:
            buf = io.StringIO()
            for word, row in zip(wv.words, m):
                buf.write(word + " " + " ".join("%.9g" % v for v in row.tolist()) + "\n")
            f.write(buf.getvalue().encode("utf-8"))


def load_word2vec_format(path: str | os.PathLike, *, binary: bool = False) -> WordVectors:
    """Read a word2vec text or binary file (as written by word2vec, gensim or :func:`save_word2vec_format`).

    Returns:
      a :class:`WordVectors` with float32 NumPy vectors, in file order.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_word2vec_format: no file at {os.fspath(path)!r}")
    with open(path, "rb") as f:
        data = f.read()
    end = data.find(b"\n")
    header = data[:end].split() if end >= 0 else []
    try:
        count, dim = (int(v) for v in header)
    except ValueError:
        raise ValueError(f"load_word2vec_format: expected a header line 'V d' in {os.fspath(path)!r}, "
                         f"got {data[:max(end, 0)][:80]!r}") from None
    pos, words = end + 1, []
    vectors = np.empty((count, dim), np.float32)
    if binary:
        width = 4 * dim
        for i in range(count):
            while pos < len(data) and data[pos:pos + 1] in (b"\n", b"\r"):
                pos += 1
            space = data.find(b" ", pos)
            if space < 0 or space + 1 + width > len(data):
                raise ValueError(f"load_word2vec_format: expected {count} vectors of {dim} float32 in "
                                 f"{os.fspath(path)!r}, the file ends at vector {i}")
            words.append(data[pos:space].decode("utf-8"))
            vectors[i] = np.frombuffer(data, "<f4", dim, space + 1)
            pos = space + 1 + width
    else:
        lines = data[pos:].decode("utf-8").splitlines()
        lines = [line for line in lines if line.strip()]
        if len(lines) != count:
            raise ValueError(f"load_word2vec_format: expected {count} lines after the header of "
                             f"{os.fspath(path)!r}, got {len(lines)}")
        for i, line in enumerate(lines):
            parts = line.rstrip().split(" ")
            if len(parts) != dim + 1:
                raise ValueError(f"load_word2vec_format: expected a word and {dim} values on line {i + 2} of "
                                 f"{os.fspath(path)!r}, got {len(parts) - 1} values")
            words.append(parts[0])
            vectors[i] = np.asarray(parts[1:], np.float32)
    return WordVectors(tuple(words), vectors)

