"""sentiment: Emojify v1, v2 and Kim's text CNN on the Pang & Lee polarity sentences,
embeddings learned from scratch or started from word2vec vectors of the Lee corpus.

Data: gensim's bundled ``pang_lee_polarity.cor``, 200 movie-review sentences (Pang &
Lee 2005), each line ``__label__neg`` or ``__label__pos`` then the sentence (100 of
each), read as ``simple_preprocess`` tokens (the word2vec vectors' tokenisation); ids
over the words of all 200 sentences (no labels are used for that), right padded with
``<pad>`` (id 0) to the longest sentence. Stratified 10-fold cross-validation
(``sklearn``'s ``StratifiedKFold``, shuffled with the seed): every fold trains
``seeds`` members as one ``fnnet.train.fit_population`` program (Adam, softmax
cross-entropy, a fixed number of epochs, no early stopping: the held-out fold is only
scored) and reports its final held-out accuracy; the table gives the mean and standard
deviation over the 10 folds of the members' mean accuracy. A bag-of-words logistic
regression (scikit-learn, vocabulary of the training fold) on the same folds is the
reference outside fnnet.

Models (:mod:`fnnet.models.text_classifiers`): ``v1`` the mean embedding and softmax
regression; ``v2`` two LSTM layers of 128 units with dropout 0.5 (the course's); ``cnn``
Kim (2014), widths 3/4/5, 100 maps each, dropout 0.5. Embeddings (100-d):

- ``scratch``: uniform ``U(-a, a)`` with ``a`` chosen so that the variance matches the
  word2vec vectors' (Kim 2014's choice for unknown words), trained;
- ``word2vec``: skip-gram with negative sampling on the Lee corpus (the
  ``word2vec_lee`` settings), words it lacks drawn as ``scratch``, fine-tuned (Kim's
  "non-static");
- ``word2vec_frozen``: the same table kept fixed (Kim's "static").

Full run (default config: fnnet's word2vec, seed 0, one member per fold, 20 epochs;
545 and 778 s wall in two runs on 2 shared CPU cores (load 3-10), the CNN 460 and 600 s
of it; both runs gave the same numbers): vocabulary 1,645 words, sentences
up to 43 tokens; the Lee vectors cover 40% of the words and 68% of the tokens. Held-out
accuracy, mean +- sd over the 10 folds (20 sentences each):

| model | scratch | word2vec | word2vec_frozen |
|---|---|---|---|
| v1 (mean + softmax) | 58.5 +- 9.5% | 54.5 +- 7.9% | 46.5 +- 8.1% |
| v2 (2-layer LSTM) | 52.0 +- 10.3% | 53.5 +- 12.3% | 44.5 +- 15.4% |
| Kim CNN | 49.0 +- 9.7% | 46.5 +- 9.5% | 51.0 +- 8.0% |
| bag-of-words logistic regression (sklearn) | 55.5 +- 7.6% | | |

Every model fits its 180 training sentences (training accuracy 100%; with the frozen
table v2 99.7% and v1 74%), and none is distinguishable from chance on the held-out
ones (a fold's sd is 11 points at 50%): 200 sentences are far too few (Kim 2014
reports 76.1-81.5% on the 10,662 sentences of the full movie-review set), and the Lee
news vectors carry no sentiment (frozen, they do no better than chance). The reference
bag-of-words model is in the same band; with the fold seeds 0, 1, 2 it gives 55.5%,
59.0%, 58.0%.
"""
from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import init as initializers
from fnnet import losses, metrics, nn, optim
from fnnet.models.text_classifiers import emojify_v1, emojify_v2, text_cnn
from fnnet.train.config import check_config
from fnnet.train.population import fit_population

CPU_SECONDS = 780  # a default run on 2 CPU cores; `fnnet list` shows it

MODELS = ("v1", "v2", "cnn")
INITS = ("scratch", "word2vec", "word2vec_frozen")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                        # seed of the folds, the initialisations, the batch order, word2vec
    models: tuple[str, ...] = MODELS     # which classifiers: "v1", "v2", "cnn"
    inits: tuple[str, ...] = INITS       # embedding starts: "scratch", "word2vec", "word2vec_frozen"
    folds: int = 10                      # stratified cross-validation folds
    seeds: int = 1                       # members trained per fold (one population program)
    epochs: int = 20                     # passes over a fold's training sentences
    batch_size: int = 20                 # sentences per step
    embed_dim: int = 100                 # embedding width (the word2vec vectors')
    learning_rate_v1: float = 0.01       # Adam rate of v1
    learning_rate_v2: float = 0.002      # Adam rate of v2
    learning_rate_cnn: float = 0.001     # Adam rate of the CNN
    lstm_hidden: int = 128               # v2: LSTM units per layer
    cnn_filters: int = 100               # CNN: maps per width
    dropout: float = 0.5                 # v2 and CNN dropout
    vectors: str = "fnnet"               # who trains the Lee word2vec vectors: "fnnet" or "gensim"
    word2vec_epochs: int = 20            # word2vec passes over the Lee corpus

    def __post_init__(self):
        check_config(self, positive=("folds", "seeds", "epochs", "batch_size", "embed_dim", "learning_rate_v1",
                                     "learning_rate_v2", "learning_rate_cnn", "lstm_hidden", "cnn_filters",
                                     "word2vec_epochs"),
                     nonnegative=("seed",), ranges={"dropout": "[0, 1)"},
                     choices={"models": MODELS, "inits": INITS, "vectors": ("fnnet", "gensim")},
                     nonempty=("models", "inits"))
        if self.folds < 2:
            raise ValueError(f"Config: expected folds >= 2, got {self.folds}")


