"""STFT and spectrograms against a NumPy DFT loop, scipy.signal and torch.stft; float64
gradient checks; bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import gradcheck
from fnnet.functional.spectral import frame_signal, num_frames, spectrogram, stft, window_function


def np_stft(x, n_fft, hop, win, center):
    """The textbook loop: pad, cut, window, DFT by the sum over n."""
    if center:
        x = np.pad(x, n_fft // 2, mode="reflect")
    m = 1 + (len(x) - n_fft) // hop
    k = np.arange(n_fft // 2 + 1)
    out = np.zeros((m, len(k)), complex)
    for i in range(m):
        seg = x[i * hop:i * hop + n_fft] * win
        for j in k:
            out[i, j] = sum(seg[n] * np.exp(-2j * np.pi * j * n / n_fft) for n in range(n_fft))
    return out


@pytest.mark.parametrize("center", [True, False])
def test_stft_equals_numpy_dft_loop(x64, center):
    x = np.random.default_rng(0).normal(size=70)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(16) / 16)
    got = stft(jnp.asarray(x), 16, 5, center=center)
    np.testing.assert_allclose(got, np_stft(x, 16, 5, win, center), rtol=1e-10, atol=1e-10)
    assert got.shape[0] == num_frames(70, 16, 5, center)


def test_stft_equals_torch_stft(x64):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).normal(size=(3, 257))
    for n_fft, hop, win_length, kind in ((32, 8, None, "hann"), (17, 4, 17, "hann"), (40, 7, 30, "hamming")):
        if True:
            torch_window = torch.hann_window if kind == "hann" else torch.hamming_window
            wl = win_length or n_fft
            ref = torch.stft(torch.tensor(x), n_fft, hop, wl, torch_window(wl, dtype=torch.float64),
                             center=True, pad_mode="reflect", onesided=True, return_complex=True).numpy()
            got, power = jax.jit(lambda s: (stft(s, n_fft, hop, win_length=win_length, window_kind=kind),
                                            spectrogram(s, n_fft, hop, win_length=win_length,
                                                        window_kind=kind)))(jnp.asarray(x))
            np.testing.assert_allclose(got, np.swapaxes(ref, -1, -2), rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(power, np.swapaxes(np.abs(ref) ** 2, -1, -2), rtol=1e-9, atol=1e-9)


def test_spectrogram_equals_scipy(x64):
    signal = pytest.importorskip("scipy.signal")
    x = np.random.default_rng(2).normal(size=(2, 300))
    n_fft, hop = 64, 24
    win = signal.get_window("hann", n_fft)
    np.testing.assert_allclose(window_function("hann", n_fft, jnp.float64), win, rtol=1e-12, atol=1e-15)
    _, _, z = signal.stft(x, nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary=None,
                          padded=False, detrend=False)
    ref = np.swapaxes(z, -1, -2) * win.sum()                      # scipy scales frames by 1 / sum(w)
    np.testing.assert_allclose(stft(jnp.asarray(x), n_fft, hop, center=False), ref, rtol=1e-9, atol=1e-9)
    _, _, mag = signal.spectrogram(x, nperseg=n_fft, noverlap=n_fft - hop, window="hann", detrend=False,
                                   mode="magnitude", scaling="spectrum")
    got = spectrogram(jnp.asarray(x), n_fft, hop, center=False, power=1.0, log=True, eps=1e-6)
    np.testing.assert_allclose(got, np.log(np.swapaxes(mag, -1, -2) * win.sum() + 1e-6), rtol=1e-9, atol=1e-9)


def test_frame_and_jit_vmap():
    x = np.arange(20.0, dtype=np.float32)
    f = np.asarray(frame_signal(jnp.asarray(x), 6, 4))
    np.testing.assert_array_equal(f, np.stack([x[i:i + 6] for i in range(0, 15, 4)]))
    xs = np.random.default_rng(3).normal(size=(4, 128)).astype(np.float32)
    fn = jax.jit(jax.vmap(lambda s: spectrogram(s, 32, 8, log=True)))
    ref = np.log(np.abs(np.stack([np_stft(s.astype(np.float64), 32, 8, np.asarray(window_function("hann", 32)), True)
                                  for s in xs])) ** 2 + 1e-10)
    np.testing.assert_allclose(fn(jnp.asarray(xs)), ref, rtol=2e-4, atol=2e-4)


def test_gradient_check_float64(x64):
    """The log power, the magnitude (away from zero) and the real part of the STFT."""
    x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 40)))
    rng = np.random.default_rng(5)
    w_centred = jnp.asarray(rng.normal(size=(2, num_frames(40, 16, 6), 9)))
    w_valid = jnp.asarray(rng.normal(size=(2, num_frames(40, 16, 6, center=False), 9)))
    def f(s):
        return (jnp.sum(w_centred * spectrogram(s, 16, 6, log=True))
                + jnp.sum(w_valid * spectrogram(s, 16, 6, win_length=11, power=1.0, center=False))
                + jnp.sum(w_valid * jnp.real(stft(s, 16, 6, center=False))))

    gradcheck.check_gradients(jax.jit(f), x, tol=1e-7)


def test_bad_input_raises():
    x = jnp.zeros(40)
    with pytest.raises(ValueError, match="expected win_length <= n_fft = 16, got 20"):
        stft(x, 16, 4, win_length=20)
    with pytest.raises(ValueError, match="expected a signal of at least n_fft = 64 samples, got 40"):
        stft(x, 64, 4, center=False)
    with pytest.raises(ValueError, match=r"expected kind in \('hann', 'hamming', 'rectangular'\), got 'hanning'"):
        stft(x, 16, 4, window_kind="hanning")
    with pytest.raises(TypeError, match="stft: expected x"):
        stft(jnp.zeros(40, jnp.int32), 16, 4)
    with pytest.raises(ValueError, match="hop_length as a positive int, got 0"):
        stft(x, 16, 0)
    with pytest.raises(ValueError, match="expected power as a positive float, got 0"):
        spectrogram(x, 16, 4, power=0)
