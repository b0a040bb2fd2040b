"""Audio sources: files and microphones as timestamped 16 kHz mono streams.

Everything downstream (the feature print, the classifiers) sees one format:
float32 mono samples in [-1, 1] at :data:`SAMPLE_RATE`, in chunks stamped with
the time of their first sample. Files are decoded by ``soundfile``
(libsndfile: WAV, FLAC, OGG, MP3), microphones are read through
``sounddevice`` (PortAudio). Both convert the native rate with the same
streaming polyphase resampler, whose output equals
``scipy.signal.resample_poly`` of the whole signal, so a file read in chunks
gives the same samples as a file loaded at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from ..components import CadenceError, Handoff, TemporalFeature, atomic_write
from ..stderr import redirect_lock
from .resampling import resample_poly, resampling_ratio  # numpy: scipy.signal would add ~50 MB RSS

SAMPLE_RATE = 16_000
"""The rate every Cadence audio stage works at (Hz)."""

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3")


class AudioError(CadenceError):
    """Base class of audio input problems."""


class AudioFileError(AudioError):
    """An audio file is missing, unreadable, corrupt or empty."""


class MicrophoneError(AudioError):
    """A microphone could not be opened (unknown device, bad settings)."""


class MicrophoneLost(MicrophoneError):
    """A microphone that was recording stopped delivering audio (unplugged,
    sound server gone). The daemon catches this one and retries."""


# ---------------------------------------------------------------------------
# resampling


class StreamResampler:
    """Polyphase resampling of a signal that arrives in pieces.

    Feeds of any size are cut at input positions that are multiples of the
    decimation factor and processed with enough context on each side that the
    result matches ``resample_poly(whole_signal, up, down)`` (zero padding at
    both ends, as ``resample_poly`` assumes), up to float rounding. The price
    is a latency of :attr:`pad` input samples.
    """

    def __init__(self, rate_in: int, rate_out: int = SAMPLE_RATE) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
        self.up, self.down = resampling_ratio(int(rate_in), int(rate_out))
        self.rate_in, self.rate_out = int(rate_in), int(rate_out)
        # resample_poly's filter has 10 * max(up, down) taps on each side at the
        # upsampled rate; convert to input samples and round up to whole `down` steps.
        half = 10 * max(self.up, self.down) / self.up + 2
        self.pad = self.down * math.ceil(half / self.down)
        self._buffer = np.zeros(self.pad, dtype=np.float64)  # left zero padding
        self._next = self.pad  # buffer index where the next output block starts (aligned)

    @property
    def identity(self) -> bool:
        return self.up == 1 and self.down == 1

    def _resample(self, segment: np.ndarray) -> np.ndarray:
        return resample_poly(segment, self.up, self.down)

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Add input samples; returns the output samples now complete."""
        samples = np.asarray(samples, dtype=np.float64).reshape(-1)
        if self.identity:
            return samples.astype(np.float32)
        self._buffer = np.concatenate([self._buffer, samples])
        available = len(self._buffer) - self.pad - self._next
        steps = available // self.down
        if steps <= 0:
            return np.zeros(0, dtype=np.float32)
        end = self._next + steps * self.down
        segment = self._buffer[self._next - self.pad : end + self.pad]
        y = self._resample(segment)
        skip = self.pad * self.up // self.down
        out = y[skip : skip + steps * self.up]
        # keep `pad` samples of left context before the new start
        self._buffer = self._buffer[end - self.pad :]
        self._next = self.pad
        return out.astype(np.float32)

    def flush(self) -> np.ndarray:
        """The remaining output at the end of the signal (zero padded)."""
        if self.identity:
            return np.zeros(0, dtype=np.float32)
        remaining = len(self._buffer) - self._next
        if remaining <= 0:
            return np.zeros(0, dtype=np.float32)
        count = -(-remaining * self.up // self.down)  # ceil
        tail = math.ceil(remaining / self.down) * self.down - remaining + self.pad
        segment = np.concatenate([self._buffer[self._next - self.pad :], np.zeros(tail)])
        y = self._resample(segment)
        skip = self.pad * self.up // self.down
        self._buffer = np.zeros(self.pad)
        self._next = self.pad
        return y[skip : skip + count].astype(np.float32)


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) array."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 1:
        return data
    if data.shape[1] == 1:
        return data[:, 0]
    return data.mean(axis=1, dtype=np.float32)


