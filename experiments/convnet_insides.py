"""convnet_insides: the filters, activation maps, saliency, Grad-CAM and occlusion maps of the trained LeNet-5.

The network and data are ``lenet_digits``' (LeNet-5 classic, tanh and average
pooling, on scikit-learn's 8x8 digits upsampled to 32x32 and standardised; first half
trains, second half tests), trained here by the same ``fnnet.train.fit`` call with the
same augmentation for ``epochs`` epochs (``lenet_digits.run`` returns only numbers).
For a few test digits the experiment shows (``fnnet.vision.explain``):

- the six 5x5 C1 filters and the C1 and C3 activation maps
  (``fnnet.vision.features.layer_outputs``, layers by name);
- saliency, ``max_c |dS_y/dx|`` (Simonyan et al. 2014);
- Grad-CAM at C3's activation (Selvaraju et al. 2017), resized from 10x10 to 32x32;
- occlusion: the drop of the class logit when an 8x8 patch (value 0, the mean of the
  standardised input) covers each position, stride 2 (Zeiler & Fergus 2014).

``saliency_on_ink`` is the share of the saliency mass on the digit's strokes (pixels
above the mean) divided by the share of those pixels: above 1 means the gradient sits
on the digit. ``cam_occlusion_corr`` is the Pearson correlation of the Grad-CAM and
occlusion maps (both at 13x13) over the shown digits: the two methods agree where it
is positive.

Full run (seed 0, 30 epochs; 57 s wall on 2 CPU cores shared at a load average of
~10, 28 s of it training; 149 s and 111 s at a load of ~18 before the CPU conv
lowering ran C5, a 5x5 conv over a 5x5 map, as a matmul; the numbers below came out
the same to the digits printed): test accuracy 97.7% (lenet_digits' 100 epochs reach
98.1%); the four digits 0-3 are classified right with probabilities 0.96-1.00. The
C1 filters moved 20% (relative Frobenius norm) from their He-normal start, so they
still look random at 5x5; their maps show the digit, its complement and edges at
several orientations. Saliency lies on the strokes: 1.29, 1.15,
1.13, 1.36 times the share of stroke pixels (mean 1.23). Grad-CAM at C3's activation
and occlusion agree only weakly (correlation 0.13 over the four 13x13 maps; -0.07 with
Grad-CAM on C3 before the tanh): on a 10x10 map of a two-conv tanh network Grad-CAM
is coarse.
"""
from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import nn
from fnnet.train.config import check_config, require
from fnnet.vision import explain
from fnnet.vision.features import layer_outputs

CPU_SECONDS = 57  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it

# lenet5(variant="classic") as a layer list (a Module hides its children): the same
# children in the same order, so serial(*LAYERS) takes its params as they are (run()
# checks that the logits agree).
LAYERS = [nn.conv(6, 5), nn.tanh, nn.avg_pool(2), nn.conv(16, 5), nn.tanh, nn.avg_pool(2), nn.flatten,
          nn.dense(120), nn.tanh, nn.dense(84), nn.tanh, nn.dense(10)]
NAMES = ("C1", "tanh1", "S2", "C3", "tanh3", "S4", "flatten", "C5", "tanh5", "F6", "tanh6", "output")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                       # seed of the initialisation, shuffling and augmentation
    epochs: int = 30                    # training epochs (lenet_digits trains 100)
    learning_rate: float = 2e-3         # peak Adam learning rate, cosine-decayed to 0
    batch_size: int = 32                # images per step
    max_shift: int = 3                  # random translation of the training images (0: none)
    max_degrees: float = 10.0           # random rotation (0: none)
    examples: int = 4                   # test digits shown (the first test image of classes 0, 1, ...)
    cam_layer: str = "tanh3"            # Grad-CAM layer (a conv or its activation)
    patch: int = 8                      # occlusion patch side, pixels of 32
    stride: int = 2                     # occlusion stride
    max_train: int | None = None        # use only the first max_train training images (tests)

    def __post_init__(self):
        check_config(self, positive=("epochs", "learning_rate", "batch_size", "examples", "patch", "stride",
                                     "max_train"),
                     nonnegative=("seed", "max_shift", "max_degrees"),
                     choices={"cam_layer": ("C1", "tanh1", "S2", "C3", "tanh3", "S4")})
        require(self, "examples", self.examples <= 10, "<= 10 (one digit per class)")
        require(self, "patch", self.patch <= 32, "<= 32 (the image side)")


def _lenet_digits():
    from fnnet.cli import load_experiment
    return load_experiment("lenet_digits")


def train_lenet(config: Config):
    """lenet_digits' training (data, model, optimizer, augmentation hook) for ``epochs``:
    ``(model, fitted, (x_test, y_test))``."""
    ld = _lenet_digits()
    ld_config = ld.Config(seed=config.seed, epochs=config.epochs, learning_rate=config.learning_rate,
                          batch_size=config.batch_size, max_shift=config.max_shift,
                          max_degrees=config.max_degrees, max_train=config.max_train)
    model, fitted, (_, _, x_test, y_test) = ld.train_lenet(ld_config, progress=False)
    return model, fitted, (x_test, y_test)


def _corr(a, b) -> float:
    a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b) + 1e-30))


