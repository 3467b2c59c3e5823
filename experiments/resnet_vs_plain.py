"""resnet_vs_plain: training error against depth for plain nets and ResNets of the same widths.

He, Zhang, Ren & Sun (2016), "Deep residual learning for image recognition", figure 1
and figure 6: on CIFAR-10 a plain 56-layer net has a higher *training* error than a
plain 20-layer one (the degradation problem: not overfitting, an optimisation
difficulty), while with identity shortcuts the deeper net trains better, not worse.

Here the same architectures (``fnnet.models.cifar_resnet(depth, shortcut=True|False)``:
3x3 convs with batch norm, three stages of 16/32/64 filters, option-A shortcuts, so the
plain and the residual net of a depth have exactly the same parameters; both start from
the same initial weights and see the same batches, so only the shortcuts differ) train
on a bundled data set small enough for a CPU: the scikit-learn digits at their native
8x8 (the three stages run on 8x8, 4x4 and 2x2 maps; ``image_size=16`` upsamples
bilinearly, about 4x the cost), standardised, the first half (898 images) for training
and the second half for testing. Training is He et al.'s CIFAR recipe at a smaller
budget: SGD with momentum 0.9, lr 0.1 after one warm-up epoch at 0.01 (their ResNet-110
warm-up; without it a 30-epoch run of ResNet-56 fell to 1.5% training error, then jumped
back to 20-47%), weight decay 1e-4 (L2 on the conv and dense kernels), batches of 64
reshuffled every epoch, 20 epochs (280 steps), lr divided by 10 after half and three
quarters of them. The training error is the error on the mini-batches of each epoch in
training mode (the thin curves of the paper's figure); the test error uses the
batch-norm running statistics. Depths 8, 20 and 56, as in the paper's figure 6 (which
also has 32 and 44, and 110 for ResNets).

Reaches (seed 0; 74 s on 2 quiet CPU cores, load average ~1; 533 s at a load of ~10,
the same numbers; training and test error in %):

| depth | params | final train err: plain | ResNet | mean over epochs: plain | ResNet | test err: plain | ResNet |
|---|---|---|---|---|---|---|---|
| 8 | 75,002 | 0.00 | 0.00 | 4.04 | 3.68 | 5.34 | 4.67 |
| 20 | 269,434 | 0.00 | 0.00 | 8.18 | 3.33 | 5.45 | 5.34 |
| 56 | 852,730 | 86.94 | 0.22 | 88.06 | 6.24 | 88.88 | 7.01 |

The plain nets get worse with depth: plain-20 fits the training set more slowly than
plain-8 (mean error over the epochs 8.2 vs 4.0), and plain-56 ends at 87% training error
(chance is 90%) in 20 epochs. The ResNets of the same widths, parameters and initial
weights do not: ResNet-20 trains faster than plain-20 and ResNet-56 ends at 0.2% training
error; its test error, 7.0%, is near the shallower nets' (4.7-5.5%).
The numbers above were measured after the CPU conv lowering began to run convs with at
most 16 output pixels per image (the 4x4 and 2x2 stages) as matmuls, which made the
ResNet-20 train step 2.3x faster (interleaved, load ~10); the run before it (200 s at a
lower load) read, in the same order, plain-56 70.9% final / 79.5% mean training error
and 75.6% test error, ResNet-56 0.1%, 5.7% and 5.0%, ResNet-20 test 3.5%. Each net trains
through ``fnnet.train.fit`` (the weight decay as its ``penalty``, the mini-batch training
error as a ``batch_metrics`` entry). The run is sensitive to rounding and to the batch
order: a change of the weight-decay sum's last bit moved plain-56's final error from 80.8%
to 76.6% and ResNet-56's from 0.2% to 0%, the code of 1 December moved plain-56 to 74.6%
and ResNet-56's test error from 4.9% to 6.7%, and the move to ``fit`` (another batch order)
to 70.9% and 5.0%; the matmul lowering of the small stages to 86.9% and 7.0%.
"""
from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import data, losses, nn, optim, train
from fnnet import functional as F
from fnnet.models import cifar_resnet
from fnnet.train.config import check_config, require


