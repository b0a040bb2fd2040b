"""Audio files as streams: decoding, mono mix, resampling, chunking, clear errors."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from device.audio.sources import (
    SAMPLE_RATE,
    AudioFileError,
    StreamResampler,
    audio_info,
    load_audio,
    read_audio,
)
from device.components import run


def test_stream_equals_whole_file_for_a_dev_clip(dev_data):
    path = sorted((dev_data / "hammering").glob("*.flac"))[0]
    whole = load_audio(path)
    chunks = run(read_audio(path, chunk_duration=0.25))
    assert all(len(c.value) == 4000 for c in chunks[:-1]) and 0 < len(chunks[-1].value) <= 4000
    assert [c.timestamp for c in chunks] == pytest.approx([i * 0.25 for i in range(len(chunks))])
    assert len({c.segment for c in chunks}) == 1
    np.testing.assert_array_equal(np.concatenate([c.value for c in chunks]), whole)
    reference, rate = sf.read(path, dtype="float32")
    assert rate == SAMPLE_RATE
    np.testing.assert_array_equal(whole, reference)


def test_a_sample_rate_no_recording_has_is_refused_and_an_odd_one_is_read(tmp_path):
    """A damaged header claiming 2,097,151 Hz asked the resampler for a 42-million-tap filter (fuzzing:
    MemoryError); an odd but real rate is resampled by the nearest ratio of small terms."""
    noise = np.random.default_rng(0).normal(0, 0.1, 44057).astype(np.float32)
    for rate in (2097151, 999):
        path = tmp_path / f"r{rate}.wav"
        sf.write(path, noise, rate)
        with pytest.raises(AudioFileError, match=f"sample rate {rate} Hz is no recording's"):
            load_audio(path)
        with pytest.raises(AudioFileError, match="no recording's"):
            run(read_audio(path))
    path = tmp_path / "odd.wav"
    sf.write(path, noise, 44057)  # one second
    whole = load_audio(path)
    assert abs(len(whole) - SAMPLE_RATE) <= 1
    np.testing.assert_allclose(np.concatenate([c.value for c in run(read_audio(path))]), whole, atol=1e-6)


def test_a_looping_file_is_new_segments_on_one_clock(tmp_path):
    """A file standing in for a microphone: each pass its own segment (stages reset), its
    times going on from the last pass's end, so event times never jump back."""
    path = tmp_path / "room.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.05, int(SAMPLE_RATE * 0.95)).astype(np.float32), SAMPLE_RATE)

    async def first(n: int) -> list:
        out = []
        async for item in read_audio(path, chunk_duration=0.1, loop=True):
            out.append(item)
            if len(out) == n:
                return out

    chunks = asyncio.run(first(25))
    assert [c.segment for c in chunks] == [f"{path}#1"] * 10 + [f"{path}#2"] * 10 + [f"{path}#3"] * 5
    assert [c.timestamp for c in chunks] == pytest.approx(
        [i * 0.1 for i in range(10)] + [0.95 + i * 0.1 for i in range(10)] + [1.9 + i * 0.1 for i in range(5)])


@pytest.mark.parametrize("rate", [44100, 48000, 8000])
def test_stereo_file_at_another_rate_becomes_16k_mono(tmp_path, rate):
    t = np.arange(int(rate * 1.5)) / rate
    left = 0.5 * np.sin(2 * np.pi * 1000 * t)
    right = 0.5 * np.sin(2 * np.pi * 1000 * t + 0.3)
    path = tmp_path / f"tone{rate}.wav"
    sf.write(path, np.stack([left, right], axis=1), rate, subtype="FLOAT")
    whole = load_audio(path)
    assert whole.dtype == np.float32 and whole.ndim == 1
    assert abs(len(whole) - 1.5 * SAMPLE_RATE) <= 1
    # the 1 kHz tone survives at the right frequency
    spectrum = np.abs(np.fft.rfft(whole[2000:-2000] * np.hanning(len(whole) - 4000)))
    peak = np.argmax(spectrum) * SAMPLE_RATE / (len(whole) - 4000)
    assert abs(peak - 1000) < 5
    # chunked streaming gives the same samples as resampling the whole file
    streamed = np.concatenate([c.value for c in run(read_audio(path, chunk_duration=0.1))])
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
    assert audio_info(path) == (rate, pytest.approx(1.5))


def test_stream_resampler_matches_resample_poly_for_any_feed_sizes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(44100 + 77)
    resampler = StreamResampler(44100, 16000)
    out, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 3000))
        out.append(resampler.feed(x[i : i + n]))
        i += n
    out.append(resampler.flush())
    np.testing.assert_allclose(np.concatenate(out), resample_poly(x, 160, 441), atol=1e-5)


def test_ogg_files_are_read(tmp_path):
    t = np.arange(22050) / 22050
    path = tmp_path / "tone.ogg"
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * t), 22050, format="OGG", subtype="VORBIS")
    samples = load_audio(path)
    assert abs(len(samples) - SAMPLE_RATE) <= 1 and 0.1 < np.abs(samples).max() < 0.5


def test_bad_files_get_clear_errors(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    no_samples = tmp_path / "nothing.wav"
    sf.write(no_samples, np.zeros((0, 1)), 16000)
    text = tmp_path / "notes.ogg"
    text.write_text("not audio at all\n")
    for path, words in (
        (corrupt, "not a readable audio file"),
        (empty, "not a readable audio file"),
        (no_samples, "empty"),
        (text, "not a readable audio file"),
        (tmp_path / "missing.wav", "no such audio file"),
        (tmp_path, "is a folder"),
    ):
        with pytest.raises(AudioFileError, match=words) as info:
            load_audio(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
        with pytest.raises(AudioFileError, match=words):
            run(read_audio(path))


@pytest.mark.parametrize(("value", "words"), [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"),
                                              (1e30, "far beyond full scale"), (-500.0, "far beyond full scale")])
def test_float_audio_that_is_no_recording_is_one_line(tmp_path, value, words):
    # a float WAV of 1e30s trained and classified as "600 dB" windows; NaN was refused already
    samples = np.zeros(16000, np.float32)
    samples[8000] = value
    path = tmp_path / "odd.wav"
    sf.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match=words) as info:
        load_audio(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(AudioFileError, match=words):
        run(read_audio(path))
    loud = tmp_path / "loud.wav"  # a float recording a little over full scale is still audio
    sf.write(loud, np.full(16000, 1.5, np.float32), 16000, subtype="FLOAT")
    assert np.isclose(load_audio(loud).max(), 1.5)


def test_a_pipe_named_like_audio_is_refused_not_waited_on(tmp_path):
    # `cadence classify some.wav` where some.wav was a FIFO waited for ever
    import os

    fifo = tmp_path / "some.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioFileError, match="not a regular file") as info:
        load_audio(fifo)
    assert str(fifo) in str(info.value)
    with pytest.raises(AudioFileError, match="not a regular file"):
        run(read_audio(fifo))


def test_truncated_flac_is_an_audio_error(dev_data, tmp_path):
    data = sorted((dev_data / "chair_drag").glob("*.flac"))[0].read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 3] + bytes(5000))
    try:
        samples = load_audio(cut)
    except AudioFileError as exc:  # libsndfile may refuse the damaged frames…
        assert str(cut) in str(exc)
    else:  # …or decode what is intact: never garbage beyond full scale
        assert samples.dtype == np.float32 and np.all(np.abs(samples) <= 1.0)
