"""image_captioning: show, attend and tell on synthetic scenes of two coloured shapes.

Scenes from :func:`fnnet.data.synthetic_scenes.make_scenes` (24x24 RGB, two objects of
4 colours x 4 shapes, one above, below, left or right of the other), captioned by a
one-form grammar ("a red circle to the left of a blue square"); each scene's two true
captions (either object first) are its references, its training caption one of them.

Model (:func:`fnnet.models.captioning.show_attend_tell`, Xu et al. 2015): a two-layer
CNN encoder (3x3 convolutions, ReLU, 2x2 max pooling: a 6x6 grid of 32 features), two
3x3 context convolutions on the grid (dilations 1 and 2, so each cell sees the whole
scene: with Xu's plain encoder, 8 epochs of batches of 64 reached BLEU-4 0.846 greedy /
0.864 beam, most errors the relation word), each cell's row and column appended, an
LSTM decoder (96 units) with additive soft attention over the 36 cells, the gating
scalar and the deep output layer; trained with teacher forcing by
``fnnet.train.fit`` (Adam, mean cross-entropy over the real words and ``<end>``).
Held-out scenes (another seed) are captioned free-running by greedy decoding and by
beam search, and scored with fnnet's corpus BLEU-4 (``fnnet.text.bleu.corpus_bleu``,
words as tokens, both references of each scene).

Shows: the decoder learns the grammar and reads colour, shape and relation through
attention over the grid; the per-word attention maps (the figure) shift between the
regions of the two objects, spread over neighbouring cells (the context convolutions
give every cell a view of its surroundings, so attention need not sit on the object).
Full run (6,000 training scenes, 8 epochs of batches of 32, 102,964 params; 89 s wall
by ``fnnet run`` on 2 shared CPU cores at load average ~9, 71 s of it training; 174 s
beside another run at load ~10, the same numbers): corpus BLEU-4 0.924 greedy and 0.934
beam search (width 3) on the 500 held-out scenes (seed 1), exact caption 73.6% greedy and
77.2% beam; teacher-forced word accuracy 0.916 (goal BLEU-4 >= 0.9: met). Until the
CPU conv's backward ran on the conv library inside ``lax.scan`` (a change of rounding
in the compiled epochs) the same run gave 0.941 / 0.953 (78.6% / 82.6% exact) in 273 s. The remaining errors are mostly a shape confused (cross or triangle,
circle or square, at a radius of 3-4 pixels), often between two objects of one colour.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import losses, nn, optim, train
from fnnet.data.synthetic_scenes import END, PAD, START, VOCAB, decode_caption, encode_captions, make_scenes
from fnnet.models.captioning import show_attend_tell
from fnnet.models.seq2seq import decoder_inputs
from fnnet.text.beam_search import beam_search, greedy_decode
from fnnet.text.bleu import corpus_bleu
from fnnet.train.config import check_config, require

CPU_SECONDS = 89  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it

MAX_LEN = 11     # the longest caption (10 words) and <end>


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                     # seed of the training scenes, the initialisation and the batch order
    test_seed: int = 1                # seed of the held-out scenes (a different draw)
    train_scenes: int = 6000          # training scenes
    test_scenes: int = 500            # held-out scenes
    image_size: int = 24              # image height and width in pixels
    channels: tuple[int, ...] = (16, 32)  # encoder conv channels (each conv is followed by 2x2 pooling)
    context_layers: int = 2           # 3x3 convs on the feature grid (dilations 1, 2): each cell sees the scene
    embed_dim: int = 32               # word embedding width
    hidden: int = 96                  # LSTM units
    attention_dim: int = 32           # hidden width of the additive attention score
    learning_rate: float = 3e-3       # Adam learning rate
    clip_norm: float = 1.0            # global-norm gradient clipping
    batch_size: int = 32              # scenes per step
    epochs: int = 8                   # passes over the training scenes
    beam_width: int = 3               # beam search width at test time
    attention_examples: int = 3       # held-out scenes whose per-word attention maps are kept for the plot

    def __post_init__(self):
        check_config(self, positive=("train_scenes", "test_scenes", "image_size", "channels", "embed_dim",
                                     "hidden", "attention_dim", "learning_rate", "clip_norm", "batch_size",
                                     "epochs", "beam_width"),
                     nonnegative=("seed", "test_seed", "context_layers", "attention_examples"),
                     nonempty=("channels",))
        require(self, "test_seed", self.test_seed != self.seed, f"a seed other than seed ({self.seed})")
        require(self, "image_size", self.image_size >= 16 and self.image_size % 2 ** len(self.channels) == 0,
                f">= 16 and divisible by 2^{len(self.channels)} (one 2x2 pooling per conv layer)")
        require(self, "attention_examples", self.attention_examples <= self.test_scenes,
                f"<= test_scenes ({self.test_scenes})")


def captioner(config: Config):
    return show_attend_tell(len(VOCAB), (config.image_size, config.image_size, 3), start_token=START,
                            channels=config.channels, context_layers=config.context_layers,
                            embed_dim=config.embed_dim, hidden=config.hidden,
                            attention_dim=config.attention_dim)


def caption_loss(logits, y):
    """Mean cross-entropy over the real words and ``<end>`` (padding left out)."""
    return losses.sequence_cross_entropy(logits, y, mask=y != PAD)


def run(config: Config) -> dict:
    start = time.perf_counter()
    radius = (config.image_size / 8, config.image_size / 6)          # 3 to 4 pixels at 24x24
    train_set = make_scenes(config.seed, config.train_scenes, image_size=config.image_size, radius=radius)
    test_set = make_scenes(config.test_seed, config.test_scenes, image_size=config.image_size, radius=radius)
    y_train = encode_captions(train_set.captions, MAX_LEN)
    y_test = encode_captions(test_set.captions, MAX_LEN)
    x_train = (jnp.asarray(train_set.images), decoder_inputs(jnp.asarray(y_train), START))
    x_test = (jnp.asarray(test_set.images), decoder_inputs(jnp.asarray(y_test), START))
    data_seconds = time.perf_counter() - start

    model = captioner(config)
    key = jax.random.key(config.seed)
    params, state = model.module.init(jax.random.fold_in(key, 0), tuple(a[:config.batch_size] for a in x_train))
    opt = optim.chain(optim.clip_by_global_norm(config.clip_norm), optim.adam(config.learning_rate))

    def word_accuracy(logits, y):             # teacher-forced: each word given the true prefix
        real = y != PAD
        return jnp.sum((jnp.argmax(logits, -1) == y) & real) / jnp.sum(real)

    fit_start = time.perf_counter()
    fitted = train.fit(model.module, caption_loss, opt, params, state, (x_train, jnp.asarray(y_train)),
                       key=jax.random.fold_in(key, 1), batch_size=config.batch_size, epochs=config.epochs,
                       compile_epochs=True, dev_data=(x_test, jnp.asarray(y_test)),
                       metrics={"word_accuracy": word_accuracy}, train_metrics=False)
    train_seconds = time.perf_counter() - fit_start
    params = fitted.params

    @jax.jit
    def decode(params, images):
        step, carry, first = model.decoder(params, images)
        greedy = greedy_decode(step, carry, first, max_len=MAX_LEN, end_token=END)
        beam = beam_search(step, carry, first, beam_width=config.beam_width, max_len=MAX_LEN, end_token=END)
        return greedy.sequences, beam.sequences[:, 0]

    greedy, beam = (np.asarray(a) for a in decode(params, jnp.asarray(test_set.images)))
    greedy_words = [decode_caption(s) for s in greedy]
    beam_words = [decode_caption(s) for s in beam]
    bleu_greedy = corpus_bleu(greedy_words, test_set.references, max_order=4)
    bleu_beam = corpus_bleu(beam_words, test_set.references, max_order=4)
    exact_greedy = float(np.mean([g in refs for g, refs in zip(greedy_words, test_set.references)]))
    exact_beam = float(np.mean([b in refs for b, refs in zip(beam_words, test_set.references)]))

    k = config.attention_examples
    _, weights = jax.jit(model.teacher_forced)(params, jnp.asarray(test_set.images[:k]),
                                               decoder_inputs(jnp.asarray(greedy[:k]), START))
    examples = [{"image": test_set.images[i].round(3).tolist(), "caption": greedy_words[i],
                 "references": [" ".join(r) for r in test_set.references[i]],
                 "attention": np.asarray(weights[i, :len(greedy_words[i]) + 1]).reshape(
                     -1, *model.grid).round(4).tolist()} for i in range(k)]
    errors = [{"greedy": " ".join(g), "beam": " ".join(b), "references": [" ".join(r) for r in refs]}
              for g, b, refs in zip(greedy_words, beam_words, test_set.references)
              if g not in refs or b not in refs][:20]
    history = [{"epoch": h["epoch"], "train_loss": h["train_loss"], "test_loss": h["dev_loss"],
                "test_word_accuracy": h["dev_word_accuracy"]} for h in fitted.history]
    return {"bleu4_greedy": bleu_greedy, "bleu4_beam": bleu_beam, "exact_match_greedy": exact_greedy,
            "exact_match_beam": exact_beam, "params": nn.count_params(params), "grid": list(model.grid),
            "train_seconds": train_seconds, "data_seconds": data_seconds,
            "total_seconds": time.perf_counter() - start, "history": history, "examples": examples,
            "errors": errors, "captions_greedy": [" ".join(g) for g in greedy_words],
            "captions_beam": [" ".join(b) for b in beam_words]}


def plot(result: dict, out_dir: str) -> list:
    import os
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = []
    examples = result["examples"]
    if examples:
        cols = max(len(ex["attention"]) for ex in examples) + 1
        fig, axes = plt.subplots(len(examples), cols, figsize=(1.3 * cols, 1.5 * len(examples)), squeeze=False)
        for row, ex in zip(axes, examples):
            image = np.asarray(ex["image"])
            size = image.shape[0]
            words = ex["caption"] + ["<end>"]
            for ax in row:
                ax.axis("off")
            row[0].imshow(image)
            row[0].set_title("image", fontsize=7)
            for ax, word, w in zip(row[1:], words, ex["attention"]):
                w = np.asarray(w)
                ax.imshow(0.7 * image)
                ax.imshow(w, cmap="inferno", alpha=0.6, vmin=0, vmax=max(w.max(), 1e-9),
                          extent=(-0.5, size - 0.5, size - 0.5, -0.5), interpolation="bilinear")
                ax.set_title(word, fontsize=8)
        fig.suptitle(f"image_captioning: attention over the {result['grid'][0]}x{result['grid'][1]} feature map "
                     f"per generated word; held-out BLEU-4 {result['bleu4_greedy']:.3f} greedy, "
                     f"{result['bleu4_beam']:.3f} beam", fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, "image_captioning.png")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths
