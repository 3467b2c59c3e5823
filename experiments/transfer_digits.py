"""transfer_digits: transfer learning with LeNet-5, digits 0-4 to digits 5-9, by freezing layers or fine-tuning.

Data: scikit-learn's 8x8 digits upsampled to 32x32 and standardised as in
``lenet_digits`` (first half trains, second half, other writers, tests). A LeNet-5
(classic, 5 outputs) is pretrained on the training digits 0-4. The new task is digits
5-9 (labels 5-9 as 0-4) with ``k`` = 1, 5, 20 labelled training examples per class, or
all of them (~90 per class); it is tested on every 5-9 digit of the test half. Three
ways to train the new task, each for ``steps`` Adam steps:

- ``frozen``: the pretrained C1, C3, C5 and F6 frozen (``fnnet.optim.freeze.freeze``,
  which keeps them bit-identical, and ``freeze.stop_gradient`` inside the model, which
  drops their backward pass), a new output layer trained;
- ``frozen_conv``: the pretrained convolutions C1 and C3 frozen, a new dense head (C5,
  F6 and the output layer, freshly initialised) trained;
- ``finetune``: the pretrained layers and a new output layer, all trained;
- ``scratch``: a fresh LeNet-5, all trained.

Seeds: ``seeds`` members trained side by side by ``fnnet.train.fit_population`` (one
``vmap``-ed program per method and ``k``): each member has its own pretraining,
initialisation, new head and batch order. The ``k`` examples per class are one draw
(from ``seed``) shared by the members, so the spread is over training randomness, not
over which examples were labelled.

Full run (5 seeds, 300 steps per method and k, batches of up to 32 with augmentation;
537 s wall on 2 CPU cores shared at a load average of ~12; re-run with C5 as a matmul on
CPU, the same table to the digits printed, in 622 s at a load of ~9 beside other runs,
with the vmapped step 0.98x the old one's time): pretraining reaches
98.4-99.1% on the test digits 0-4. Test accuracy (%) on the 451 test digits 5-9, mean
and standard deviation over the 5 seeds:

==========  ===========  ===========  ===========  ===========
k           frozen       frozen_conv  finetune     scratch
==========  ===========  ===========  ===========  ===========
1           56.8 +- 9.6  75.0 +- 2.8  74.2 +- 3.3  71.7 +- 3.8
5           82.8 +- 1.2  96.1 +- 1.2  95.9 +- 0.7  95.8 +- 0.8
20          83.1 +- 2.8  94.1 +- 5.9  95.2 +- 0.5  95.2 +- 1.5
all (~89)   87.7 +- 2.7  98.1 +- 0.3  98.0 +- 0.6  97.9 +- 1.2
==========  ===========  ===========  ===========  ===========

Transfer helps only with one example per class (frozen convolutions or fine-tuning
3.3 and 2.5 points above scratch, within about one standard deviation); from 5
examples per class a LeNet-5 trained from scratch with augmentation is as good, since
the 8x8 digits are easy. Freezing everything up to F6 hurts at every k: the 84 F6
features of a 0-4 network do not separate 5-9 (the new output layer's training loss
stays at 0.28-0.69 against 0.03-0.17 for the others). ``frozen_conv`` at k = 20 has one
seed at 83.6% (the others 96.2-97.6%). Every frozen layer was checked bit-identical
to its pretrained value after training.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import losses, metrics, nn, optim, train
from fnnet.data import augment
from fnnet.models import lenet5
from fnnet.optim import freeze
from fnnet.train.config import check_config

CPU_SECONDS = 537  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it

# lenet5(variant="classic") children: C1 "0", C3 "3", C5 "7", F6 "9", output "11"
FROZEN = {"frozen": ("0", "3", "7", "9"),       # C1-F6 frozen, a new output layer
          "frozen_conv": ("0", "3")}            # C1, C3 frozen, a new C5, F6 and output layer
NEW_HEAD = {"frozen": ("11",), "frozen_conv": ("7", "9", "11"), "finetune": ("11",)}
METHODS = ("frozen", "frozen_conv", "finetune", "scratch")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                          # seed of the members' keys and of the labelled subsets
    seeds: int = 5                         # members trained side by side
    shots: tuple[int, ...] = (1, 5, 20, 0)  # labelled examples per class of digits 5-9 (0: all)
    pretrain_epochs: int = 30              # epochs on digits 0-4
    steps: int = 300                       # Adam steps on the new task (each method, each k)
    learning_rate: float = 2e-3            # Adam learning rate (pretraining and new task)
    batch_size: int = 32                   # images per step (fewer when fewer are labelled)
    max_shift: int = 3                     # random translation of training images (0: none)
    max_degrees: float = 10.0              # random rotation (0: none)
    methods: tuple[str, ...] = METHODS     # which ways to train the new task

    def __post_init__(self):
        check_config(self, positive=("seeds", "pretrain_epochs", "steps", "learning_rate", "batch_size"),
                     nonnegative=("seed", "shots", "max_shift", "max_degrees"), nonempty=("shots", "methods"),
                     choices={"methods": METHODS})


def load():
    """Digits as (N, 32, 32, 1) standardised with the training half, as lenet_digits does."""
    from fnnet.cli import load_experiment
    ld = load_experiment("lenet_digits")
    x_train, y_train, x_test, y_test = ld.load(ld.Config())
    return (np.asarray(x_train), np.asarray(y_train), np.asarray(x_test), np.asarray(y_test))


def labelled_subset(y: np.ndarray, classes, k: int, seed: int) -> np.ndarray:
    """Indices of ``k`` examples of each class (all of them for ``k = 0``), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in classes:
        idx = np.nonzero(y == c)[0]
        picked.append(idx if k == 0 else rng.choice(idx, size=min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(picked))


def _hook(config: Config):
    augs = []
    if config.max_shift:
        augs.append(lambda k, x: augment.random_translate(k, x, config.max_shift))
    if config.max_degrees:
        augs.append(lambda k, x: augment.random_rotate(k, x, config.max_degrees))
    if not augs:
        return None
    augmentation = augment.compose(*augs)
    return lambda xb, yb, k: (augmentation(k, xb), yb)


def with_frozen(model: nn.Module, layers) -> nn.Module:
    """``model`` whose ``layers`` get no gradient (``freeze.stop_gradient``)."""
    def apply(params, state, x, *, key=None, train=False):
        return model.apply(freeze.stop_gradient(params, list(layers)), state, x, key=key, train=train)
    return nn.Module(model.init, apply, model.name + "_frozen")


def run(config: Config) -> dict:
    start = time.perf_counter()
    x_train, y_train, x_test, y_test = load()
    model = lenet5(num_classes=5, variant="classic")
    key = jax.random.key(config.seed)
    P = config.seeds
    hook = _hook(config)
    loss = losses.softmax_cross_entropy_with_integer_labels

    def population(k):                     # P fresh inits from stream k
        keys = jax.random.split(jax.random.fold_in(key, k), P)
        return jax.vmap(lambda kk: model.init(kk, jax.ShapeDtypeStruct((1, 32, 32, 1), jnp.float32)))(keys)

    def member_keys(k):
        return jax.random.split(jax.random.fold_in(key, k), P)

    # 1. pretrain on digits 0-4
    src = y_train < 5
    src_test = y_test < 5
    params, state = population(0)
    pre = train.fit_population(model, loss, optim.adam(config.learning_rate), params, state,
                               (x_train[src], y_train[src]), keys=member_keys(1),
                               batch_size=config.batch_size, epochs=config.pretrain_epochs, drop_last=True,
                               batch_hook=hook, dev_data=(x_test[src_test], y_test[src_test]),
                               metrics={"accuracy": metrics.accuracy}, train_metrics=False, progress=False)
    pretrain_acc = [100 * a for a in pre.history[-1]["dev_accuracy"]]

    # 2. the new task: digits 5-9 as 0-4
    tgt_test = y_test >= 5
    test = (x_test[tgt_test], y_test[tgt_test] - 5)
    table, curves = [], {}
    for i, k in enumerate(config.shots):
        idx = labelled_subset(y_train, range(5, 10), k, config.seed + 1000 * (i + 1))
        data = (x_train[idx], y_train[idx] - 5)
        batch = min(config.batch_size, len(idx))
        fresh_params, fresh_state = population(10 + i)
        row = {"shots": k if k else "all", "labelled": int(len(idx))}
        for j, method in enumerate(METHODS):
            if method not in config.methods:
                continue
            if method == "scratch":
                p0, s0, net, opt = fresh_params, fresh_state, model, optim.adam(config.learning_rate)
            else:                                   # pretrained features, a new head
                p0 = {**pre.params, **{name: fresh_params[name] for name in NEW_HEAD[method]}}
                s0 = pre.state
                net, opt = model, optim.adam(config.learning_rate)
                if method in FROZEN:
                    net, opt = with_frozen(model, FROZEN[method]), freeze.freeze_layers(opt, list(FROZEN[method]))
            fitted = train.fit_population(net, loss, opt, p0, s0, data, keys=member_keys(100 + 10 * i + j),
                                          batch_size=batch, steps=config.steps, eval_every=config.steps,
                                          batch_hook=hook, dev_data=test, metrics={"accuracy": metrics.accuracy},
                                          train_metrics=False, progress=False)
            if method in FROZEN:   # the guarantee, checked: frozen layers bit-identical to the pretrained ones
                for name in FROZEN[method]:
                    for a, b in zip(jax.tree.leaves(fitted.params[name]), jax.tree.leaves(pre.params[name])):
                        if not np.array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32)):
                            raise RuntimeError(f"transfer_digits: frozen layer {name} moved")
            acc = np.asarray(fitted.history[-1]["dev_accuracy"]) * 100
            row[method] = {"mean": float(acc.mean()), "std": float(acc.std(ddof=1)) if P > 1 else 0.0,
                           "seeds": acc.round(2).tolist()}
            curves[f"{method}_{row['shots']}"] = float(fitted.history[-1]["train_loss"][0])
        table.append(row)
    return {"table": table, "pretrain_test_accuracy_0_4": pretrain_acc, "final_train_loss_member0": curves,
            "n_test_5_9": int(tgt_test.sum()), "total_seconds": time.perf_counter() - start}


def plot(result: dict, out_dir: str) -> list:
    import os
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = result["table"]
    labels = [str(r["shots"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, method in enumerate(METHODS):
        if method not in rows[0]:
            continue
        means = [r[method]["mean"] for r in rows]
        stds = [r[method]["std"] for r in rows]
        ax.errorbar(np.arange(len(rows)) + (m - 1.5) * 0.07, means, yerr=stds, marker="o", capsize=3, label=method)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels)
    ax.set_xlabel("labelled examples per class (digits 5-9)")
    ax.set_ylabel("test accuracy on digits 5-9 (%)")
    ax.set_title("LeNet-5 pretrained on digits 0-4, mean and s.d. over seeds", fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out_dir, "transfer_digits.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
