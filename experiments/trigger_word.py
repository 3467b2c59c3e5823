"""trigger_word: the course's trigger-word detector on synthetic 10-second clips.

Clips from :func:`fnnet.data.synthetic_audio.make_trigger_clips` (4 kHz, background 1/f
noise and hum, 0-4 triggers and 0-2 distractor words synthesised as formant and chirp
patterns, some sharing the trigger's sounds in another order or with a falling chirp);
labels are 1 for the 50 output steps after each trigger ends, as in the course.

Model (the course's shape, narrower): raw audio -> log power spectrogram in the model
(:func:`fnnet.functional.spectral.spectrogram`, ``n_fft`` 64 = 16 ms, hop 16 = 4 ms, no
centring: 2,497 frames of 33 bins per clip) -> batch norm -> Conv1D (32 filters, 5
frames, stride 2: the course's 5,511 -> 1,375 steps becomes 2,497 -> 1,247, so the 50
labelled steps last 0.40 s, the course's 0.36 s) -> batch norm -> ReLU -> two GRU layers
of 32 -> a dense logit per step (sigmoid in the loss). Trained by ``fnnet.train.fit``
with Adam on the mean binary cross-entropy per step. Narrower than the course (196
filters, GRUs of 128) to keep the run to minutes on a shared CPU.

Held-out clips (another seed) are scored two ways: per step (F1 of ``p > 0.5`` against
the labels, precision and recall over all steps) and per event (a run of consecutive
steps with ``p > 0.5`` is a detection; it is a true positive when it overlaps a
trigger's 50-step label window not yet matched, one detection per window; the other
runs are false alarms and the unmatched windows misses).

Shows: a 18,147-parameter detector finds every held-out trigger and ignores the
distractors that share its sounds; its probability rises right after each trigger ends
and stays up for the labelled 50 steps (the figure).
Full run (800 training clips, 8 epochs of batches of 32; 72 s wall by ``fnnet run``
on 2 shared CPU cores at load average ~7, 57 s of it training): on 200 held-out clips
(seed 1; 418 triggers, 210 distractors) event F1 1.000 (418 detections, no false alarm,
no miss) and per-step F1 0.981 (precision 0.982, recall 0.980) (goal F1 >= 0.9: met).
Until the CPU conv's backward ran on the conv library inside ``lax.scan`` (another
rounding in the compiled epochs) the run took 240 s at load ~11 and gave step F1 0.980
(precision 0.975, recall 0.984); then, 600 clips and 6 epochs reached event F1 0.912
and step F1 0.899.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import losses, nn, optim, train
from fnnet.data.synthetic_audio import WORDS, make_trigger_clips
from fnnet.functional.spectral import num_frames, spectrogram
from fnnet.train.config import check_config, require

CPU_SECONDS = 72  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                     # seed of the training clips, the initialisation and the batch order
    test_seed: int = 1                # seed of the held-out clips (a different draw)
    train_clips: int = 800            # training clips of 10 s
    test_clips: int = 200             # held-out clips
    duration: float = 10.0            # seconds per clip
    sample_rate: int = 4000           # samples per second
    n_fft: int = 64                   # STFT frame (and window) length in samples (16 ms)
    hop_length: int = 16              # samples between STFT frames (4 ms)
    conv_filters: int = 32            # Conv1D filters (the course's 196)
    conv_width: int = 5               # Conv1D width in frames (the course's 15 frames of 1.8 ms)
    conv_stride: int = 2              # Conv1D stride (the course's 4)
    gru_hidden: int = 32              # units of each GRU layer (the course's 128)
    label_steps: int = 50             # output steps labelled 1 after each trigger ends
    learning_rate: float = 3e-3       # Adam learning rate
    clip_norm: float = 1.0            # global-norm gradient clipping
    batch_size: int = 32              # clips per step
    epochs: int = 8                   # passes over the training clips
    threshold: float = 0.5            # probability above which a step is a detection

    def __post_init__(self):
        check_config(self, positive=("train_clips", "test_clips", "duration", "sample_rate", "n_fft",
                                     "hop_length", "conv_filters", "conv_width", "conv_stride", "gru_hidden",
                                     "label_steps", "learning_rate", "clip_norm", "batch_size", "epochs"),
                     nonnegative=("seed", "test_seed"), ranges={"threshold": "(0, 1)"})
        require(self, "test_seed", self.test_seed != self.seed, f"a seed other than seed ({self.seed})")
        require(self, "duration", self.duration >= 2.0, ">= 2.0 seconds (a word lasts up to 0.8 s)")
        samples = int(round(self.duration * self.sample_rate))
        require(self, "n_fft", self.n_fft <= samples, f"<= the {samples} samples of a clip")
        frames = 1 + (samples - self.n_fft) // self.hop_length
        require(self, "conv_width", self.conv_width <= frames, f"<= the {frames} spectrogram frames")


def output_steps(config: Config) -> int:
    """``Ty``: the spectrogram's frames after the strided convolution."""
    samples = int(round(config.duration * config.sample_rate))
    frames = num_frames(samples, config.n_fft, config.hop_length, center=False)
    return (frames - config.conv_width) // config.conv_stride + 1