CPU_SECONDS = 75  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                     # seed of the initialisation and shuffling
    depths: tuple[int, ...] = (8, 20, 56)  # weighted layers of each plain/ResNet pair, 6n + 2 (8, 14, 20, 32, ...)
    image_size: int = 8               # the 8x8 digits, or upsampled bilinearly by image_size // 8
    learning_rate: float = 0.1        # SGD learning rate after the warm-up, divided by 10 at 1/2 and 3/4 of the steps
    momentum: float = 0.9             # SGD momentum, in [0, 1)
    weight_decay: float = 1e-4        # L2 coefficient on the conv and dense kernels
    batch_size: int = 64              # images per step (the last partial batch is dropped)
    epochs: int = 20                  # passes over the training images
    warmup_epochs: int = 1            # lr / 10 for these epochs first (He et al.'s ResNet-110 warm-up)
    max_train: int | None = None      # use only the first max_train training images (tests)

    def __post_init__(self):
        check_config(self, positive=("depths", "image_size", "learning_rate", "batch_size", "epochs", "max_train"),
                     nonnegative=("weight_decay", "warmup_epochs"), ranges={"momentum": "[0, 1)"},
                     nonempty=("depths",))
        require(self, "depths", all(d % 6 == 2 for d in self.depths), "as 6n + 2 with n >= 1 (8, 14, 20, 32, ...)")
        require(self, "image_size", self.image_size % 8 == 0, "a multiple of 8")
        require(self, "warmup_epochs", 2 * self.warmup_epochs < self.epochs,
                f"< {self.epochs / 2:g}, half the epochs (the first lr decay)")
        n = min(898, self.max_train or 898)
        require(self, "batch_size", self.batch_size <= n, f"<= the {n} training images")


