"""Synthetic trigger-word clips: background noise, a trigger word and distractor words.

The course's trigger-word data (the "activate" detector) built from nothing but NumPy
and a seed. A *word* is a sequence of segments, each drawn afresh for every
occurrence (duration, pitch, amplitude and formants jittered):

- ``("vowel", name)``: a voiced sound, harmonics of a gliding pitch ``f0`` (100-180 Hz)
  weighted by two Gaussian formant resonances ``(F1, F2)`` of the vowel;
- ``("chirp", f_start, f_end)``: a tone sweeping linearly in frequency;
- ``("noise", f_low, f_high)``: a band-limited noise burst (a fricative).

:data:`TRIGGER` (index 0 of :data:`WORDS`) is *a - rising chirp - i - hiss*; the
distractors share parts of it (the same sounds with a falling chirp, or in another
order) or not (*o u*, *e - chirp*). A clip of ``duration`` seconds holds background
noise (a 1/f spectrum plus, at random, a mains-like hum), ``0 .. max_triggers`` triggers
and ``0 .. max_distractors`` distractors at random non-overlapping places (drawn
again until they do not overlap, as the course's ``insert_audio_clip``; a word may
not fit at all after 50 tries and is then left out). Labels are the course's: with
``output_steps`` = ``Ty`` output steps over the clip, a trigger ending at sample ``e``
ends at step ``y = floor(e Ty / num_samples)``, and steps ``y + 1 .. y + label_steps``
(clipped to the clip) are 1, all others 0.

Imports: numpy.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["TRIGGER", "WORDS", "VOWELS", "TriggerClips", "synthesize_word", "make_trigger_clips",
           "label_steps_after"]

VOWELS = {"a": (750.0, 1200.0), "e": (480.0, 1550.0), "i": (300.0, 1750.0), "o": (500.0, 900.0),
          "u": (320.0, 750.0)}
TRIGGER = (("vowel", "a"), ("chirp", 500.0, 1500.0), ("vowel", "i"), ("noise", 1300.0, 1900.0))
WORDS = (TRIGGER,
         (("vowel", "a"), ("chirp", 1500.0, 500.0), ("vowel", "i"), ("noise", 1300.0, 1900.0)),
         (("vowel", "i"), ("chirp", 500.0, 1500.0), ("vowel", "a")),
         (("vowel", "o"), ("vowel", "u")),
         (("noise", 1300.0, 1900.0), ("vowel", "e"), ("chirp", 700.0, 1300.0)))
_DURATIONS = {"vowel": (0.10, 0.18), "chirp": (0.10, 0.16), "noise": (0.06, 0.10)}


class TriggerClips(NamedTuple):
    """``audio (N, samples)`` float32 in about [-1, 1]; ``labels (N, output_steps)``
    float32 0/1; ``events``: per clip a list of ``(start, end, word)`` in samples
    (``end`` exclusive), ``word`` the index in :data:`WORDS` (0 is the trigger)."""
    audio: np.ndarray
    labels: np.ndarray
    events: list


def _envelope(n: int) -> np.ndarray:
    """A 10 ms raised-cosine attack and release (or half the segment, if shorter)."""
    ramp = max(1, min(n // 2, 40))
    env = np.ones(n)
    r = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    env[:ramp], env[n - ramp:] = r, r[::-1]
    return env


def _segment(rng: np.random.Generator, seg: tuple, sample_rate: int, f0: float) -> np.ndarray:
    kind = seg[0]
    lo, hi = _DURATIONS[kind]
    n = int(rng.uniform(lo, hi) * sample_rate)
    t = np.arange(n) / sample_rate
    nyquist = sample_rate / 2
    if kind == "vowel":
        f1, f2 = (f * rng.uniform(0.92, 1.08) for f in VOWELS[seg[1]])
        pitch = f0 * (1 + rng.uniform(-0.1, 0.1) * t / max(t[-1], 1e-9))       # a small glide
        phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
        out = np.zeros(n)
        for h in range(1, int(nyquist * 0.95 / f0) + 1):
            f = h * f0
            gain = np.exp(-0.5 * ((f - f1) / 90) ** 2) + 0.7 * np.exp(-0.5 * ((f - f2) / 110) ** 2) + 0.02
            out += gain * np.sin(h * phase)
    elif kind == "chirp":
        f_start, f_end = (f * rng.uniform(0.93, 1.07) for f in seg[1:])
        freq = f_start + (f_end - f_start) * t / max(t[-1], 1e-9)
        out = np.sin(2 * np.pi * np.cumsum(freq) / sample_rate)
    elif kind == "noise":
        spec = np.fft.rfft(rng.normal(size=n))
        f = np.fft.rfftfreq(n, 1 / sample_rate)
        spec[(f < seg[1]) | (f > min(seg[2], nyquist))] = 0
        out = np.fft.irfft(spec, n)
    else:
        raise ValueError(f"synthesize_word: expected a segment kind 'vowel', 'chirp' or 'noise', got {kind!r}")
    out = out / (np.max(np.abs(out)) + 1e-9)
    return out * _envelope(n)


def synthesize_word(rng: np.random.Generator, word: int, sample_rate: int = 4000) -> np.ndarray:
    """One spoken instance of ``WORDS[word]``: its segments with 10-30 ms gaps, peak 1."""
    if not 0 <= word < len(WORDS):
        raise ValueError(f"synthesize_word: expected a word index in [0, {len(WORDS)}), got {word}")
    f0 = rng.uniform(100, 180)
    parts = []
    for seg in WORDS[word]:
        parts.append(_segment(rng, seg, sample_rate, f0))
        parts.append(np.zeros(int(rng.uniform(0.01, 0.03) * sample_rate)))
    return np.concatenate(parts[:-1])


def _background(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """1/f noise at a random level, and in half the clips a hum at 50-60 Hz and harmonics."""
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n, 1 / sample_rate)
    spec = spec / np.sqrt(np.maximum(f, 20.0))
    noise = np.fft.irfft(spec, n)
    noise *= rng.uniform(0.02, 0.12) / (noise.std() + 1e-12)
    if rng.random() < 0.5:
        t = np.arange(n) / sample_rate
        hum = rng.uniform(50, 60)
        noise += rng.uniform(0.01, 0.05) * sum(np.sin(2 * np.pi * k * hum * t) / k for k in (1, 2, 3))
    return noise


def label_steps_after(end_sample: int, num_samples: int, output_steps: int, label_steps: int) -> slice:
    """The output steps labelled 1 after a trigger ending at ``end_sample`` (module docstring)."""
    y = (end_sample * output_steps) // num_samples
    return slice(min(y + 1, output_steps), min(y + 1 + label_steps, output_steps))


def make_trigger_clips(seed: int, num_clips: int, *, output_steps: int, duration: float = 10.0,
                       sample_rate: int = 4000, label_steps: int = 50, max_triggers: int = 4,
                       max_distractors: int = 2) -> TriggerClips:
    """``num_clips`` clips drawn from ``seed`` (module docstring).

    Args:
      seed: the NumPy seed; the same seed gives the same clips, bit for bit.
      num_clips: ``N``.
      output_steps: ``Ty``, the model's output steps over one clip (labels' length).
      duration: seconds per clip (10, as the course).
      sample_rate: samples per second (4 kHz: every sound here is under 2 kHz).
      label_steps: steps labelled 1 after each trigger (50, as the course).
      max_triggers, max_distractors: each clip holds ``0 .. max`` of each, uniformly.

    Returns:
      :class:`TriggerClips`.
    """
    name = "make_trigger_clips"
    for what, v, low in (("seed", seed, 0), ("num_clips", num_clips, 1), ("output_steps", output_steps, 1),
                         ("sample_rate", sample_rate, 1), ("label_steps", label_steps, 1),
                         ("max_triggers", max_triggers, 0), ("max_distractors", max_distractors, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name}: expected {what} as an int >= {low}, got {v!r}")
    if not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration < 2.0:
        raise ValueError(f"{name}: expected duration as a float >= 2.0 seconds (words last up to 0.8 s), "
                         f"got {duration!r}")
    n = int(round(duration * sample_rate))
    if output_steps > n:
        raise ValueError(f"{name}: expected output_steps <= the {n} samples of a clip, got {output_steps}")
    rng = np.random.default_rng(seed)
    audio = np.zeros((num_clips, n), np.float32)
    labels = np.zeros((num_clips, output_steps), np.float32)
    events = []
    for i in range(num_clips):
        clip = _background(rng, n, sample_rate)
        words = [0] * int(rng.integers(0, max_triggers + 1)) + [
            int(rng.integers(1, len(WORDS))) for _ in range(int(rng.integers(0, max_distractors + 1)))]
        rng.shuffle(words)
        placed = []
        for w in words:
            sound = synthesize_word(rng, w, sample_rate) * rng.uniform(0.3, 0.9)
            for _ in range(50):
                start = int(rng.integers(0, n - len(sound)))
                end = start + len(sound)
                if all(end <= s or start >= e for s, e, _ in placed):
                    clip[start:end] += sound
                    placed.append((start, end, w))
                    break
        placed.sort()
        for start, end, w in placed:
            if w == 0:
                labels[i, label_steps_after(end, n, output_steps, label_steps)] = 1.0
        audio[i] = clip
        events.append(placed)
    return TriggerClips(audio, labels, events)