def detector(config: Config) -> nn.Module:
    """audio ``(B, samples)`` -> logits ``(B, Ty)``."""
    front = nn.stateless(lambda x: spectrogram(x, config.n_fft, config.hop_length, center=False, log=True),
                         "log_spectrogram")
    return nn.serial(front, nn.batch_norm(),
                     nn.conv(config.conv_filters, config.conv_width, stride=config.conv_stride),
                     nn.batch_norm(), nn.relu, nn.gru(config.gru_hidden, num_layers=2),
                     nn.dense(1), nn.reshape((-1,)), name="trigger_detector")


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, end)`` (end exclusive) of each run of True in a 1-d bool array."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def event_counts(probs: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[int, int, int]:
    """``(true positives, false alarms, misses)`` over clips (module docstring)."""
    tp = fp = fn = 0
    for p, y in zip(probs, labels):
        windows = runs(y > 0.5)
        used = [False] * len(windows)
        for s, e in runs(p > threshold):
            hit = next((j for j, (ws, we) in enumerate(windows) if not used[j] and s < we and ws < e), None)
            if hit is None:
                fp += 1
            else:
                used[hit] = True
                tp += 1
        fn += used.count(False)
    return tp, fp, fn


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def run(config: Config) -> dict:
    start = time.perf_counter()
    ty = output_steps(config)
    kw = dict(output_steps=ty, duration=config.duration, sample_rate=config.sample_rate,
              label_steps=config.label_steps)
    train_set = make_trigger_clips(config.seed, config.train_clips, **kw)
    test_set = make_trigger_clips(config.test_seed, config.test_clips, **kw)
    data_seconds = time.perf_counter() - start

    model = detector(config)
    key = jax.random.key(config.seed)
    x_train, y_train = jnp.asarray(train_set.audio), jnp.asarray(train_set.labels)
    x_test, y_test = jnp.asarray(test_set.audio), jnp.asarray(test_set.labels)
    params, state = model.init(jax.random.fold_in(key, 0), x_train[:config.batch_size])
    opt = optim.chain(optim.clip_by_global_norm(config.clip_norm), optim.adam(config.learning_rate))

    def step_accuracy(logits, y):
        return jnp.mean((logits > 0) == (y > 0.5))

    fit_start = time.perf_counter()
    fitted = train.fit(model, losses.binary_cross_entropy_with_logits, opt, params, state, (x_train, y_train),
                       key=jax.random.fold_in(key, 1), batch_size=config.batch_size, epochs=config.epochs,
                       compile_epochs=True, dev_data=(x_test, y_test), metrics={"step_accuracy": step_accuracy},
                       train_metrics=False)
    train_seconds = time.perf_counter() - fit_start

    predict = jax.jit(lambda p, s, x: jax.nn.sigmoid(model.apply(p, s, x)[0]))
    probs = np.concatenate([np.asarray(predict(fitted.params, fitted.state, x_test[i:i + 50]))
                            for i in range(0, len(x_test), 50)])
    labels = test_set.labels
    pred = probs > config.threshold
    truth = labels > 0.5
    step_tp, step_fp, step_fn = (int(np.sum(pred & truth)), int(np.sum(pred & ~truth)), int(np.sum(~pred & truth)))
    tp, fp, fn = event_counts(probs, labels, config.threshold)

    i = int(np.argmax([sum(w == 0 for *_, w in ev) + 0.5 * len(ev) for ev in test_set.events[:20]]))
    clip = test_set.audio[i]
    spec = np.asarray(spectrogram(jnp.asarray(clip), config.n_fft, config.hop_length, center=False, log=True))
    example = {"clip": i, "events": [list(e) for e in test_set.events[i]],
               "words": ["trigger" if w == 0 else f"d{w}" for *_, w in test_set.events[i]],
               "spectrogram": spec[::4, :].T.round(2).tolist(), "probs": probs[i].round(4).tolist(),
               "labels": labels[i].tolist(), "sample_rate": config.sample_rate, "duration": config.duration}
    history = [{"epoch": h["epoch"], "train_loss": h["train_loss"], "test_loss": h["dev_loss"],
                "test_step_accuracy": h["dev_step_accuracy"]} for h in fitted.history]
    return {"event_f1": f1(tp, fp, fn), "event_precision": tp / max(tp + fp, 1),
            "event_recall": tp / max(tp + fn, 1), "events": {"true_positives": tp, "false_alarms": fp, "misses": fn},
            "step_f1": f1(step_tp, step_fp, step_fn), "step_precision": step_tp / max(step_tp + step_fp, 1),
            "step_recall": step_tp / max(step_tp + step_fn, 1), "output_steps": ty,
            "test_probs_first": probs[:4].round(4).tolist(),
            "triggers_in_test": int(sum(w == 0 for ev in test_set.events for *_, w in ev)),
            "distractors_in_test": int(sum(w != 0 for ev in test_set.events for *_, w in ev)),
            "words": len(WORDS), "params": nn.count_params(fitted.params), "train_seconds": train_seconds,
            "data_seconds": data_seconds, "total_seconds": time.perf_counter() - start, "history": history,
            "example": example}