def load_polarity() -> tuple[list[list[str]], np.ndarray]:
    """The 200 sentences as ``simple_preprocess`` tokens and their labels (0 neg, 1 pos)."""
    from gensim.test.utils import datapath
    from gensim.utils import simple_preprocess
    sentences, labels = [], []
    # the file is Windows-1252 (0x97 an em dash, 0xe9 an e acute), as Pang & Lee's release
    with open(datapath("pang_lee_polarity.cor"), encoding="cp1252") as f:
        for i, line in enumerate(f):
            tag, _, text = line.strip().partition(" ")
            if tag not in ("__label__neg", "__label__pos"):
                raise ValueError(f"pang_lee_polarity.cor line {i + 1}: expected __label__neg or __label__pos, "
                                 f"got {tag!r}")
            labels.append(int(tag == "__label__pos"))
            sentences.append(simple_preprocess(text))
    return sentences, np.array(labels, np.int32)


def encode(sentences) -> tuple[list[str], np.ndarray]:
    """The vocabulary (``<pad>`` first, then by count, ties by first appearance) and the
    right-padded ids ``(N, T)``, ``T`` the longest sentence."""
    counts, first = {}, {}
    for s in sentences:
        for w in s:
            counts[w] = counts.get(w, 0) + 1
            first.setdefault(w, len(first))
    words = ["<pad>"] + sorted(counts, key=lambda w: (-counts[w], first[w]))
    index = {w: i for i, w in enumerate(words)}
    ids = np.zeros((len(sentences), max(len(s) for s in sentences)), np.int32)
    for n, s in enumerate(sentences):
        ids[n, :len(s)] = [index[w] for w in s]
    return words, ids


def embedding_table(words, wv, key, dim: int):
    """``(table (V, d), a, covered)``: word2vec rows where ``wv`` has the word, else
    ``U(-a, a)`` with ``3 a^2 / 3 = var(wv)``, i.e. ``a = sqrt(3 var)``."""
    vectors = np.asarray(wv.vectors, np.float32)
    a = float(np.sqrt(3.0 * np.var(vectors)))
    table = np.array(jax.random.uniform(key, (len(words), dim), jnp.float32, -a, a))
    covered = np.array([w in wv for w in words])
    for i, w in enumerate(words):
        if covered[i]:
            table[i] = vectors[wv.index(w)]
    table[0] = 0.0                                     # <pad>: never read
    return table, a, covered


def make_model(name: str, init: str, vocab: int, config: Config, table, a: float) -> tuple[nn.Module, float]:
    kwargs = {"embedding_init": initializers.uniform(a)} if init == "scratch" else {
        "embeddings": table, "freeze_embeddings": init == "word2vec_frozen"}
    if name == "v1":
        return emojify_v1(vocab, 2, embed_dim=config.embed_dim, **kwargs), config.learning_rate_v1
    if name == "v2":
        return emojify_v2(vocab, 2, embed_dim=config.embed_dim, hidden=config.lstm_hidden, dropout=config.dropout,
                          **kwargs), config.learning_rate_v2
    return text_cnn(vocab, 2, embed_dim=config.embed_dim, filters=config.cnn_filters, dropout=config.dropout,
                    **kwargs), config.learning_rate_cnn


def lee_word2vec(**kwargs):
    """The sibling experiment ``debias``'s :func:`lee_word2vec` (skip-gram on the Lee corpus)."""
    from fnnet.cli import load_experiment

    return load_experiment("debias", os.path.dirname(os.path.abspath(__file__))).lee_word2vec(**kwargs)


def folds_of(labels, folds: int, seed: int) -> list[np.ndarray]:
    """Held-out indices of each stratified fold (sklearn's StratifiedKFold, shuffled)."""
    from sklearn.model_selection import StratifiedKFold
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [test for _, test in split.split(np.zeros(len(labels)), labels)]


