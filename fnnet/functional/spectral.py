"""Short-time Fourier transform and spectrograms in ``jnp.fft``.

A signal ``x [..., N]`` is cut into frames of ``n_fft`` samples every ``hop_length``
samples (after reflect-padding ``n_fft // 2`` on each side when ``center``), each frame
is multiplied by a window ``w`` (``win_length`` samples, zero-padded to ``n_fft`` in the
middle) and transformed by the real FFT::

    X[m, k] = sum_{n=0}^{n_fft-1} w[n] x[m hop + n] exp(-2 pi i k n / n_fft),   k = 0 .. n_fft // 2

so ``stft(x)`` is ``torch.stft(x, n_fft, hop_length, win_length, window, center,
pad_mode="reflect", onesided=True, return_complex=True)`` transposed to time-major
``[..., frames, n_fft // 2 + 1]`` (the layout a channels-last ``Conv1D`` reads), and
with ``center=False`` it is ``scipy.signal.stft(..., boundary=None, padded=False,
detrend=False)`` times ``sum(w)`` (scipy scales each frame by ``1 / sum(w)``).
The number of frames is ``1 + (N' - n_fft) // hop_length`` with ``N' = N + 2 (n_fft // 2)``
when centred and ``N`` otherwise.

A spectrogram is ``|X|^power`` (``power=1`` magnitude, ``2`` power), optionally
``log(|X|^power + eps)``. Everything is differentiable (the magnitude is not at
``X = 0``: use ``power=2`` there) and runs under ``jit``/``vmap``.

Imports: jax only.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet.functional._checks import as_int, check_floating

__all__ = ["window_function", "frame_signal", "stft", "spectrogram", "num_frames"]

_WINDOWS = ("hann", "hamming", "rectangular")


def window_function(kind: str, length: int, dtype=jnp.float32) -> jax.Array:
    """A periodic window of ``length`` samples (``torch.hann_window(length)``,
    ``scipy.signal.get_window(kind, length)``)::

        hann:        w[n] = 0.5 - 0.5 cos(2 pi n / length)
        hamming:     w[n] = 0.54 - 0.46 cos(2 pi n / length)
        rectangular: w[n] = 1
    """
    length = as_int("window_function", "length", length, minimum=1)
    if kind not in _WINDOWS:
        raise ValueError(f"window_function: expected kind in {_WINDOWS}, got {kind!r}")
    n = jnp.arange(length, dtype=dtype)
    if kind == "rectangular":
        return jnp.ones((length,), dtype)
    a = 0.5 if kind == "hann" else 0.54
    return (a - (1 - a) * jnp.cos(2 * jnp.pi * n / length)).astype(dtype)


def num_frames(length: int, n_fft: int, hop_length: int, center: bool = True) -> int:
    """The number of STFT frames of a signal of ``length`` samples (module docstring)."""
    padded = length + 2 * (n_fft // 2) if center else length
    if padded < n_fft:
        raise ValueError(f"stft: expected a signal of at least n_fft = {n_fft} samples"
                         f"{' after centring' if center else ''}, got {length}")
    return 1 + (padded - n_fft) // hop_length


def frame_signal(x, frame_length: int, hop_length: int) -> jax.Array:
    """Frames ``[..., M, frame_length]`` of ``x [..., N]``: frame ``m`` is
    ``x[..., m hop : m hop + frame_length]``, ``M = 1 + (N - frame_length) // hop``."""
    frame_length = as_int("frame_signal", "frame_length", frame_length, minimum=1)
    hop_length = as_int("frame_signal", "hop_length", hop_length, minimum=1)
    if jnp.ndim(x) < 1 or jnp.shape(x)[-1] < frame_length:
        raise ValueError(f"frame_signal: expected a signal [..., N] with N >= frame_length = {frame_length}, "
                         f"got shape {jnp.shape(x)}")
    m = 1 + (jnp.shape(x)[-1] - frame_length) // hop_length
    idx = hop_length * jnp.arange(m)[:, None] + jnp.arange(frame_length)[None, :]
    return jnp.asarray(x)[..., idx]


def stft(x, n_fft: int, hop_length: int | None = None, *, win_length: int | None = None,
         window_kind: str = "hann", center: bool = True) -> jax.Array:
    """Complex short-time Fourier transform (module docstring).

    Args:
      x: real signal(s) ``[..., N]``.
      n_fft: the FFT size; ``n_fft // 2 + 1`` frequency bins.
      hop_length: samples between frame starts (default ``n_fft // 4``, as torch).
      win_length: window length ``<= n_fft`` (default ``n_fft``), centred in the frame.
      window_kind: ``"hann"``, ``"hamming"`` or ``"rectangular"`` (periodic windows).
      center: reflect-pad ``n_fft // 2`` samples on both sides, so frame ``m`` is
        centred on sample ``m hop``.

    Returns:
      ``X [..., frames, n_fft // 2 + 1]``, complex.
    """
    name = "stft"
    check_floating(name, "x", x)
    x = jnp.asarray(x)
    n_fft = as_int(name, "n_fft", n_fft, minimum=1)
    hop_length = max(n_fft // 4, 1) if hop_length is None else as_int(name, "hop_length", hop_length, minimum=1)
    win_length = n_fft if win_length is None else as_int(name, "win_length", win_length, minimum=1)
    if win_length > n_fft:
        raise ValueError(f"{name}: expected win_length <= n_fft = {n_fft}, got {win_length}")
    if x.ndim < 1:
        raise ValueError(f"{name}: expected a signal [..., N], got a scalar")
    num_frames(x.shape[-1], n_fft, hop_length, center)
    if center:
        pad = n_fft // 2
        if x.shape[-1] <= pad:
            raise ValueError(f"{name}: reflect padding by n_fft // 2 = {pad} needs more than {pad} samples, "
                             f"got {x.shape[-1]}")
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    w = window_function(window_kind, win_length, x.dtype)
    left = (n_fft - win_length) // 2
    w = jnp.pad(w, (left, n_fft - win_length - left))
    frames = frame_signal(x, n_fft, hop_length)
    return jnp.fft.rfft(frames * w.reshape((1,) * (frames.ndim - 1) + (n_fft,)), axis=-1)


def spectrogram(x, n_fft: int, hop_length: int | None = None, *, win_length: int | None = None,
                window_kind: str = "hann", center: bool = True, power: float = 2.0, log: bool = False,
                eps: float = 1e-10) -> jax.Array:
    """``S = |stft(x)|^power``, or ``log(S + eps)`` with ``log=True``.

    Args:
      x, n_fft, hop_length, win_length, window_kind, center: as :func:`stft`.
      power: ``1.0`` magnitude, ``2.0`` power (any positive exponent).
      log: return ``log(S + eps)`` (natural log).
      eps: the floor added before the log.

    Returns:
      ``[..., frames, n_fft // 2 + 1]`` real, in the dtype of ``x``.
    """
    if isinstance(power, bool) or not isinstance(power, (int, float)) or power <= 0:
        raise ValueError(f"spectrogram: expected power as a positive float, got {power!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
        raise ValueError(f"spectrogram: expected eps as a positive float, got {eps!r}")
    spec = stft(x, n_fft, hop_length, win_length=win_length, window_kind=window_kind, center=center)
    sq = jnp.real(spec) ** 2 + jnp.imag(spec) ** 2
    s = sq if power == 2 else sq ** (power / 2)
    return jnp.log(s + eps) if log else s