def plot(result: dict, out_dir: str) -> list:
    import os
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ex = result["example"]
    spec = np.asarray(ex["spectrogram"])
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(9, 4.8), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    ax0.imshow(spec, origin="lower", aspect="auto", cmap="magma",
               extent=(0, ex["duration"], 0, ex["sample_rate"] / 2))
    for s, e, w in ex["events"]:
        name = "trigger" if w == 0 else f"d{w}"
        ax0.axvspan(s / ex["sample_rate"], e / ex["sample_rate"], ymin=0.93, ymax=1.0,
                    color="lime" if w == 0 else "cyan", alpha=0.9)
        ax0.text(s / ex["sample_rate"], ex["sample_rate"] / 2 * 0.84, name, fontsize=7,
                 color="lime" if w == 0 else "cyan")
    ax0.set_ylabel("frequency (Hz)")
    ax0.set_title(f"trigger_word: held-out clip {ex['clip']}; event F1 {result['event_f1']:.3f}, "
                  f"step F1 {result['step_f1']:.3f} on {result['triggers_in_test']} held-out triggers", fontsize=9)
    t = np.arange(len(ex["probs"])) * ex["duration"] / len(ex["probs"])
    ax1.fill_between(t, 0, ex["labels"], color="0.8", label="label (50 steps after each trigger)")
    ax1.plot(t, ex["probs"], color="C3", lw=1, label="predicted probability")
    ax1.set_ylim(-0.05, 1.05)
    ax1.set_xlabel("time (s)")
    ax1.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    path = os.path.join(out_dir, "trigger_word.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return [path]