def run(config: Config) -> dict:
    start = time.perf_counter()
    sentences, labels = load_polarity()
    words, ids = encode(sentences)
    key = jax.random.key(config.seed)
    wv = lee_word2vec(seed=config.seed, vectors=config.vectors, vector_size=config.embed_dim,
                      epochs=config.word2vec_epochs)
    table, a, covered = embedding_table(words, wv, jax.random.fold_in(key, 0), config.embed_dim)
    tokens = ids[ids > 0]
    coverage = {"words": float(np.mean(covered[1:])), "tokens": float(np.mean(covered[tokens]))}
    word2vec_seconds = time.perf_counter() - start
    held_out = folds_of(labels, config.folds, config.seed)

    def accuracy(logits, y):
        return metrics.accuracy(logits, y)

    rows, per_fold = [], {}
    for m_i, name in enumerate(config.models):
        for i_i, init in enumerate(config.inits):
            model, lr = make_model(name, init, len(words), config, table, a)
            opt = optim.adam(lr)        # one optimizer object: the folds reuse one compiled program
            t0 = time.perf_counter()
            fold_acc, fold_train = [], []
            for f, test in enumerate(held_out):
                train = np.setdiff1d(np.arange(len(labels)), test)
                k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, 1 + m_i), i_i), f)
                keys = jax.random.split(jax.random.fold_in(k, 0), config.seeds)
                # member by member, then stacked: a vmapped init batches the LSTM's orthogonal
                # draws into one QR, whose LAPACK kernel deadlocked here twice (jaxlib 0.10.2,
                # 2 cores: its parallel batch map waits on the thread pool it runs in)
                members = [model.init(keys[i], ids[:2]) for i in range(config.seeds)]
                params, state = jax.tree.map(lambda *leaves: jnp.stack(leaves), *members)
                fitted = fit_population(model, losses.softmax_cross_entropy_with_integer_labels, opt,
                                        params, state, (ids[train], labels[train]),
                                        keys=jax.random.split(jax.random.fold_in(k, 1), config.seeds),
                                        batch_size=config.batch_size, epochs=config.epochs,
                                        dev_data=(ids[test], labels[test]), metrics={"accuracy": accuracy},
                                        train_metrics=False, progress=False)
                fold_acc.append(float(np.mean(fitted.history[-1]["dev_accuracy"])))
                logits = jax.vmap(lambda p, s: model.apply(p, s, ids[train])[0])(fitted.params, fitted.state)
                fold_train.append(float(np.mean(np.argmax(np.asarray(logits), -1) == labels[train][None])))
            per_fold[f"{name}/{init}"] = fold_acc
            rows.append({"model": name, "init": init, "accuracy_mean": float(np.mean(fold_acc)),
                         "accuracy_std": float(np.std(fold_acc)), "train_accuracy_mean": float(np.mean(fold_train)),
                         "params": nn.count_params(jax.tree.map(lambda x: x[0], params)),
                         "seconds": time.perf_counter() - t0})
    # a reference outside fnnet on the same folds: bag-of-words logistic regression (sklearn)
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    texts = [" ".join(s) for s in sentences]
    bow = []
    for test in held_out:
        train = np.setdiff1d(np.arange(len(labels)), test)
        vectorizer = CountVectorizer(token_pattern=r"\S+").fit([texts[i] for i in train])
        clf = LogisticRegression(max_iter=1000).fit(vectorizer.transform([texts[i] for i in train]), labels[train])
        bow.append(float(np.mean(clf.predict(vectorizer.transform([texts[i] for i in test])) == labels[test])))
    per_fold["bow_logreg"] = bow
    baseline = {"model": "bag-of-words logistic regression (sklearn)", "accuracy_mean": float(np.mean(bow)),
                "accuracy_std": float(np.std(bow))}
    return {"rows": rows, "baseline": baseline, "per_fold": per_fold, "sentences": len(labels), "positive": int(labels.sum()),
            "vocabulary": len(words) - 1, "max_length": int(ids.shape[1]), "coverage": coverage,
            "word2vec_vocabulary": len(wv), "word2vec_seconds": word2vec_seconds,
            "total_seconds": time.perf_counter() - start}


def plot(result: dict, out_dir: str) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = result["rows"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    inits = list(dict.fromkeys(r["init"] for r in rows))
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(inits)
    for j, init in enumerate(inits):
        sel = [next(r for r in rows if r["model"] == m and r["init"] == init) for m in models]
        x = np.arange(len(models)) + (j - (len(inits) - 1) / 2) * width
        ax.bar(x, [r["accuracy_mean"] for r in sel], width, yerr=[r["accuracy_std"] for r in sel], capsize=3,
               label=init)
    ax.axhline(0.5, color="k", lw=0.8, ls="--", label="chance")
    if "baseline" in result:
        ax.axhline(result["baseline"]["accuracy_mean"], color="tab:gray", lw=0.8, ls=":",
                   label="bag-of-words logistic regression")
    ax.set_xticks(np.arange(len(models)))
    ax.set_xticklabels({"v1": "Emojify v1 (mean)", "v2": "Emojify v2 (LSTM)", "cnn": "Kim CNN"}.get(m, m)
                       for m in models)
    ax.set_ylabel("held-out accuracy (10-fold CV, mean +- sd)")
    ax.set_ylim(0.3, 1.0)
    ax.set_title(f"Pang & Lee polarity, {result['sentences']} sentences", fontsize=9)
    ax.legend(fontsize=8)
    path = os.path.join(out_dir, "sentiment.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return [path]
