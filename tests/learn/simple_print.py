"""A small, real featurizer used by the learn tests: log-mel statistics of windows.

It follows the :class:`device.components.Featurizer` protocol like
``device.audio.featureprint.AudioFeaturePrint`` (``fingerprint()``,
``dimension``, ``scales``, ``suffixes``, ``file_windows(path)``: 2 s windows
every 1 s of the file, streamed, a shorter file's one window if it has 0.5 s)
but is cheap, so the training tests stay fast and independent of the audio area.
"""

from __future__ import annotations

import hashlib

import numpy as np

from device.audio.sources import AUDIO_EXTENSIONS, read_audio
from device.components import QuantizedFeature, iterate_sync

RATE = 16000


def _mel_filters(n_fft: int, n_mels: int, rate: int) -> np.ndarray:
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    mels = np.linspace(hz_to_mel(20.0), hz_to_mel(rate / 2), n_mels + 2)
    bins = np.floor((n_fft + 1) * mel_to_hz(mels) / rate).astype(int)
    fb = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for i in range(1, n_mels + 1):
        left, centre, right = bins[i - 1], bins[i], bins[i + 1]
        for j in range(left, centre):
            fb[i - 1, j] = (j - left) / max(centre - left, 1)
        for j in range(centre, right):
            fb[i - 1, j] = (right - j) / max(right - centre, 1)
    return fb


class SimpleFeaturePrint:
    """Mean and std of 24 log-mel bands per window, int8 with fixed per-dimension scales."""

    suffixes = AUDIO_EXTENSIONS

    def __init__(self, n_mels: int = 24, variant: str = "a", window: float = 2.0, hop: float = 1.0) -> None:
        self.n_mels = n_mels
        self.variant = variant
        self.window, self.hop_seconds = window, hop
        self.n_fft = 512
        self.hop = 256
        self.filters = _mel_filters(self.n_fft, n_mels, RATE)
        self.dimension = 2 * n_mels
        # log-mel values lie in about [-25, 10]; std in [0, 10]
        self.scales = np.array([25.0 / 127] * n_mels + [10.0 / 127] * n_mels, dtype=np.float32)
        self.calls = 0  # files read

    def fingerprint(self) -> str:
        text = f"simple-logmel:{self.n_mels}:{self.n_fft}:{self.hop}:{self.variant}:{self.window}:{self.hop_seconds}"
        return hashlib.sha256(text.encode()).hexdigest()

    def transform(self, samples: np.ndarray) -> np.ndarray:
        """int8 statistics of one window of samples."""
        x = np.asarray(samples, dtype=np.float32)
        if x.size < self.n_fft:
            x = np.pad(x, (0, self.n_fft - x.size))
        frames = np.lib.stride_tricks.sliding_window_view(x, self.n_fft)[:: self.hop]
        spec = np.abs(np.fft.rfft(frames * np.hanning(self.n_fft).astype(np.float32), axis=1)) ** 2
        # einsum, not @: a BLAS call spins up threads that crawl on a shared, loaded machine
        logmel = np.log(np.einsum("fk,mk->fm", spec.astype(np.float32), self.filters) + 1e-10)
        feats = np.concatenate([logmel.mean(0), logmel.std(0)])
        return np.clip(np.round(feats / self.scales), -127, 127).astype(np.int8)

    def augmenter(self):
        from device.audio.augmentation import AudioAugmenter

        return AudioAugmenter()

    def sample_windows(self, samples: np.ndarray):
        """Windows of samples in memory (what augmented copies are made of)."""
        window, hop = int(self.window * RATE), int(self.hop_seconds * RATE)
        x = np.asarray(samples, dtype=np.float32)
        if len(x) < window:
            if len(x) >= RATE // 2:
                yield QuantizedFeature(self.transform(x), self.scales, 0.0, len(x) / RATE)
            return
        starts = list(range(0, len(x) - window + 1, hop))
        if starts[-1] + window < len(x):
            starts.append(len(x) - window)  # the end of the file is never lost
        for a in starts:
            yield QuantizedFeature(self.transform(x[a : a + window]), self.scales, a / RATE, (a + window) / RATE)

    def file_windows(self, path):
        """The windows of the file, read as a stream; only a window's worth is held beyond what is pending."""
        self.calls += 1
        window, hop = int(self.window * RATE), int(self.hop_seconds * RATE)
        held = np.zeros(0, dtype=np.float32)
        dropped = np.zeros(0, dtype=np.float32)  # the hop before held[0] (an end-aligned last window needs it)
        offset = 0  # file sample index of held[0]
        emitted_end = 0
        for item in iterate_sync(read_audio(path, chunk_duration=1.0)):  # 1 s blocks: fewer loop steps
            held = np.concatenate([held, item.value])
            while len(held) >= window:
                yield QuantizedFeature(self.transform(held[:window]), self.scales, offset / RATE, (offset + window) / RATE)
                emitted_end = offset + window
                dropped, held, offset = held[:hop], held[hop:], offset + hop
        end = offset + len(held)
        if emitted_end == 0:
            if end >= RATE // 2:
                yield QuantizedFeature(self.transform(held), self.scales, 0.0, end / RATE)
        elif end > emitted_end:
            tail = np.concatenate([dropped, held])[-window:]
            yield QuantizedFeature(self.transform(tail), self.scales, (end - window) / RATE, end / RATE)
