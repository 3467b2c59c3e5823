"""debias: the gender direction of word2vec vectors trained on the Lee corpus, occupation
words projected on it before and after neutralising, and equalised pairs.

Bolukbasi et al. (2016), "Man is to Computer Programmer as Woman is to Homemaker?", as
in the course notes, with :mod:`fnnet.text.debias`. Skip-gram with negative sampling
is trained on gensim's bundled Lee background corpus (``simple_preprocess`` tokens,
100 dimensions, window 5, ``min_count`` 2, 5 negatives, 20 epochs: the settings of the
``word2vec_lee`` experiment), every vector is scaled to unit length (as the paper), and
the gender direction ``g`` is the first principal component of the pair-centred
definitional pairs (``she - he``, ``woman - man``, ...), pointing towards the female
words; the mean pair difference is computed beside it. Each occupation's projection
``e . g`` (its cosine with ``g``) is listed before and after :func:`neutralize`, and
each gendered pair before and after :func:`equalize`, with the gap between its two
distances to the neutralised occupations.

The corpus is 300 news articles (58k tokens): many of the paper's words are missing
and the rarer ones have noisy vectors, so the direction is weaker than on Google News.
The result lists the words that were missing (``missing_*``).

Full run (fnnet's word2vec, seed 0; 8 s wall on 2 quiet CPU cores, 53 s when shared at
load ~15): vocabulary 3,955; 6 of the 10 definitional pairs are in it (missing:
mary, herself, daughter, gal); the first principal component explains 35% of the
pair differences (then 27%, 19%: on this corpus it does not dominate as in the paper),
and its cosine with the mean difference is 0.79. 33 of the 45 occupations are in the
vocabulary (missing: teacher, engineer, receptionist, homemaker, programmer, artist,
singer, student, firefighter, surgeon, soldier, banker). Before neutralising their
mean |projection| is 0.113 and 25 of 33 lean towards "she" (mean +0.066), from player +0.31, lawyer +0.24,
nurse +0.23 to president -0.12, commander -0.18, leader -0.24; after it every
projection is below 4e-8. Equalising 10 pairs gives each pair mirror projections
(woman/man -0.53/+0.53, she/he +0.55/-0.55, her/his +0.58/-0.58), unit norms, and equal
distances to every neutralised occupation (gap 1e-7 or less, from 0.05-0.15 before);
it keeps each pair's order along ``g``, so the 3 pairs whose female word projected
below its male word (woman/man, girl/boy, actress/actor) end with the female word on
the male side. With gensim's vectors (``vectors="gensim"``) the picture is the
same: first component 43%, mean |projection| 0.122, 23 of 33 towards "she".
"""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.text.debias import bias_direction, definitional_pca, equalize, neutralize
from fnnet.text.vectors import WordVectors
from fnnet.train.config import check_config

CPU_SECONDS = 8  # a default run on 2 CPU cores; `fnnet list` shows it

# Bolukbasi et al.'s ten definitional pairs (female first: g points towards "she")
DEFINITIONAL = (("she", "he"), ("her", "his"), ("woman", "man"), ("mary", "john"), ("herself", "himself"),
                ("daughter", "son"), ("mother", "father"), ("gal", "guy"), ("girl", "boy"), ("female", "male"))
# pairs to equalise (from the paper's equalise list and the notes' actor/actress)
EQUALIZE = (("woman", "man"), ("women", "men"), ("she", "he"), ("her", "his"), ("girl", "boy"),
            ("mother", "father"), ("queen", "king"), ("female", "male"), ("spokeswoman", "spokesman"),
            ("actress", "actor"), ("sister", "brother"), ("wife", "husband"), ("daughter", "son"))
OCCUPATIONS = ("doctor", "nurse", "teacher", "engineer", "lawyer", "scientist", "president", "minister",
               "police", "pilot", "secretary", "receptionist", "homemaker", "programmer", "journalist",
               "farmer", "artist", "singer", "captain", "chief", "officer", "leader", "commander",
               "professor", "student", "manager", "firefighter", "judge", "surgeon", "author", "director",
               "player", "coach", "economist", "prosecutor", "magistrate", "treasurer", "senator",
               "governor", "ambassador", "inspector", "negotiator", "editor", "soldier", "banker")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                  # seed of the word2vec run
    vectors: str = "fnnet"         # who trains the word2vec vectors: "fnnet" or "gensim" (workers=1)
    vector_size: int = 100         # word vector dimension
    window: int = 5                # maximum window
    min_count: int = 2             # least count of a kept word
    negative: int = 5              # noise words per pair
    epochs: int = 20               # passes over the corpus
    direction: str = "pca"         # the gender direction used to neutralise and equalise: "pca" or "difference"

    def __post_init__(self):
        check_config(self, positive=("vector_size", "window", "min_count", "negative", "epochs"),
                     nonnegative=("seed",), choices={"vectors": ("fnnet", "gensim"),
                                                     "direction": ("pca", "difference")})


