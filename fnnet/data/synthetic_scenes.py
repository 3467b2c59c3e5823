"""Synthetic captioning scenes: two coloured shapes, and the sentences that describe them.

Each image (``image_size`` square, RGB in [0, 1], channels last) holds two objects
on a dark noisy background, each a colour of :data:`COLORS` and a shape of
:data:`SHAPES`, not both the same, one clearly above, below, to the left or to the
right of the other (the separation along that axis is at least twice the offset
across it). The grammar has one sentence form::

    caption  := "a" COLOR SHAPE RELATION "a" COLOR SHAPE
    RELATION := "above" | "below" | "to the left of" | "to the right of"

so every scene has exactly two true captions, "a red circle above a blue square" and
"a blue square below a red circle": both are the scene's references, and its training
caption is one of them drawn with the scene. Captions are lists of words; the
vocabulary :data:`VOCAB` starts with ``<pad>``, ``<start>``, ``<end>``.

Imports: numpy.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["COLORS", "SHAPES", "RELATIONS", "VOCAB", "Scenes", "make_scenes", "draw_shape", "encode_captions",
           "decode_caption"]

COLORS = {"red": (0.95, 0.15, 0.1), "green": (0.1, 0.8, 0.2), "blue": (0.2, 0.35, 1.0),
          "yellow": (0.95, 0.9, 0.1)}
SHAPES = ("circle", "square", "triangle", "cross")
RELATIONS = {"above": "below", "below": "above", "to the left of": "to the right of",
             "to the right of": "to the left of"}
VOCAB = ("<pad>", "<start>", "<end>", "a", *COLORS, *SHAPES, "above", "below", "to", "the", "left", "right", "of")
PAD, START, END = 0, 1, 2


class Scenes(NamedTuple):
    """``images (N, S, S, 3)`` float32; ``captions``: the training caption of each scene
    (a list of words); ``references``: its two true captions; ``objects``: its two
    ``(color, shape, row, col)`` (centre in pixels)."""
    images: np.ndarray
    captions: list
    references: list
    objects: list


def draw_shape(image: np.ndarray, shape: str, color, row: float, col: float, radius: float) -> None:
    """Paint ``shape`` of ``radius`` centred at ``(row, col)`` into ``image (S, S, 3)``, in place."""
    size = image.shape[0]
    y, x = np.mgrid[:size, :size].astype(np.float64)
    dy, dx = y - row, x - col
    if shape == "circle":
        mask = dy ** 2 + dx ** 2 <= radius ** 2
    elif shape == "square":
        mask = (np.abs(dy) <= 0.8 * radius) & (np.abs(dx) <= 0.8 * radius)
    elif shape == "triangle":                     # apex up, base at the bottom
        mask = (dy >= -radius) & (dy <= 0.8 * radius) & (np.abs(dx) <= 0.55 * (dy + radius))
    elif shape == "cross":
        arm = 0.35 * radius
        mask = ((np.abs(dx) <= arm) & (np.abs(dy) <= radius)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= radius))
    else:
        raise ValueError(f"draw_shape: expected a shape in {SHAPES}, got {shape!r}")
    image[mask] = color


def _caption(a, relation: str, b) -> list:
    return ["a", a[0], a[1], *relation.split(), "a", b[0], b[1]]


def make_scenes(seed: int, num_scenes: int, *, image_size: int = 24, radius: tuple = (3.0, 4.0),
                noise: float = 0.03) -> Scenes:
    """``num_scenes`` scenes drawn from ``seed`` (module docstring).

    Args:
      seed: the NumPy seed; the same seed gives the same scenes, bit for bit.
      num_scenes: ``N``.
      image_size: ``S``, at least 16.
      radius: the objects' radius is drawn uniformly in this ``(low, high)`` range (pixels).
      noise: standard deviation of the background's Gaussian noise.

    Returns:
      :class:`Scenes`.
    """
    name = "make_scenes"
    for what, v, low in (("seed", seed, 0), ("num_scenes", num_scenes, 1), ("image_size", image_size, 16)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name}: expected {what} as an int >= {low}, got {v!r}")
    if len(radius) != 2 or not 1.0 <= radius[0] <= radius[1] <= image_size / 6:
        raise ValueError(f"{name}: expected radius (low, high) with 1 <= low <= high <= image_size / 6 = "
                         f"{image_size / 6:g}, got {radius!r}")
    rng = np.random.default_rng(seed)
    images = np.zeros((num_scenes, image_size, image_size, 3), np.float32)
    captions, references, objects = [], [], []
    kinds = [(c, s) for c in COLORS for s in SHAPES]
    for n in range(num_scenes):
        i, j = rng.choice(len(kinds), 2, replace=False)
        a, b = kinds[i], kinds[j]
        r = rng.uniform(*radius, size=2)
        margin = radius[1] + 1
        lo, hi = margin, image_size - 1 - margin
        while True:                                   # a's and b's centres; a on the lesser side
            main_a, main_b = np.sort(rng.uniform(lo, hi, size=2))
            cross_a, cross_b = rng.uniform(lo, hi, size=2)
            sep, off = main_b - main_a, abs(cross_b - cross_a)
            if sep >= 2 * radius[1] + 2 and sep >= 2 * off:
                break
        vertical = rng.random() < 0.5
        pa = (main_a, cross_a) if vertical else (cross_a, main_a)
        pb = (main_b, cross_b) if vertical else (cross_b, main_b)
        relation = "above" if vertical else "to the left of"
        image = np.full((image_size, image_size, 3), rng.uniform(0.0, 0.2), np.float64)
        image += rng.normal(0, noise, image.shape)
        draw_shape(image, a[1], COLORS[a[0]], *pa, r[0])
        draw_shape(image, b[1], COLORS[b[0]], *pb, r[1])
        images[n] = np.clip(image, 0, 1)
        refs = [_caption(a, relation, b), _caption(b, RELATIONS[relation], a)]
        references.append(refs)
        captions.append(refs[int(rng.integers(0, 2))])
        objects.append([(a[0], a[1], float(pa[0]), float(pa[1])), (b[0], b[1], float(pb[0]), float(pb[1]))])
    return Scenes(images, captions, references, objects)


def encode_captions(captions, max_len: int) -> np.ndarray:
    """Word ids ``(N, max_len)``: each caption, then ``<end>``, then ``<pad>``."""
    ids = {w: i for i, w in enumerate(VOCAB)}
    out = np.full((len(captions), max_len), PAD, np.int32)
    for n, words in enumerate(captions):
        if len(words) + 1 > max_len:
            raise ValueError(f"encode_captions: caption {n} has {len(words)} words, more than max_len - 1 = "
                             f"{max_len - 1} (room for <end>)")
        unknown = [w for w in words if w not in ids]
        if unknown:
            raise KeyError(f"encode_captions: caption {n} has words outside VOCAB: {unknown}")
        out[n, :len(words) + 1] = [ids[w] for w in words] + [END]
    return out


def decode_caption(ids) -> list:
    """The words of ``ids`` up to the first ``<end>`` (``<pad>`` and ``<start>`` dropped)."""
    words = []
    for i in np.asarray(ids).tolist():
        if i == END:
            break
        if i not in (PAD, START):
            words.append(VOCAB[i])
    return words
