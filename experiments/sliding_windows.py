"""sliding_windows: the convolutional sliding window scores every crop in one pass, equal to the crop loop.

The course's sliding-windows lesson (after Sermanet et al. 2014, OverFeat). A
classifier of ``window x window`` RGB crops (the course's network: a 5x5 conv of 16
channels, 2x2 max-pool, dense 400, dense 400, softmax over 4 classes) has its dense
layers turned into convolutions: the first into a ``(window - 4) / 2``-square
convolution of 400 channels (:func:`fnnet.vision.detection.dense_to_conv`), the
second and the softmax layer into 1x1 convolutions. Run on a whole image, the
convolutional network gives the class scores of every crop at a stride of 2 pixels
(the pool's) in one pass, sharing the computation of overlapping crops.

Three ways to score every crop of a batch of ``image_size`` images, with the same
random weights (the point is the equality and the cost; training does not change
either):

- ``loop``: for each crop position, slice the crops and call the jitted classifier
  (the textbook sliding window: one dispatch per position);
- ``batched crops``: gather every crop (:func:`fnnet.vision.detection.sliding_windows`)
  and classify them as one batch (one dispatch, but every overlapping pixel
  recomputed);
- ``convolutional``: one pass of the convolutional network.

Reported: the largest difference of the three outputs (float32; the float64 test
shows they agree to 1e-12, the float32 gap is rounding) and the median time of each.

Full run (default config: 16 images of 28 x 28, 14 x 14 crops, 8 x 8 = 64 positions;
14 s wall on 2 CPU cores shared at load average ~10, most of it imports and
compilation): the three outputs agree to 3.9e-7 (float32); median times 18.4 ms (loop
over positions), 11.2 ms (all crops as one batch), 4.0 ms (convolutional): the
convolutional pass is 4.6x faster than the loop and 2.8x faster than classifying the
gathered crops. (Before the CPU conv lowering sent convs with at most 16 output
pixels per image, the classifier's on one crop, to the matmul form: 62.5, 54.2 and
19.5 ms at load ~18, 3.2x and 2.8x.)
"""
from __future__ import annotations

import dataclasses
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import functional as F
from fnnet import nn
from fnnet.train.config import check_config, require
from fnnet.vision.detection import dense_to_conv, sliding_windows

CPU_SECONDS = 15  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0              # seed of the weights and the images
    window: int = 14           # crop side (the course's 14)
    image_size: int = 28       # image side (the course's 28: 8 x 8 crop positions)
    images: int = 16           # images per batch
    conv_features: int = 16    # channels of the 5x5 conv
    hidden: int = 400          # width of the two dense layers
    classes: int = 4           # softmax classes
    rounds: int = 5            # timed rounds (interleaved; medians)

    def __post_init__(self):
        check_config(self, positive=("window", "image_size", "images", "conv_features", "hidden", "classes",
                                     "rounds"), nonnegative=("seed",))
        require(self, "window", self.window >= 6 and self.window % 2 == 0, "an even number >= 6")
        require(self, "image_size", self.image_size >= self.window and (self.image_size - self.window) % 2 == 0,
                f">= window ({self.window}) with an even difference")


def init_params(config: Config, key) -> dict:
    """The crop classifier's weights (He normal, as fnnet.nn's defaults)."""
    pooled = (config.window - 4) // 2
    model = nn.serial(nn.conv(config.conv_features, 5), nn.relu, nn.max_pool(2), nn.flatten,
                      nn.dense(config.hidden), nn.relu, nn.dense(config.hidden), nn.relu, nn.dense(config.classes))
    params, _ = model.init(key, jax.ShapeDtypeStruct((1, config.window, config.window, 3), jnp.float32))
    assert params["4"]["kernel"].shape[0] == pooled * pooled * config.conv_features
    return params


def classify_crops(params, crops):
    """``(N, k, k, 3)`` crops -> ``(N, classes)`` probabilities (flatten + dense layers)."""
    h = F.max_pool(jax.nn.relu(F.conv(crops, params["0"]["kernel"], params["0"]["bias"])), 2)
    h = h.reshape(h.shape[0], -1)
    h = jax.nn.relu(F.dense(h, params["4"]["kernel"], params["4"]["bias"]))
    h = jax.nn.relu(F.dense(h, params["6"]["kernel"], params["6"]["bias"]))
    return jax.nn.softmax(F.dense(h, params["8"]["kernel"], params["8"]["bias"]), axis=-1)


def convolutional(params, images, pooled: int):
    """``(B, H, W, 3)`` images -> ``(B, oh, ow, classes)``: every crop at stride 2, one pass."""
    h = F.max_pool(jax.nn.relu(F.conv(images, params["0"]["kernel"], params["0"]["bias"])), 2)
    h = jax.nn.relu(F.conv(h, dense_to_conv(params["4"]["kernel"], pooled), params["4"]["bias"]))
    h = jax.nn.relu(F.conv(h, dense_to_conv(params["6"]["kernel"], 1), params["6"]["bias"]))
    return jax.nn.softmax(F.conv(h, dense_to_conv(params["8"]["kernel"], 1), params["8"]["bias"]), axis=-1)


def run(config: Config) -> dict:
    key = jax.random.key(config.seed)
    params = init_params(config, jax.random.fold_in(key, 0))
    images = jax.random.uniform(jax.random.fold_in(key, 1), (config.images, config.image_size, config.image_size, 3))
    k, pooled = config.window, (config.window - 4) // 2
    positions = (config.image_size - k) // 2 + 1

    classify = jax.jit(classify_crops)
    conv_pass = jax.jit(lambda p, x: convolutional(p, x, pooled))
    batched = jax.jit(lambda p, x: classify_crops(p, sliding_windows(x, k, 2).reshape(-1, k, k, 3)).reshape(
        x.shape[0], positions, positions, -1))

    def loop(p, x):
        out = np.zeros((x.shape[0], positions, positions, config.classes), np.float32)
        for i in range(positions):
            for j in range(positions):
                out[:, i, j] = np.asarray(classify(p, x[:, 2 * i:2 * i + k, 2 * j:2 * j + k]))
        return out

    outputs = {"loop": loop(params, images), "batched_crops": np.asarray(batched(params, images)),
               "convolutional": np.asarray(conv_pass(params, images))}
    diffs = {name: float(np.max(np.abs(v - outputs["loop"]))) for name, v in outputs.items() if name != "loop"}
    variants = {"loop": lambda: loop(params, images),
                "batched_crops": lambda: jax.block_until_ready(batched(params, images)),
                "convolutional": lambda: jax.block_until_ready(conv_pass(params, images))}
    times = {name: [] for name in variants}
    names = list(variants)
    for r in range(config.rounds):
        for name in names[r % 3:] + names[:r % 3]:
            t0 = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - t0)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    return {"crop_positions": positions * positions, "max_abs_diff": diffs,
            "median_seconds": median,
            "speedup_over_loop": {n: median["loop"] / median[n] for n in ("batched_crops", "convolutional")},
            "speedup_conv_over_batched": median["batched_crops"] / median["convolutional"],
            "load_average": list(os.getloadavg())}