def lee_sentences() -> list[list[str]]:
    """gensim's Lee background corpus, one article a line, as ``simple_preprocess`` tokens."""
    from gensim.test.utils import datapath
    from gensim.utils import simple_preprocess
    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        return [simple_preprocess(line) for line in f]


def lee_word2vec(*, seed: int, vectors: str = "fnnet", vector_size: int = 100, window: int = 5,
                 min_count: int = 2, negative: int = 5, epochs: int = 20) -> WordVectors:
    """Skip-gram with negative sampling on the Lee corpus, by fnnet or by gensim (``workers=1``)."""
    sentences = lee_sentences()
    if vectors == "gensim":
        from gensim.models import Word2Vec
        model = Word2Vec(sentences, vector_size=vector_size, window=window, min_count=min_count, sg=1,
                         negative=negative, epochs=epochs, workers=1, seed=seed)
        return WordVectors(tuple(model.wv.index_to_key), np.asarray(model.wv.vectors))
    from fnnet.text import word2vec
    from fnnet.text.corpus import build_corpus
    corpus = build_corpus(sentences, min_count=min_count)
    config = word2vec.Word2VecConfig(sg=True, vector_size=vector_size, window=window, negative=negative,
                                     epochs=epochs)
    return word2vec.train(corpus, config, key=jax.random.key(seed)).vectors


def split_present(wv: WordVectors, pairs):
    """The pairs (or words) whose words are all in ``wv``, and the words missing."""
    present, missing = [], []
    for item in pairs:
        words = (item,) if isinstance(item, str) else item
        gone = [w for w in words if w not in wv]
        missing += [w for w in gone if w not in missing]
        if not gone:
            present.append(item)
    return present, missing


def analyse(wv: WordVectors, direction: str = "pca", definitional=DEFINITIONAL, equalize_pairs=EQUALIZE,
            occupations=OCCUPATIONS) -> dict:
    """The debiasing numbers for the unit-length vectors of ``wv`` (see the module docstring)."""
    units = np.asarray(wv.vectors, np.float64)
    units = units / np.maximum(np.linalg.norm(units, axis=1, keepdims=True), 1e-12)
    unit = {w: units[wv.index(w)] for w in wv.words}
    defs, missing_def = split_present(wv, definitional)
    pairs, missing_pairs = split_present(wv, equalize_pairs)
    occs, missing_occ = split_present(wv, occupations)
    if not defs:
        raise ValueError(f"debias: none of the definitional pairs is in the vocabulary (missing {missing_def})")
    stacked = jnp.asarray(np.array([[unit[a], unit[b]] for a, b in defs]), jnp.float32)
    g_pca = np.asarray(bias_direction(stacked, method="pca"))
    g_diff = np.asarray(bias_direction(stacked, method="difference"))
    _, ratio = definitional_pca(stacked)
    g = g_pca if direction == "pca" else g_diff
    g_unit = g / np.linalg.norm(g)

    e_occ = jnp.asarray(np.array([unit[w] for w in occs]).reshape(len(occs), -1), jnp.float32)
    neutral = np.asarray(neutralize(e_occ, jnp.asarray(g, jnp.float32)))
    occupation_rows = [{"word": w, "frequency_rank": wv.index(w), "before": float(unit[w] @ g_unit),
                        "after": float(neutral[i] @ g_unit)} for i, w in enumerate(occs)]
    occupation_rows.sort(key=lambda r: -r["before"])

    def gap(x, y):   # mean |d(w, x) - d(w, y)| over the neutralised occupations w
        if not len(neutral):
            return float("nan")
        return float(np.mean(np.abs(np.linalg.norm(neutral - x, axis=1) - np.linalg.norm(neutral - y, axis=1))))

    pair_rows = []
    if pairs:
        e1 = jnp.asarray(np.array([unit[a] for a, _ in pairs]), jnp.float32)
        e2 = jnp.asarray(np.array([unit[b] for _, b in pairs]), jnp.float32)
        q1, q2 = (np.asarray(v) for v in equalize(e1, e2, jnp.asarray(g, jnp.float32)))
        for i, (a, b) in enumerate(pairs):
            pair_rows.append({"pair": [a, b], "before": [float(unit[a] @ g_unit), float(unit[b] @ g_unit)],
                              "after": [float(q1[i] @ g_unit), float(q2[i] @ g_unit)],
                              "norms_after": [float(np.linalg.norm(q1[i])), float(np.linalg.norm(q2[i]))],
                              "distance_gap_before": gap(unit[a], unit[b]), "distance_gap_after": gap(q1[i], q2[i])})
    before = np.array([r["before"] for r in occupation_rows])
    # equalising keeps each pair's order along g: a pair whose female word projects below
    # its male word ends with the female word on the male side
    female_side = sum(r["after"][0] > 0 for r in pair_rows)
    return {"definitional_pairs": [list(p) for p in defs], "missing_definitional": missing_def,
            "equalize_pairs": [list(p) for p in pairs], "missing_equalize": missing_pairs,
            "occupations": occs, "missing_occupations": missing_occ,
            "explained_variance_ratio": [float(v) for v in np.asarray(ratio)[:10]],
            "cos_pca_difference": float(g_pca @ g_diff / (np.linalg.norm(g_pca) * np.linalg.norm(g_diff))),
            "direction": direction,
            "mean_abs_projection_before": float(np.mean(np.abs(before))) if len(before) else float("nan"),
            "mean_projection_before": float(np.mean(before)) if len(before) else float("nan"),
            "occupations_towards_female": int(np.sum(before > 0)),
            "pairs_female_side_after": int(female_side),
            "max_abs_projection_after": float(max((abs(r["after"]) for r in occupation_rows), default=0.0)),
            "occupation_rows": occupation_rows, "pair_rows": pair_rows}


