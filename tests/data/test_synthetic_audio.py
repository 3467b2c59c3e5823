"""Synthetic trigger-word clips: labels where the course puts them, words where the
events say, the trigger's chirp, determinism by seed, and bad input."""
import numpy as np
import pytest

from fnnet.data.synthetic_audio import WORDS, make_trigger_clips, synthesize_word

TY = 400


@pytest.fixture(scope="module")
def clips():
    return make_trigger_clips(3, 12, output_steps=TY, duration=4.0, sample_rate=2000, max_triggers=3)


def test_labels_are_the_50_steps_after_each_trigger_ends(clips):
    n = clips.audio.shape[1]
    assert clips.audio.shape == (12, 8000) and clips.labels.shape == (12, TY)
    assert sum(w == 0 for ev in clips.events for *_, w in ev) > 5            # triggers occur
    assert n == 8000
    for labels, events in zip(clips.labels, clips.events):
        expected = np.zeros(TY)
        for start, end, word in events:
            if word == 0:
                # the step holding the end time (steps of 4.0 s / TY), then the 50 after it
                last = int(np.floor((end / 2000) / (4.0 / TY)))
                for k in range(TY):
                    if 1 <= k - last <= 50:
                        expected[k] = 1
        np.testing.assert_array_equal(labels, expected)


def test_words_are_where_the_events_say(clips):
    for audio, events in zip(clips.audio, clips.events):
        spans = sorted((s, e) for s, e, _ in events)
        assert all(e1 <= s2 for (_, e1), (s2, _) in zip(spans, spans[1:]))       # no overlap
        quiet = np.ones(len(audio), bool)
        for s, e in spans:
            quiet[s:e] = False
        for s, e, w in events:
            assert 0 <= w < len(WORDS) and 0.2 * 2000 < e - s < 1.2 * 2000      # 0.2 to 1.2 s long
            # a word is louder than the background around it
            assert np.sqrt(np.mean(audio[s:e] ** 2)) > 1.5 * np.sqrt(np.mean(audio[quiet] ** 2))


def test_deterministic_by_seed(clips):
    again = make_trigger_clips(3, 12, output_steps=TY, duration=4.0, sample_rate=2000, max_triggers=3)
    np.testing.assert_array_equal(again.audio, clips.audio)
    assert again.events == clips.events
    other = make_trigger_clips(4, 12, output_steps=TY, duration=4.0, sample_rate=2000, max_triggers=3)
    assert not np.array_equal(other.audio, clips.audio)


def test_trigger_chirp_rises_and_first_distractor_falls():
    """The dominant frequency between 400 and 1700 Hz, tracked over the word by a
    plain NumPy FFT: the trigger's chirp sweeps up, distractor 1's (same sounds) down."""
    def slope(word, seed):
        x = synthesize_word(np.random.default_rng(seed), word, 4000)
        peaks = []
        for i in range(0, len(x) - 128, 32):
            seg = x[i:i + 128] * np.hanning(128)
            f = np.fft.rfftfreq(128, 1 / 4000)
            mag = np.abs(np.fft.rfft(seg))
            band = (f > 400) & (f < 1700)
            if mag[band].max() > 5:
                peaks.append(f[band][np.argmax(mag[band])])
        peaks = np.array(peaks)
        return np.polyfit(np.arange(len(peaks)), peaks, 1)[0] if len(peaks) > 2 else 0.0
    # over several draws, the trigger's tracked peak rises more than distractor 1's
    assert np.mean([slope(0, s) for s in range(4)]) > np.mean([slope(1, s) for s in range(4)])


def test_bad_input_raises():
    with pytest.raises(ValueError, match="expected output_steps <= the 8000 samples of a clip, got 9000"):
        make_trigger_clips(0, 1, output_steps=9000, duration=4.0, sample_rate=2000)
    with pytest.raises(ValueError, match="expected num_clips as an int >= 1, got 0"):
        make_trigger_clips(0, 0, output_steps=10)
    with pytest.raises(ValueError, match="expected duration as a float >= 2.0 seconds"):
        make_trigger_clips(0, 1, output_steps=10, duration=1.0)
    with pytest.raises(ValueError, match=r"expected a word index in \[0, 5\), got 5"):
        synthesize_word(np.random.default_rng(0), 5)
