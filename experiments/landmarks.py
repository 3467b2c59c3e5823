"""landmarks: classification with localisation and five facial landmarks on synthetic faces.

The course's localisation and landmark-detection lessons: one network outputs whether
an object is present (``p_c``), its box ``(b_x, b_y, b_w, b_h)``, the positions of
``K`` landmarks, and its class. Scenes are 32 x 32 RGB images rendered in NumPy with
noise and clutter; 80% hold one cartoon face (a skin-coloured ellipse 10 to 20 pixels
wide, tilted up to 25 degrees, with two dark eyes, a nose and a mouth), the rest none.
The five landmarks are MTCNN's: left eye, right eye, nose tip, left and right mouth
corners. The class is the face's expression (smiling or frowning mouth).

The network (channels-last ``fnnet.nn``): three 3x3 conv / batch-norm / ReLU blocks
with 2x2 max-pools, a dense layer of 128 and
:func:`fnnet.vision.detection.localization_head` (``1 + 4 + 2 x 5 + 2`` outputs),
trained by ``fnnet.train.fit`` on :func:`fnnet.vision.detection.localization_loss`
(logistic loss on ``p_c``; squared error on the box and landmarks in units of the
image side, weighted 10 and 10; cross-entropy on the class, all three only when a face
is present).

Shows: the same network that classifies also regresses the box and the landmarks;
the error is reported in pixels on held-out faces.

Full run (default config: 6,000 training images, 2,000 steps of 64, 157,089 params;
307 s wall on 2 CPU cores shared at load average ~12, 290 s of it training): on the
1,000 held-out images (800 faces) presence accuracy 99.5%, mean landmark error 1.79
pixels (0.31 of the inter-ocular distance), box centre error 1.47 pixels, mean box
IoU 0.757 (97.0% of boxes above 0.5). The expression is barely learned: class
accuracy 58.3% (chance 50%); the mouth's bend is 2 to 4 pixels on these faces and the
class term is a small share of the loss.
"""
from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import nn, optim, train
from fnnet.train.config import check_config, require
from fnnet.vision.boxes import box_iou
from fnnet.vision.detection import localization_head, localization_loss

CPU_SECONDS = 307  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it

LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
CLASSES = ("smiling", "frowning")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                   # seed of the training images, the initialisation and the batch order
    test_seed: int = 1              # seed of the held-out images
    image_size: int = 32            # image side in pixels
    train_images: int = 6000        # rendered training images
    test_images: int = 1000         # held-out images
    face_fraction: float = 0.8      # share of images holding a face
    noise: float = 0.05             # standard deviation of the pixel noise
    width: int = 16                 # channels of the first conv block (then 2x, 4x)
    steps: int = 2000               # optimizer steps
    batch_size: int = 64            # images per step
    learning_rate: float = 2e-3     # peak Adam learning rate (cosine decay)
    box_weight: float = 10.0        # weight of the box term
    landmark_weight: float = 10.0   # weight of the landmark term
    log_every: int = 250            # steps per history entry

    def __post_init__(self):
        check_config(self, positive=("image_size", "train_images", "test_images", "width", "steps", "batch_size",
                                     "learning_rate", "log_every"),
                     nonnegative=("seed", "test_seed", "noise", "box_weight", "landmark_weight"),
                     ranges={"face_fraction": "(0, 1]"})
        require(self, "test_seed", self.test_seed != self.seed, f"a seed other than seed ({self.seed})")
        require(self, "image_size", self.image_size % 8 == 0 and self.image_size >= 24,
                "a multiple of 8, at least 24")
        require(self, "log_every", self.log_every <= self.steps, f"<= steps ({self.steps})")