def load(config: Config):
    x, y = data.load_digits(images=True)
    x = np.asarray(F.upsample(jnp.asarray(x / 16.0), config.image_size // 8, "bilinear"))
    n = len(x) // 2
    x_train, y_train, x_test, y_test = x[:n], y[:n], x[n:], y[n:]
    mean, std = x_train.mean(), x_train.std()
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if config.max_train is not None:
        x_train, y_train = x_train[:config.max_train], y_train[:config.max_train]
    return tuple(map(jnp.asarray, (x_train, y_train, x_test, y_test)))


def initial_variables(depth: int, key, example):
    """The initial (params, state) of the plain net of ``depth``, and the same arrays laid
    out as the ResNet's: with option-A shortcuts the two nets have the same weights in the
    same (flattening) order, only nested differently (``residual`` adds a ``"block"`` level)."""
    plain = jax.jit(cifar_resnet(depth, 10, shortcut=False).init)(key, example)
    shapes = jax.eval_shape(cifar_resnet(depth, 10, shortcut=True).init, key, example)
    leaves, structure = jax.tree.leaves(plain), jax.tree.structure(shapes)
    if [(a.shape, a.dtype) for a in leaves] != [(a.shape, a.dtype) for a in jax.tree.leaves(shapes)]:
        raise ValueError(f"resnet_vs_plain: the plain and residual nets of depth {depth} do not have "
                         f"the same variables")
    return plain, jax.tree.unflatten(structure, leaves)


def train_one(model: nn.Module, variables, config: Config, key, x_train, y_train, x_test, y_test) -> dict:
    """Train one net from ``variables = (params, state)``; returns its per-epoch curves
    and final errors (in %)."""
    params, state = variables
    n, b = x_train.shape[0], config.batch_size
    steps_per_epoch = n // b
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_epochs * steps_per_epoch
    boundaries = {int(total * 0.5): 0.1, int(total * 0.75): 0.1}
    if warmup:
        boundaries[warmup] = 10.0
    schedule = optim.piecewise_constant_schedule(config.learning_rate * (0.1 if warmup else 1.0), boundaries)
    opt = optim.sgd(schedule, momentum=config.momentum)

    def error(logits, y):
        return 100 * jnp.mean(jnp.argmax(logits, -1) != y)

    # weight decay on the conv and dense kernels (the default mask leaves out biases and
    # batch-norm scales); the training error of every mini-batch in training mode is a
    # batch metric, the test error uses the batch-norm running statistics
    fitted = train.fit(model, losses.softmax_cross_entropy_with_integer_labels, opt, params, state,
                       (x_train, y_train), key=jax.random.fold_in(key, 1), epochs=config.epochs,
                       batch_size=b, drop_last=True,
                       penalty=lambda p: losses.l2_penalty(p, coefficient=config.weight_decay),
                       dev_data=(x_test, y_test), metrics={"error": error}, train_metrics=False,
                       batch_metrics={"error": error})
    params, state = fitted.params, fitted.state
    curve = [{"train_loss": h["train_loss"], "train_error": h["batch_error"], "test_error": h["dev_error"]}
             for h in fitted.history]
    return {"curve": curve, "params": nn.count_params(params),
            "train_error": curve[-1]["train_error"], "train_loss": curve[-1]["train_loss"],
            "mean_train_error": float(np.mean([c["train_error"] for c in curve])),
            "eval_train_error": float(error(model.apply(params, state, x_train)[0], y_train)),
            "test_error": curve[-1]["test_error"]}


def run(config: Config) -> dict:
    x_train, y_train, x_test, y_test = load(config)
    key = jax.random.key(config.seed)
    result, history = {}, [{"epoch": e + 1} for e in range(config.epochs)]
    for depth in config.depths:
        depth_key = jax.random.fold_in(key, depth)
        init = dict(zip(("plain", "resnet"), initial_variables(depth, jax.random.fold_in(depth_key, 0), x_train[:1])))
        for kind, shortcut in (("plain", False), ("resnet", True)):
            # the same initial weights and the same batches for both kinds: only the shortcuts differ
            out = train_one(cifar_resnet(depth, 10, shortcut=shortcut), init[kind], config,
                            depth_key, x_train, y_train, x_test, y_test)
            tag = f"{kind}{depth}"
            for field in ("train_error", "mean_train_error", "train_loss", "eval_train_error", "test_error",
                          "params"):
                result[f"{field}_{tag}"] = out[field]
            for h, c in zip(history, out["curve"]):
                h[f"{tag}_train_error"] = c["train_error"]
                h[f"{tag}_test_error"] = c["test_error"]
    result["depths"] = list(config.depths)
    result["table"] = table(result)
    result["history"] = history
    return result


def table(result: dict) -> str:
    """A markdown table per depth: the final training error (last epoch's mini-batches),
    the training error averaged over all epochs (how fast it fell) and the test error,
    plain and ResNet, in %."""
    rows = ["| depth | params | train err: plain | ResNet | mean over epochs: plain | ResNet "
            "| test err: plain | ResNet |",
            "|---|---|---|---|---|---|---|---|"]
    for d in result["depths"]:
        cells = [f"{result[f'{field}_{kind}{d}']:.2f}" for field in ("train_error", "mean_train_error", "test_error")
                 for kind in ("plain", "resnet")]
        rows.append(f"| {d} | {result[f'params_resnet{d}']:,} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot(result: dict, out_dir) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in result["history"]]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    for ax, kind, title in ((axes[0], "plain", "plain nets"), (axes[1], "resnet", "ResNets")):
        for i, d in enumerate(result["depths"]):
            ax.plot(epochs, [h[f"{kind}{d}_train_error"] for h in result["history"]], color=f"C{i}",
                    linewidth=0.9, label=f"{kind}-{d} train")
            ax.plot(epochs, [h[f"{kind}{d}_test_error"] for h in result["history"]], color=f"C{i}",
                    linewidth=2, label=f"{kind}-{d} test")
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_xlabel("epoch")
        ax.set_ylabel("error (%)")
        ax.set_title(f"{title} (thin: training, bold: test)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    ax = axes[2]
    for i, (kind, marker) in enumerate((("plain", "o"), ("resnet", "s"))):
        ax.plot(result["depths"], [result[f"train_error_{kind}{d}"] for d in result["depths"]],
                marker=marker, color=f"C{i}", label=f"{kind}: final training error")
        ax.plot(result["depths"], [result[f"mean_train_error_{kind}{d}"] for d in result["depths"]],
                marker=marker, color=f"C{i}", linestyle="--", label=f"{kind}: mean over epochs")
    ax.set_xlabel("depth (weighted layers)")
    ax.set_ylabel("training error (%)")
    ax.set_xticks(result["depths"])
    ax.set_title("training error against depth")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out_dir, "resnet_vs_plain.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