def run(config: Config) -> dict:
    start = time.perf_counter()
    wv = lee_word2vec(seed=config.seed, vectors=config.vectors, vector_size=config.vector_size,
                      window=config.window, min_count=config.min_count, negative=config.negative,
                      epochs=config.epochs)
    train_seconds = time.perf_counter() - start
    result = analyse(wv, config.direction)
    result.update({"vocabulary": len(wv), "train_seconds": train_seconds,
                   "total_seconds": time.perf_counter() - start})
    return result


def plot(result: dict, out_dir: str) -> list:
    import os
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = result["occupation_rows"]
    pairs = result["pair_rows"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, max(4.5, 0.2 * len(rows) + 1)),
                                 gridspec_kw={"width_ratios": [1.2, 1]})
    y = np.arange(len(rows))
    before = [r["before"] for r in rows]
    ax.barh(y, before, color=["tab:red" if v > 0 else "tab:blue" for v in before], alpha=0.7,
            label="before neutralising")
    ax.plot([r["after"] for r in rows], y, "k|", markersize=8, label="after neutralising")
    ax.set_yticks(y)
    ax.set_yticklabels([r["word"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("projection on g (cosine; > 0: towards she/woman)")
    ax.set_title("occupations", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    py = np.arange(len(pairs))
    for i, r in enumerate(pairs):
        bx.plot(r["before"], [i - 0.15] * 2, "-", color="0.7", lw=0.8)
        bx.plot(r["after"], [i + 0.15] * 2, "-", color="0.3", lw=0.8)
        for k, (marker, colour) in enumerate((("o", "tab:red"), ("s", "tab:blue"))):
            bx.plot(r["before"][k], i - 0.15, marker, color=colour, mfc="white", ms=5)
            bx.plot(r["after"][k], i + 0.15, marker, color=colour, ms=5)
    bx.set_yticks(py)
    bx.set_yticklabels([f"{a} / {b}" for a, b in (r["pair"] for r in pairs)], fontsize=7)
    bx.invert_yaxis()
    bx.axvline(0, color="k", lw=0.5)
    bx.set_xlabel("projection on g: before (hollow), after equalising (filled);\nfirst word o red, second word s blue")
    bx.set_title("equalised pairs", fontsize=9)
    fig.suptitle(f"gender direction of word2vec on the Lee corpus ({result['direction']}; first PC explains "
                 f"{result['explained_variance_ratio'][0]:.0%} of the pair differences)", fontsize=9)
    fig.tight_layout()
    path = os.path.join(out_dir, "debias.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return [path]