def render_faces(n: int, seed: int, config: Config):
    """Images ``(n, S, S, 3)`` uint8 and targets ``(n, 6 + 10)``:
    ``(p_c, cx, cy, w, h, 5 x (x, y), class)`` in units of the image side."""
    rng = np.random.default_rng(seed)
    s = config.image_size
    yy, xx = np.mgrid[0:s, 0:s] + 0.5
    images = np.empty((n, s, s, 3), np.uint8)
    targets = np.zeros((n, 6 + 2 * len(LANDMARKS)), np.float32)
    for k in range(n):
        canvas = np.ones((s, s, 3)) * rng.uniform(0.2, 0.8, 3)
        for _ in range(3):                                   # clutter: random grey rectangles
            x0, y0 = rng.integers(0, s, 2)
            canvas[y0:y0 + rng.integers(1, 5), x0:x0 + rng.integers(1, 5)] = rng.uniform(0, 1)
        if rng.random() < config.face_fraction:
            a = rng.uniform(5, 10)                            # half width
            b = a * rng.uniform(1.1, 1.3)                     # half height
            cx, cy = rng.uniform(b, s - b, 2)
            theta = np.deg2rad(rng.uniform(-25, 25))
            c, si = np.cos(theta), np.sin(theta)
            u = (xx - cx) * c + (yy - cy) * si                # face coordinates
            v = -(xx - cx) * si + (yy - cy) * c
            canvas[(u / a) ** 2 + (v / b) ** 2 <= 1] = np.array([0.95, 0.75, 0.6]) * rng.uniform(0.8, 1.0)

            def to_image(pu, pv):
                return cx + pu * c - pv * si, cy + pu * si + pv * c

            smiling = rng.random() < 0.5
            marks = [(-0.4 * a, -0.3 * b), (0.4 * a, -0.3 * b), (0.0, 0.1 * b),
                     (-0.4 * a, 0.5 * b), (0.4 * a, 0.5 * b)]
            for pu, pv in marks[:2]:                          # eyes
                canvas[(u - pu) ** 2 + (v - pv) ** 2 <= (0.14 * a + 0.5) ** 2] = 0.05
            canvas[(u - marks[2][0]) ** 2 + (v - marks[2][1]) ** 2 <= (0.1 * a + 0.5) ** 2] = (0.7, 0.3, 0.2)
            # mouth: a parabola through both corners, bending down (smile) or up (frown)
            depth = 0.3 * b * (1 if smiling else -1)
            t = u / (0.4 * a)
            curve = 0.5 * b + depth * (1 - t ** 2)            # the corners at v = b / 2
            mouth = (np.abs(t) <= 1) & (np.abs(v - curve) <= 0.06 * b + 0.6)
            canvas[mouth] = (0.5, 0.05, 0.1)
            points = [to_image(pu, pv) for pu, pv in marks]
            # box: the tilted ellipse's extent
            hw = np.sqrt((a * c) ** 2 + (b * si) ** 2)
            hh = np.sqrt((a * si) ** 2 + (b * c) ** 2)
            targets[k, :5] = [1.0, cx / s, cy / s, 2 * hw / s, 2 * hh / s]
            targets[k, 5:5 + 2 * len(LANDMARKS)] = np.ravel(points) / s
            targets[k, -1] = 0 if smiling else 1
        canvas += rng.normal(0, config.noise, canvas.shape)
        images[k] = np.clip(np.round(canvas * 255), 0, 255).astype(np.uint8)
    return images, targets


def network(config: Config) -> nn.Module:
    w = config.width

    def block(features):
        return [nn.conv(features, 3, padding="SAME", use_bias=False), nn.batch_norm(), nn.relu, nn.max_pool(2)]

    return nn.serial(nn.activation(lambda x: x.astype(jnp.float32) / 255.0, "to_float"),
                     *block(w), *block(2 * w), *block(4 * w), nn.flatten, nn.dense(128), nn.relu,
                     localization_head(len(CLASSES), len(LANDMARKS)))


