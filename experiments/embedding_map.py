"""embedding_map: a 2-D PCA map of chosen words from skip-gram vectors of the Lee corpus.

The notes draw "man, woman, king, queen, apple, orange" on a plane: related words sit
together. The Lee corpus (2001 Australian news) has no apples or oranges, so the map
shows its own groups: people, places, armed conflict, weekdays, cricket, emergencies.
Vectors: ``word2vec_lee``'s skip-gram (100 dimensions, window 5, 20 epochs, seed 0,
:func:`fnnet.text.word2vec.train`); the map is the first two principal components
(:func:`fnnet.decomposition.pca_fit`) of the chosen words' unit vectors.

Besides the picture, a number: the mean cosine similarity of two words of one group
against that of two words of different groups (and the share of variance the plane
keeps, which is small: 100 dimensions do not fold onto 2 without loss).
Full run (47 s wall on 2 CPU cores shared with other jobs, load average ~15; the
training is most of it): mean cosine within groups 0.45, between groups 0.29; the two
components keep 34% of the variance (21% and 12%); the conflict words, the people and
the weekdays each sit together, cricket words next to Melbourne and Sydney.
"""
from __future__ import annotations

import dataclasses
import os
import time

import jax.numpy as jnp
import numpy as np

from fnnet.decomposition import pca_fit, pca_transform
from fnnet.text import vectors
from fnnet.train.config import check_config, require

CPU_SECONDS = 47  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it

WORDS = ("people:man", "people:woman", "people:men", "people:women", "people:boy",
         "places:australia", "places:sydney", "places:melbourne", "places:afghanistan", "places:pakistan",
         "places:israel",
         "conflict:army", "conflict:soldiers", "conflict:troops", "conflict:taliban",
         "weekdays:monday", "weekdays:tuesday", "weekdays:thursday", "weekdays:friday",
         "cricket:cricket", "cricket:test", "cricket:wickets", "cricket:runs",
         "emergency:fire", "emergency:police", "emergency:crews")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                          # seed of the word2vec run
    words: tuple[str, ...] = WORDS         # "group:word" entries to place on the map
    vector_size: int = 100                 # word vector dimension
    epochs: int = 20                       # skip-gram passes over the corpus
    min_count: int = 2                     # least count of a vocabulary word

    def __post_init__(self):
        check_config(self, positive=("vector_size", "epochs", "min_count"), nonnegative=("seed",))
        require(self, "words", len(self.words) >= 3, "at least 3 'group:word' entries")
        bad = [w for w in self.words if w.count(":") != 1 or not all(w.split(":"))]
        require(self, "words", not bad, f"'group:word' entries (got {bad[:3]})")


def group_cohesion(units: np.ndarray, groups: list[str]) -> tuple[float, float]:
    """Mean cosine of two distinct words of one group, and of two words of different groups."""
    sims = units @ units.T
    g = np.asarray(groups)
    same = (g[:, None] == g[None, :]) & ~np.eye(len(g), dtype=bool)
    other = g[:, None] != g[None, :]
    return float(sims[same].mean()), float(sims[other].mean())


def run(config: Config) -> dict:
    from fnnet.cli import load_experiment
    start = time.perf_counter()
    lee = load_experiment("word2vec_lee", os.path.dirname(os.path.abspath(__file__)))
    w2v = lee.Config(seed=config.seed, vector_size=config.vector_size, epochs=config.epochs,
                     min_count=config.min_count)
    wv = lee.train_lee_vectors(w2v)
    pairs = [w.split(":") for w in config.words]
    missing = [word for _, word in pairs if word not in wv]
    kept = [(group, word) for group, word in pairs if word in wv]
    if len(kept) < 3:
        raise ValueError(f"embedding_map: expected at least 3 of the words in the vocabulary, got {len(kept)} "
                         f"(missing: {missing})")
    units = vectors.unit_vectors(wv)[[wv.index(word) for _, word in kept]]
    pca = pca_fit(jnp.asarray(units), 2)
    xy = np.asarray(pca_transform(pca, jnp.asarray(units)))
    within, between = group_cohesion(units, [g for g, _ in kept])
    return {"words": [w for _, w in kept], "groups": [g for g, _ in kept], "missing": missing,
            "xy": xy.tolist(), "explained_variance_ratio": np.asarray(pca.explained_variance_ratio).tolist(),
            "within_group_cosine": within, "between_group_cosine": between,
            "seconds": time.perf_counter() - start}


def plot(result: dict, out_dir: str) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xy = np.asarray(result["xy"])
    groups = result["groups"]
    names = sorted(set(groups), key=groups.index)
    colors = dict(zip(names, plt.get_cmap("tab10").colors))
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for name in names:
        idx = [i for i, g in enumerate(groups) if g == name]
        ax.scatter(xy[idx, 0], xy[idx, 1], color=colors[name], label=name, s=30)
    for (x, y), word, group in zip(xy, result["words"], groups):
        ax.annotate(word, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=9, color=colors[group])
    ratio = result["explained_variance_ratio"]
    ax.set_xlabel(f"PC 1 ({100 * ratio[0]:.0f}% of the variance)")
    ax.set_ylabel(f"PC 2 ({100 * ratio[1]:.0f}%)")
    ax.set_title(f"skip-gram vectors of the Lee corpus: mean cosine within groups "
                 f"{result['within_group_cosine']:.2f}, between {result['between_group_cosine']:.2f}", fontsize=9)
    ax.legend(fontsize=8, loc="best")
    path = os.path.join(out_dir, "embedding_map.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return [path]
