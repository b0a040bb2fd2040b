"""A small, real feature print used by the learn tests: log-mel statistics.

It follows the same protocol as ``device.audio.featureprint.AudioFeaturePrint``
(``fingerprint()``, ``dimension``, ``scales``, ``transform_clip(samples) -> int8``)
but is cheap, so the training tests stay fast and independent of the audio area.
"""

from __future__ import annotations

import hashlib

import numpy as np

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
    """Mean and std of 24 log-mel bands, int8 with fixed per-dimension scales."""

    def __init__(self, n_mels: int = 24, variant: str = "a") -> None:
        self.n_mels = n_mels
        self.variant = variant
        self.n_fft = 512
        self.hop = 256
        self.filters = _mel_filters(self.n_fft, n_mels, RATE)
        self.dimension = 2 * n_mels
        # log-mel values lie in about [-25, 10]; std in [0, 10]
        self.quant_scales = np.array([25.0 / 127] * n_mels + [10.0 / 127] * n_mels, dtype=np.float32)
        self.scales = self.quant_scales  # per-dimension scales of the int8 output
        self.calls = 0

    def fingerprint(self) -> str:
        text = f"simple-logmel:{self.n_mels}:{self.n_fft}:{self.hop}:{self.variant}"
        return hashlib.sha256(text.encode()).hexdigest()

    def transform_clip(self, samples: np.ndarray) -> np.ndarray:
        self.calls += 1
        x = np.asarray(samples, dtype=np.float32)
        if x.size < self.n_fft:
            x = np.pad(x, (0, self.n_fft - x.size))
        frames = np.lib.stride_tricks.sliding_window_view(x, self.n_fft)[:: self.hop]
        spec = np.abs(np.fft.rfft(frames * np.hanning(self.n_fft).astype(np.float32), axis=1)) ** 2
        logmel = np.log(spec @ self.filters.T + 1e-10)
        feats = np.concatenate([logmel.mean(0), logmel.std(0)])
        return np.clip(np.round(feats / self.quant_scales), -127, 127).astype(np.int8)


def load_clip(path) -> np.ndarray:
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if rate != RATE:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(rate, RATE)
        mono = resample_poly(mono, RATE // g, rate // g).astype(np.float32)
    return mono