def run(config: Config) -> dict:
    start = time.perf_counter()
    model, fitted, (x_test, y_test) = train_lenet(config)
    train_seconds = time.perf_counter() - start
    params, state = fitted.params, fitted.state
    net = nn.serial(*LAYERS)
    logits = jax.jit(lambda v: model.apply(params, state, v)[0])(x_test)
    logits_fn = jax.jit(lambda v: net.apply(params, state, v)[0])
    layer_list_error = float(jnp.max(jnp.abs(logits_fn(x_test) - logits)))
    if layer_list_error > 1e-4:
        raise RuntimeError(f"convnet_insides: LAYERS do not reproduce lenet5's logits (max difference "
                           f"{layer_list_error})")
    y_np = np.asarray(y_test)
    picks = [int(np.nonzero(y_np == c)[0][0]) for c in range(config.examples)]
    x = x_test[np.asarray(picks)]
    target = jnp.asarray(y_np[picks])

    @jax.jit
    def inspect_all(x):
        acts = layer_outputs(LAYERS, params, state, x, ["C1", "tanh1", "C3", "tanh3"], layer_names=NAMES)
        sal = explain.saliency(logits_fn, x, target)
        cam = explain.grad_cam(LAYERS, params, state, x, config.cam_layer, target, layer_names=NAMES)
        occ = explain.occlusion(logits_fn, x, target, patch=config.patch, stride=config.stride)
        return acts, sal, cam, occ, jax.nn.softmax(logits_fn(x))

    acts, sal, cam, occ, probs = (jax.tree.map(np.asarray, v) for v in inspect_all(x))
    images = np.asarray(x)[..., 0]
    ink = images > images.mean(axis=(1, 2), keepdims=True)
    on_ink = [float(sal[i][ink[i]].sum() / sal[i].sum() / ink[i].mean()) for i in range(len(picks))]
    n_occ = occ.shape[1]
    cam_small = np.asarray(jax.image.resize(jnp.asarray(cam), (len(picks), n_occ, n_occ), "linear"))
    corr = _corr(cam_small, occ)
    filters = np.asarray(explain.filters(params, "C1", layers=LAYERS, layer_names=NAMES))[..., 0]
    initial, _ = model.init(jax.random.fold_in(jax.random.key(config.seed), 0), x_test[:1])
    filter_change = float(jnp.linalg.norm(params["0"]["kernel"] - initial["0"]["kernel"]) /
                          jnp.linalg.norm(initial["0"]["kernel"]))
    history = [{"epoch": h["epoch"], "train_loss": h["train_loss"], "test_accuracy": 100 * h["dev_accuracy"]}
               for h in fitted.history]
    return {"test_accuracy": history[-1]["test_accuracy"], "layer_list_max_error": layer_list_error,
            "saliency_on_ink": on_ink, "saliency_on_ink_mean": float(np.mean(on_ink)),
            "cam_occlusion_corr": corr, "c1_filter_change": filter_change, "labels": y_np[picks].tolist(),
            "predicted": probs.argmax(1).tolist(), "probability": probs.max(1).round(4).tolist(),
            "maps": {"image": images.round(3).tolist(), "filters": filters.round(4).tolist(),
                     "C1": acts["tanh1"].round(3).tolist(), "C3": acts["tanh3"].round(3).tolist(),
                     "saliency": sal.round(5).tolist(), "grad_cam": cam.round(5).tolist(),
                     "occlusion": occ.round(4).tolist()},
            "train_seconds": train_seconds, "total_seconds": time.perf_counter() - start, "history": history}


def plot(result: dict, out_dir: str) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    m = {k: np.asarray(v) for k, v in result["maps"].items()}
    n = m["image"].shape[0]
    cols = 1 + 6 + 4 + 3
    fig, axes = plt.subplots(n + 1, cols, figsize=(cols * 1.05, (n + 1) * 1.15))
    for ax in axes.ravel():
        ax.axis("off")
    for k in range(6):
        axes[0, 1 + k].imshow(m["filters"][k], cmap="gray")
        axes[0, 1 + k].set_title(f"C1 filter {k}", fontsize=6)
    for i in range(n):
        row = axes[i + 1]
        row[0].imshow(m["image"][i], cmap="gray")
        row[0].set_title(f"digit {result['labels'][i]} (p={result['probability'][i]:.2f})", fontsize=6)
        for k in range(6):
            row[1 + k].imshow(m["C1"][i, :, :, k], cmap="RdBu_r", vmin=-1, vmax=1)
        for k in range(4):
            row[7 + k].imshow(m["C3"][i, :, :, k], cmap="RdBu_r", vmin=-1, vmax=1)
        row[11].imshow(m["saliency"][i], cmap="hot")
        row[12].imshow(m["image"][i], cmap="gray")
        row[12].imshow(m["grad_cam"][i], cmap="jet", alpha=0.5)
        row[13].imshow(m["occlusion"][i], cmap="RdBu_r", vmin=-np.abs(m["occlusion"][i]).max(),
                       vmax=np.abs(m["occlusion"][i]).max())
        if i == 0:
            for j, t in ((1, "C1 maps"), (7, "C3 maps 0-3"), (11, "saliency"), (12, "Grad-CAM"),
                         (13, "occlusion")):
                row[j].set_title(t, fontsize=6)
    fig.suptitle(f"LeNet-5 on digits: test accuracy {result['test_accuracy']:.1f}%; saliency on ink "
                 f"{result['saliency_on_ink_mean']:.2f}x; Grad-CAM/occlusion corr {result['cam_occlusion_corr']:.2f}",
                 fontsize=8)
    fig.tight_layout()
    path = os.path.join(out_dir, "convnet_insides.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