def run(config: Config) -> dict:
    start = time.perf_counter()
    x_train, y_train = render_faces(config.train_images, config.seed, config)
    x_test, y_test = render_faces(config.test_images, config.test_seed, config)
    model = network(config)
    key = jax.random.key(config.seed)
    params, state = model.init(jax.random.fold_in(key, 0), jnp.asarray(x_train[:config.batch_size]))
    k = len(LANDMARKS)

    def loss_fn(out, y):
        return localization_loss(out, y, num_classes=len(CLASSES), num_landmarks=k,
                                 box_weight=config.box_weight, landmark_weight=config.landmark_weight)

    schedule = optim.cosine_decay_schedule(config.learning_rate, config.steps, alpha=0.01)
    fit_start = time.perf_counter()
    fitted = train.fit(model, loss_fn, optim.adam(schedule), params, state, (x_train, y_train),
                       key=jax.random.fold_in(key, 1), batch_size=config.batch_size, steps=config.steps,
                       eval_every=config.log_every, dev_data=(x_test, y_test), drop_last=True)
    train_seconds = time.perf_counter() - fit_start
    out = np.asarray(jax.jit(lambda p, s, x: model.apply(p, s, x)[0])(fitted.params, fitted.state,
                                                                       jnp.asarray(x_test)))
    s = config.image_size
    present = y_test[:, 0] > 0.5
    predicted = out[:, 0] > 0
    marks_true = y_test[present, 5:5 + 2 * k].reshape(-1, k, 2) * s
    marks_pred = out[present, 5:5 + 2 * k].reshape(-1, k, 2) * s
    distance = np.linalg.norm(marks_pred - marks_true, axis=-1)            # pixels, (faces, K)

    def corners(b):
        return np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2,
                         b[:, 1] + b[:, 3] / 2], -1) * s

    true_boxes, pred_boxes = corners(y_test[present, 1:5]), corners(np.maximum(out[present, 1:5], 0))
    ious = np.diagonal(np.asarray(box_iou(jnp.asarray(pred_boxes), jnp.asarray(true_boxes))))
    eye_distance = np.linalg.norm(marks_true[:, 0] - marks_true[:, 1], axis=-1)
    return {"presence_accuracy": float(np.mean(predicted == present)),
            "class_accuracy": float(np.mean(np.argmax(out[present, 5 + 2 * k:], -1) == y_test[present, -1])),
            "landmark_error_px": float(distance.mean()),
            "landmark_error_px_each": dict(zip(LANDMARKS, distance.mean(0).round(3).tolist())),
            "landmark_error_interocular": float(np.mean(distance.mean(1) / eye_distance)),
            "box_center_error_px": float(np.mean(np.linalg.norm((out[present, 1:3] - y_test[present, 1:3]) * s,
                                                                axis=-1))),
            "box_mean_iou": float(ious.mean()), "box_iou_above_0.5": float(np.mean(ious > 0.5)),
            "test_faces": int(present.sum()), "params": nn.count_params(fitted.params),
            "train_seconds": train_seconds, "total_seconds": time.perf_counter() - start,
            "load_average": list(os.getloadavg()),
            "history": [{"step": h["step"], "train_loss": h["train_loss"], "test_loss": h["dev_loss"]}
                        for h in fitted.history],
            "examples": {"targets": y_test[:8].tolist(), "outputs": out[:8].tolist()},
            "config": dataclasses.asdict(config)}


def plot(result: dict, out_dir: str) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt
    config = Config(**result["config"])
    images, _ = render_faces(8, config.test_seed, config)
    s, k = config.image_size, len(LANDMARKS)
    fig, axes = plt.subplots(1, 8, figsize=(16, 2.4))
    for ax, img, t, o in zip(axes, images, result["examples"]["targets"], result["examples"]["outputs"]):
        ax.imshow(img)
        t, o = np.asarray(t), np.asarray(o)
        if t[0] > 0:
            m = t[5:5 + 2 * k].reshape(k, 2) * s - 0.5
            ax.plot(m[:, 0], m[:, 1], "wo", ms=4, mfc="none")
        if o[0] > 0:
            m = o[5:5 + 2 * k].reshape(k, 2) * s - 0.5
            ax.plot(m[:, 0], m[:, 1], "c+", ms=6)
            cx, cy, w, h = o[1:5] * s
            ax.add_patch(patches.Rectangle((cx - w / 2 - 0.5, cy - h / 2 - 0.5), w, h, fill=False, edgecolor="c"))
            ax.set_title(f"{CLASSES[int(np.argmax(o[5 + 2 * k:]))]} p={1 / (1 + np.exp(-o[0])):.2f}", fontsize=7)
        else:
            ax.set_title(f"no face p={1 / (1 + np.exp(-o[0])):.2f}", fontsize=7)
        ax.set_xlim(-0.5, s - 0.5)
        ax.set_ylim(s - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"landmarks: predicted box and landmarks (cyan) vs truth (white circles); mean landmark error "
                 f"{result['landmark_error_px']:.2f} px", fontsize=9)
    path = os.path.join(out_dir, "landmarks.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return [path]
