"""Fuzz the audio and video file readers with truncated, bit-flipped and
random files made from the real recordings in shared/data.

Every input must decode (samples / frames that are finite and well-shaped)
or raise the area's error (``AudioFileError`` / ``VideoFileError``) whose one
line names the file; nothing else may escape."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile
from hypothesis import given
from hypothesis import strategies as st

from device.audio.sources import AudioFileError, load_audio, read_audio
from device.video import read_video
from device.video.errors import VideoFileError
from fuzz_helpers import REJECTED, expect_clear, fuzz_settings
from test_fuzz_models import damage


@pytest.fixture(scope="module")
def audio_files(shared_data, tmp_path_factory) -> dict[str, bytes]:
    """A real dev clip as FLAC (as recorded), WAV and OGG."""
    clips = sorted((shared_data / "room-sounds-dev").glob("*/*.flac"))
    if not clips:
        pytest.skip("no dev clips in shared/data/room-sounds-dev")
    source = clips[0]
    samples, rate = soundfile.read(source, dtype="float32")
    folder = tmp_path_factory.mktemp("audio")
    files = {".flac": source.read_bytes()}
    for suffix, fmt in ((".wav", "WAV"), (".ogg", "OGG")):
        path = folder / f"clip{suffix}"
        soundfile.write(path, samples[: rate], rate, format=fmt)
        files[suffix] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def video_files(shared_data, tmp_path_factory) -> dict[str, bytes]:
    """A real exercise video as recorded (MP4/H.264) and its first frames re-encoded small (AVI/MJPG, MP4/mp4v)."""
    videos = sorted((shared_data / "videos").glob("*.mp4"), key=lambda p: p.stat().st_size)
    if not videos:
        pytest.skip("no videos in shared/data/videos")
    source = videos[0]
    capture = cv2.VideoCapture(str(source))
    frames = []
    while len(frames) < 12:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, (96, 72)))
    capture.release()
    folder = tmp_path_factory.mktemp("video")
    files = {".mp4 (recorded)": source.read_bytes()}
    for suffix, codec in ((".avi", "MJPG"), (".mp4", "mp4v")):
        path = folder / f"small{suffix}"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 15.0, (96, 72))
        for frame in frames:
            writer.write(frame)
        writer.release()
        files[suffix] = path.read_bytes()
    return files


def _read_audio_all(path: Path) -> np.ndarray:
    async def collect():
        return [item.value async for item in read_audio(path, chunk_duration=0.25)]

    chunks = asyncio.run(collect())
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def _check_audio(target: str, suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip{suffix}"
        path.write_bytes(data)
        for name, reader in (("load_audio", load_audio), ("read_audio", _read_audio_all)):
            samples = expect_clear(f"{target} ({name})", lambda: reader(path), [str(path)], kinds=(AudioFileError,))
            if samples is not REJECTED:
                assert samples.dtype == np.float32 and samples.ndim == 1 and samples.size > 0
                assert np.all(np.isfinite(samples))


def _check_video(target: str, suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"video{suffix.split()[0]}"
        path.write_bytes(data)

        def decode():
            source = read_video(path, max_frames=15)
            return source, [f.value for f in source.frames()]

        result = expect_clear(target, decode, [str(path)], kinds=(VideoFileError,))
        if result is not REJECTED:
            source, frames = result
            assert frames and 1.0 <= source.fps <= 1000.0
            assert all(f.ndim == 3 and f.shape[2] == 3 and f.dtype == np.uint8 for f in frames)


@fuzz_settings(200)
@given(st.data())
def test_damaged_audio(audio_files, data):
    suffix = data.draw(st.sampled_from(sorted(audio_files)))
    _check_audio(f"audio: damaged {suffix}", suffix, damage(audio_files[suffix], data.draw))


@fuzz_settings(100)
@given(st.sampled_from([".wav", ".flac", ".ogg", ".mp3"]), st.binary(max_size=3000))
def test_random_audio(suffix, blob):
    _check_audio("audio: random bytes", suffix, blob)


@fuzz_settings(150)
@given(st.data())
def test_damaged_video(video_files, data):
    kind = data.draw(st.sampled_from(sorted(video_files)))
    blob = video_files[kind]
    if data.draw(st.booleans()):  # truncation is the common case (a copy cut short)
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        blob = damage(blob, data.draw)
    _check_video(f"video: damaged {kind}", kind, blob)


@fuzz_settings(60)
@given(st.sampled_from([".mp4", ".avi", ".mkv", ".webm", ".mov"]), st.binary(max_size=3000))
def test_random_video(suffix, blob):
    _check_video("video: random bytes", suffix, blob)