# ---------------------------------------------------------------------------
# files


def _open(path: Path) -> Any:
    import soundfile

    if not path.exists():
        raise AudioFileError(f"{path}: no such audio file")
    if path.is_dir():
        raise AudioFileError(f"{path}: is a folder, expected an audio file")
    if not path.is_file():  # a pipe or a device: reading it could wait for ever
        raise AudioFileError(f"{path}: is not a regular file, expected an audio file")
    try:
        handle = soundfile.SoundFile(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        reason = str(exc).split(":")[-1].strip() or "unknown format"
        raise AudioFileError(f"{path}: not a readable audio file ({reason})") from exc
    except OSError as exc:
        raise AudioFileError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if handle.frames == 0 or handle.samplerate <= 0:
        handle.close()
        raise AudioFileError(f"{path}: audio file is empty (no samples)")
    if not MIN_RATE <= handle.samplerate <= MAX_RATE:
        rate = handle.samplerate
        handle.close()
        raise AudioFileError(f"{path}: sample rate {rate} Hz is no recording's ({MIN_RATE}–{MAX_RATE} Hz); "
                             "the file is damaged or not audio")
    return handle


# sample rates a recording can have (telephone 8 kHz and below, studio 768 kHz)
MIN_RATE, MAX_RATE = 1000, 768000


# a float file's samples beyond this (36 dB over full scale) are no recording: a float WAV of 1e30s
# gave "600 dB" windows that trained and classified as if they were sound
MAX_SAMPLE = 64.0


def _read_blocks(path: Path, block_frames: int) -> Any:
    """Yield (mono float32 block, native rate) from a file, with clear errors."""
    import soundfile

    handle = _open(path)
    try:
        while True:
            try:
                data = handle.read(block_frames, dtype="float32", always_2d=True)
            except (soundfile.LibsndfileError, RuntimeError) as exc:
                raise AudioFileError(f"{path}: corrupt audio data ({exc})") from exc
            if len(data) == 0:
                return
            if not np.all(np.isfinite(data)):
                raise AudioFileError(f"{path}: audio contains NaN or infinite samples")
            peak = float(np.max(np.abs(data)))
            if peak > MAX_SAMPLE:  # float audio far beyond full scale: garbage, not a loud room
                raise AudioFileError(f"{path}: audio samples reach {peak:.3g}, far beyond full scale (±1): "
                                     "the file is corrupt or not audio")
            yield to_mono(data), handle.samplerate
    finally:
        handle.close()


def audio_info(path: str | Path) -> tuple[int, float]:
    """(native sample rate, duration in seconds) of an audio file."""
    handle = _open(Path(path))
    try:
        return handle.samplerate, handle.frames / handle.samplerate
    finally:
        handle.close()


def load_audio(path: str | Path, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A whole audio file as float32 mono samples at ``sample_rate``.

    The clip-level form used for training data. Raises :class:`AudioFileError`
    for missing, unreadable, corrupt or empty files.
    """
    path = Path(path)
    blocks = []
    rate = None
    for block, rate in _read_blocks(path, 1 << 18):
        blocks.append(block)
    if not blocks:
        raise AudioFileError(f"{path}: audio file is empty (no samples)")
    samples = np.concatenate(blocks)
    if rate != sample_rate:
        samples = resample_poly(samples, *resampling_ratio(int(rate), int(sample_rate))).astype(np.float32)
    return samples


def write_wav(path: str | Path, samples: np.ndarray, *, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono samples as a 16-bit WAV, atomically (a power cut never leaves half a
    clip in the training data): how ``cadence record`` and the daemon's kept background clips are written."""
    import io

    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.asarray(samples, dtype=np.float32), sample_rate, format="WAV", subtype="PCM_16")
    return atomic_write(path, buffer.getvalue())


async def read_audio(
    path: str | Path,
    *,
    chunk_duration: float = 0.1,
    sample_rate: int = SAMPLE_RATE,
    segment: str | int | None = None,
    realtime: bool = False,
    loop: bool = False,
) -> AsyncIterator[TemporalFeature[np.ndarray]]:
    """Stream an audio file as chunks of ``chunk_duration`` seconds.

    Each item holds float32 mono samples at ``sample_rate`` and is stamped
    with the time (s) of its first sample; the last chunk may be shorter.
    ``segment`` defaults to the file's path so that stages reset between
    files. The file is decoded block by block, so long recordings never sit in
    memory whole. ``realtime`` paces the chunks as a microphone would deliver
    them; ``loop`` plays the file again at its end, each pass a new segment
    (``<path>#<n>``) whose times go on from the last pass's end (as a looping
    video's) — a file standing in for a microphone, whose clock never restarts.
    """
    if not loop:
        async for item in _paced(_read_audio(path, chunk_duration, sample_rate, segment), realtime):
            yield item
        return
    n, offset = 0, 0.0
    while True:
        n += 1
        end = offset
        async for item in _paced(_read_audio(path, chunk_duration, sample_rate, f"{path}#{n}"), realtime):
            yield TemporalFeature(item.value, offset + item.timestamp, item.segment)
            end = offset + item.timestamp + len(item.value) / sample_rate
        offset = end


async def _paced(stream: AsyncIterator[TemporalFeature[np.ndarray]], realtime: bool) -> AsyncIterator[TemporalFeature[np.ndarray]]:
    start = time.monotonic()
    async for item in stream:
        if realtime:
            delay = start + item.timestamp - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        yield item


async def _read_audio(
    path: str | Path, chunk_duration: float, sample_rate: int, segment: str | int | None
) -> AsyncIterator[TemporalFeature[np.ndarray]]:
    path = Path(path)
    if chunk_duration <= 0:
        raise ValueError(f"chunk_duration must be > 0, got {chunk_duration}")
    chunk = max(1, int(round(chunk_duration * sample_rate)))
    seg = str(path) if segment is None else segment
    native, _ = audio_info(path)
    resampler = StreamResampler(native, sample_rate)
    pending = np.zeros(0, dtype=np.float32)
    emitted = 0
    any_samples = False
    for block, _rate in _read_blocks(path, max(4096, int(chunk_duration * native) * 8)):
        any_samples = True
        pending = np.concatenate([pending, resampler.feed(block)])
        while len(pending) >= chunk:
            yield TemporalFeature(pending[:chunk], emitted / sample_rate, seg)
            emitted += chunk
            pending = pending[chunk:]
        await asyncio.sleep(0)
    if not any_samples:
        raise AudioFileError(f"{path}: audio file is empty (no samples)")
    pending = np.concatenate([pending, resampler.flush()])
    while len(pending):
        yield TemporalFeature(pending[:chunk], emitted / sample_rate, seg)
        emitted += len(pending[:chunk])
        pending = pending[chunk:]


# ---------------------------------------------------------------------------
# microphones


@dataclasses.dataclass
class MicrophoneConfig:
    """How to open a microphone.

    ``device``: a PortAudio device index, or (part of) its name, case
    insensitive (``"pulse"``, ``"USB"``); None for the system default input.
    ``native_rate``: the rate to open the device at; None takes the device's
    default rate. ``chunk_duration``: seconds per delivered chunk.
    ``queue_chunks``: how many chunks may wait for a slow consumer before the
    oldest are dropped (counted in ``dropped_chunks``). ``stall_timeout``: no
    audio for this long means the device is lost.
    """

    device: int | str | None = None
    native_rate: int | None = None
    channels: int = 1
    chunk_duration: float = 0.1
    queue_chunks: int = 50
    stall_timeout: float = 2.0
    latency: str | float = "high"

    def __post_init__(self) -> None:
        if self.chunk_duration <= 0 or self.chunk_duration > 5:
            raise MicrophoneError(f"chunk_duration must be in (0, 5] s, got {self.chunk_duration}")
        if self.queue_chunks < 1:
            raise MicrophoneError(f"queue_chunks must be ≥ 1, got {self.queue_chunks}")
        if self.channels < 1:
            raise MicrophoneError(f"channels must be ≥ 1, got {self.channels}")
        if self.stall_timeout <= 0:
            raise MicrophoneError(f"stall_timeout must be > 0, got {self.stall_timeout}")


def _sounddevice() -> Any:
    """The module; imported under the fd-2 lock (its import points fd 2 at /dev/null for a moment)."""
    try:
        with redirect_lock:
            import sounddevice
    except OSError as exc:  # PortAudio library missing
        raise MicrophoneError(f"PortAudio is not available ({exc}); install libportaudio2") from exc
    return sounddevice


def input_devices() -> list[dict[str, Any]]:
    """PortAudio's input devices: index, name, channels, default rate."""
    sd = _sounddevice()
    result = []
    for index, info in enumerate(sd.query_devices()):
        if info["max_input_channels"] > 0:
            result.append(
                {
                    "index": index,
                    "name": info["name"],
                    "channels": int(info["max_input_channels"]),
                    "default_rate": int(info["default_samplerate"]),
                }
            )
    return result


def find_input_device(device: int | str | None) -> dict[str, Any]:
    """Resolve a device index or name to one input device (clear error if none)."""
    devices = input_devices()
    if not devices:
        raise MicrophoneError("no audio input devices found (is a microphone or sound server present?)")
    if device is None:
        sd = _sounddevice()
        default = sd.default.device[0] if isinstance(sd.default.device, (list, tuple)) else sd.default.device
        for d in devices:
            if d["index"] == default:
                return d
        return devices[0]
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        index = int(device)
        for d in devices:
            if d["index"] == index:
                return d
        raise MicrophoneError(f"no audio input device with index {index} (inputs: {_names(devices)})")
    wanted = str(device).strip().lower()
    exact = [d for d in devices if d["name"].lower() == wanted]
    if exact:
        return exact[0]
    partial = [d for d in devices if wanted in d["name"].lower()]
    if len(partial) == 1:
        return partial[0]
    if len(partial) > 1:
        raise MicrophoneError(f"audio input device {device!r} is ambiguous: {_names(partial)}")
    raise MicrophoneError(f"no audio input device named {device!r} (inputs: {_names(devices)})")


def _names(devices: list[dict[str, Any]]) -> str:
    return ", ".join(f"{d['index']}: {d['name']}" for d in devices) or "none"


class Microphone:
    """A live microphone as an async stream of 16 kHz mono chunks.

    PortAudio calls :meth:`_callback` on its own thread; the callback only
    copies the block and hands it to the event loop with
    :meth:`Handoff.put_threadsafe`, so the audio thread never waits for
    Python consumers. Conversion to mono 16 kHz and chunking happen on the
    loop. Counters: :attr:`input_overflows` (PortAudio reported lost input),
    :attr:`dropped_chunks` (the consumer was too slow; oldest chunks dropped).
    A stream that stops delivering for ``stall_timeout`` seconds, or that
    PortAudio aborts, raises :class:`MicrophoneLost`.
    """

    def __init__(self, config: MicrophoneConfig | None = None) -> None:
        self.config = config or MicrophoneConfig()
        self.input_overflows = 0
        self.callbacks = 0
        self.device: dict[str, Any] | None = None
        self.native_rate: int | None = None
        self._handoff: Handoff[np.ndarray] | None = None
        self._stream: Any = None
        self._finished = threading.Event()
        self._stats_lock = threading.Lock()

    @property
    def dropped_chunks(self) -> int:
        return self._handoff.dropped if self._handoff is not None else 0

    def stats(self) -> dict[str, Any]:
        return {
            "device": self.device["name"] if self.device else None,
            "native_rate": self.native_rate,
            "input_overflows": self.input_overflows,
            "dropped_chunks": self.dropped_chunks,
            "callbacks": self.callbacks,
        }

    # PortAudio thread ------------------------------------------------------
    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and status.input_overflow:
            with self._stats_lock:
                self.input_overflows += 1
        self.callbacks += 1
        assert self._handoff is not None
        self._handoff.put_threadsafe(indata.copy())

    def _finished_callback(self) -> None:
        self._finished.set()

    # event loop ------------------------------------------------------------
    def _open(self) -> None:
        sd = _sounddevice()
        cfg = self.config
        self.device = find_input_device(cfg.device)
        rate = int(cfg.native_rate or self.device["default_rate"] or SAMPLE_RATE)
        channels = min(cfg.channels, self.device["channels"])
        blocksize = max(1, int(round(cfg.chunk_duration * rate)))
        loop = asyncio.get_running_loop()
        # each callback block is one item; with a chunk every chunk_duration the
        # queue holds queue_chunks chunks of audio before dropping the oldest
        self._handoff = Handoff(cfg.queue_chunks, policy="drop_oldest")
        self._handoff.bind(loop)
        try:
            self._stream = sd.InputStream(
                device=self.device["index"],
                channels=channels,
                samplerate=rate,
                blocksize=blocksize,
                dtype="float32",
                latency=cfg.latency,
                callback=self._callback,
                finished_callback=self._finished_callback,
            )
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self._stream = None
            raise MicrophoneError(
                f"cannot open audio input {self.device['name']!r} at {rate} Hz: {exc}"
            ) from exc
        self.native_rate = rate

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            except Exception:  # closing a stream of a vanished device may fail
                pass
        if self._handoff is not None and not self._handoff.closed:
            self._handoff.close()

    async def __aenter__(self) -> "Microphone":
        self._open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._close()

    def __aiter__(self) -> AsyncIterator[TemporalFeature[np.ndarray]]:
        return self.stream()

    async def stream(self) -> AsyncIterator[TemporalFeature[np.ndarray]]:
        """Chunks of ``chunk_duration`` seconds stamped from the first sample."""
        opened_here = self._stream is None
        if opened_here:
            self._open()
        assert self._handoff is not None and self.native_rate is not None
        cfg = self.config
        resampler = StreamResampler(self.native_rate, SAMPLE_RATE)
        chunk = int(round(cfg.chunk_duration * SAMPLE_RATE))
        pending = np.zeros(0, dtype=np.float32)
        emitted = 0
        segment = f"mic:{self.device['name'] if self.device else '?'}"
        try:
            name = self.device["name"] if self.device else "?"
            first = True
            while True:
                # the first block may take a while (device start-up); later a gap
                # longer than stall_timeout, or a stream that PortAudio stopped, is a lost device
                deadline = time.monotonic() + cfg.stall_timeout + (2.0 if first else 0.0)
                block = None
                while block is None:
                    if self._finished.is_set():
                        raise MicrophoneLost(f"audio input {name!r} stopped (device lost or sound server gone)")
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise MicrophoneLost(
                            f"audio input {name!r} delivered no audio for {cfg.stall_timeout:g} s "
                            "(unplugged or sound server gone)"
                        )
                    try:
                        block = await asyncio.wait_for(self._handoff.get(), timeout=min(0.25, remaining))
                    except asyncio.TimeoutError:
                        continue
                    except StopAsyncIteration:
                        return
                first = False
                pending = np.concatenate([pending, resampler.feed(to_mono(block))])
                while len(pending) >= chunk:
                    yield TemporalFeature(pending[:chunk], emitted / SAMPLE_RATE, segment)
                    emitted += chunk
                    pending = pending[chunk:]
        finally:
            if opened_here:
                self._close()


def read_microphone(config: MicrophoneConfig | None = None) -> Microphone:
    """Open a microphone as an async stream (see :class:`Microphone`).

    Use ``async for chunk in read_microphone(cfg)`` or keep the object to
    read its counters (``input_overflows``, ``dropped_chunks``).
    """
    return Microphone(config)
