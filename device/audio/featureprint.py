"""The audio feature print: one small int8 vector per window of audio.

A window of 16 kHz audio becomes

* log-mel statistics — per band (64 mel bands, 25 ms frames every 10 ms) the
  mean, standard deviation, maximum, the standard deviation of the
  frame-to-frame change (how fast each band moves), skewness and log
  kurtosis over time (how impulsive the band is: a single impact is a heavy
  tail, a vacuum cleaner none), in dB;
* a modulation spectrum — the envelopes of 16 groups of 4 mel bands,
  Fourier-transformed over the window: the share of their fluctuation in
  octave bands 0.5–32 Hz (repeated blows vs one impact vs a steady machine)
  and its overall size; and
* Google's speech embedding (the openWakeWord front end, 96-d for every
  0.76 s of audio, taken every 250 ms), pooled over the window by mean and
  maximum,

quantised to int8 with fixed per-dimension centres and scales, so that cached
training features are small on SD storage (one byte per dimension). Why this
mix, and the accuracy and cost of the alternatives, is in ``docs/audio.md``
(measured by ``scripts/audio_features_study.py``).

The stream is the one form: :meth:`AudioFeaturePrint.process` is a temporal
stage over audio chunks (from :func:`~device.audio.sources.read_audio` or a
microphone), one :class:`QuantizedFeature` per window of ``window_duration``
seconds, a new window every ``window_duration * (1 - overlap_factor)``
seconds. Training data is that same stream over a file
(:meth:`AudioFeaturePrint.file_windows`, bounded memory), so a classifier
learns from exactly the windows the device classifies live.
:meth:`AudioFeaturePrint.transform_clip` (one vector of a whole block of
samples) remains for studies and for one window's samples.

A classifier (``device.learn``) accepts a :class:`QuantizedFeature`, float
features (:meth:`AudioFeaturePrint.dequantize`) or an int8 array (dequantised
with the scales the model stored at training).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft

from ..components import CadenceError, TemporalFeature, TemporalTransformer, Transformer
from ..components.features import QuantizedFeature, iterate_sync
from ..components.persistence import sha256_file
from . import frontend
from .augmentation import AudioAugmenter
from .sources import AUDIO_EXTENSIONS, SAMPLE_RATE, read_audio

FEATURE_PRINT_VERSION = 3  # 3: each speech embedding from its own audio (chunking-independent)
MEL_STATISTICS = ("mean", "std", "max", "dstd", "skew", "kurt")
EMBEDDING_STATISTICS = ("mean", "max")
MODULATION_GROUPS = 16
MODULATION_EDGES_HZ = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
_KNOWN_STATISTICS = ("mean", "std", "max", "min", "dstd", "skew", "kurt")
CALIBRATION_FILE = Path(__file__).with_name("featureprint_calibration.json")


class FeaturePrintError(CadenceError, ValueError):
    """An invalid feature-print setting (one line for users, a ValueError for code)."""


def rms_db(samples: np.ndarray) -> float:
    """Level of a block of samples in dBFS (full-scale sine ≈ -3 dB); -inf for silence."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return -math.inf
    power = float(np.mean(x * x))
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def _pool(frames: np.ndarray, statistics: Sequence[str]) -> list[np.ndarray]:
    parts = []
    for stat in statistics:
        if stat == "mean":
            parts.append(frames.mean(axis=0))
        elif stat == "std":
            parts.append(frames.std(axis=0))
        elif stat == "max":
            parts.append(frames.max(axis=0))
        elif stat == "min":
            parts.append(frames.min(axis=0))
        elif stat == "dstd":
            diff = np.diff(frames, axis=0) if len(frames) > 1 else np.zeros_like(frames)
            parts.append(diff.std(axis=0))
        elif stat in ("skew", "kurt"):
            # products, not z**3 / z**4: numpy's float power is ~20x slower
            z = (frames - frames.mean(axis=0)) / (frames.std(axis=0) + np.float32(1e-3))
            z2 = z * z
            if stat == "skew":
                parts.append((z2 * z).mean(axis=0))
            else:  # log keeps the heavy tails of single impacts in range
                parts.append(np.log((z2 * z2).mean(axis=0) + np.float32(1e-3)))
        else:  # checked in __init__
            raise ValueError(stat)
    return parts


def modulation_spectrum(log_mel_frames: np.ndarray, groups: int = MODULATION_GROUPS) -> np.ndarray:
    """How the band envelopes fluctuate over time, (len(edges) - 1 + 1) * groups values.

    The 64 log-mel bands are averaged into ``groups`` groups; each group's
    envelope (dB, its mean removed) is Fourier-transformed over the frames
    (zero padded to ≥ 1024 frames, so the bins are ≤ 0.1 Hz apart). Per group:
    the log share of the fluctuation power in each octave band of
    ``MODULATION_EDGES_HZ`` (periodic blows put it in one band, a single
    impact spreads it, a steady machine has little), then half the log of
    the total (the envelope's RMS fluctuation).
    """
    frames = np.asarray(log_mel_frames, dtype=np.float32)
    n_frames = len(frames)
    env = frames.reshape(n_frames, groups, -1).mean(axis=2)
    env = env - env.mean(axis=0)
    n = max(1024, 1 << max(0, n_frames - 1).bit_length())
    power = np.abs(scipy.fft.rfft(env, n=n, axis=0, workers=1)) ** 2
    freqs = np.fft.rfftfreq(n, frontend.HOP_LENGTH / SAMPLE_RATE)
    edges = MODULATION_EDGES_HZ
    bands = np.stack([power[(freqs >= lo) & (freqs < hi)].sum(axis=0) for lo, hi in zip(edges[:-1], edges[1:])])
    total = bands.sum(axis=0)
    share = np.log(bands / (total + np.float32(1e-9)) + np.float32(1e-6))
    level = 0.5 * np.log(total / np.float32(n * n_frames) + np.float32(1e-12))
    return np.concatenate([share.ravel(), level]).astype(np.float32)


# Fallback quantisation (used when no calibration matches the configuration):
# (centre, scale) per statistic, from the physical ranges of each block.
_FALLBACK = {
    ("mel", "mean"): (-50.0, 0.42),  # dB levels: about -103 … +3 dB
    ("mel", "max"): (-50.0, 0.42),
    ("mel", "min"): (-50.0, 0.42),
    ("mel", "std"): (16.0, 0.13),  # spreads: 0 … 32 dB
    ("mel", "dstd"): (16.0, 0.13),
    ("mel", "skew"): (2.0, 0.07),  # about -7 … +11
    ("mel", "kurt"): (2.5, 0.035),  # log kurtosis: about -2 … +7
    ("modulation", "share"): (-7.0, 0.06),  # log shares: about -14 … 0
    ("modulation", "level"): (-2.0, 0.05),  # about -8 … +4
    ("embedding", "mean"): (0.0, 0.6),  # embedding values: about ±76
    ("embedding", "max"): (0.0, 0.6),
    ("embedding", "min"): (0.0, 0.6),
    ("embedding", "std"): (25.0, 0.2),
    ("embedding", "dstd"): (25.0, 0.2),
}


class AudioFeaturePrint(TemporalTransformer[np.ndarray, QuantizedFeature]):
    """Log-mel statistics + modulation spectrum + pooled speech embedding, int8
    (see module docstring).

    Parameters
    ----------
    window_duration:
        Seconds of audio per feature vector, 0.5 – 15.
    overlap_factor:
        Share of a window that the next window repeats, in [0, 1).
    mel_statistics / embedding_statistics:
        Which statistics to pool per block (subsets of mean, std, max, min,
        dstd, skew, kurt); an empty tuple leaves the block out.
    modulation_groups:
        Band groups of the modulation spectrum (a divisor of 64; 0 leaves the
        block out); 16 groups give 16 × 7 values.
    embedding_stride:
        Mel frames (10 ms each) between speech embeddings; 25 = 250 ms. The
        embeddings are most of the cost: with v2's log-mel blocks, 150 ms
        was 0.1–1 point better on the dev set at 1.5 × the CPU (real-time
        factor ~0.0100 vs ~0.0067), 80 ms twice that again.
        250 ms divides the default 1.5 s hop, so streamed windows pool
        exactly the embeddings the clip form computes.
    num_threads:
        TFLite threads (1 keeps one core free on a Pi).
    """

    output_type = QuantizedFeature
    #: files :meth:`file_windows` reads (the one list, shared with ``cadence classify``)
    suffixes: tuple[str, ...] = AUDIO_EXTENSIONS
    #: why a file gave no window, as training says it (a featurizer's own words)
    no_window: str = "too short for one feature window (a sound needs at least 0.5 s)"
    #: the windows of floor noises training adds to ``background`` (models/manifest.json; device.learn.negatives)
    shipped_negatives: str | None = "sound-negatives.npz"

    def __init__(
        self,
        window_duration: float = 3.0,
        overlap_factor: float = 0.5,
        *,
        mel_statistics: Sequence[str] = MEL_STATISTICS,
        embedding_statistics: Sequence[str] = EMBEDDING_STATISTICS,
        embedding_stride: int = 25,
        modulation_groups: int = MODULATION_GROUPS,
        num_threads: int = 1,
        models_dir: str | Path | None = None,
    ) -> None:
        if not isinstance(window_duration, (int, float)) or not 0.5 <= window_duration <= 15:
            raise FeaturePrintError(f"AudioFeaturePrint: window_duration must be 0.5–15 s, got {window_duration!r}")
        if not isinstance(overlap_factor, (int, float)) or not 0.0 <= overlap_factor < 1.0:
            raise FeaturePrintError(f"AudioFeaturePrint: overlap_factor must be in [0, 1), got {overlap_factor!r}")
        for stat in (*mel_statistics, *embedding_statistics):
            if stat not in _KNOWN_STATISTICS:
                raise FeaturePrintError(f"AudioFeaturePrint: unknown statistic {stat!r} (choose from {_KNOWN_STATISTICS})")
        if not mel_statistics and not embedding_statistics and not modulation_groups:
            raise FeaturePrintError(
                "AudioFeaturePrint: at least one of mel_statistics / embedding_statistics / modulation_groups is needed"
            )
        if not isinstance(modulation_groups, int) or modulation_groups < 0 or (
            modulation_groups and frontend.N_MELS % modulation_groups
        ):
            raise FeaturePrintError(
                f"AudioFeaturePrint: modulation_groups must be 0 or a divisor of {frontend.N_MELS}, got {modulation_groups!r}"
            )
        if not isinstance(embedding_stride, int) or not 1 <= embedding_stride <= 76:
            raise FeaturePrintError(f"AudioFeaturePrint: embedding_stride must be 1–76 mel frames, got {embedding_stride!r}")
        self.window_duration = float(window_duration)
        self.overlap_factor = float(overlap_factor)
        self.mel_statistics = tuple(mel_statistics)
        self.embedding_statistics = tuple(embedding_statistics)
        self.embedding_stride = embedding_stride
        self.modulation_groups = modulation_groups
        self.num_threads = num_threads
        self.models_dir = Path(models_dir) if models_dir is not None else None
        self._embedding: frontend.SpeechEmbedding | None = None
        self._fingerprint: str | None = None
        #: dimensions computed from the log-mel frames (statistics, then the
        #: modulation spectrum); the speech-embedding block follows them
        self.mel_dimension = frontend.N_MELS * len(self.mel_statistics) + self.modulation_groups * len(
            MODULATION_EDGES_HZ
        )
        self.dimension = self.mel_dimension + frontend.EMBEDDING_DIM * len(self.embedding_statistics)
        self.centres, self.scales, self.calibrated = self._quantisation()

    # -- configuration ---------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Everything that changes what a window's vector means (the
        calibration key); the fingerprint adds the window layout."""
        return {
            "version": FEATURE_PRINT_VERSION,
            "sample_rate": SAMPLE_RATE,
            "mel": {
                "frame": frontend.FRAME_LENGTH,
                "hop": frontend.HOP_LENGTH,
                "n_fft": frontend.N_FFT,
                "bands": frontend.N_MELS,
                "fmin": frontend.F_MIN,
                "fmax": frontend.F_MAX,
                "floor_db": frontend.POWER_FLOOR_DB,
                "statistics": list(self.mel_statistics),
            },
            "modulation": {"groups": self.modulation_groups, "edges_hz": list(MODULATION_EDGES_HZ)},
            "embedding": {"statistics": list(self.embedding_statistics), "stride": self.embedding_stride,
                          "samples": frontend.EMBEDDING_SAMPLES},
        }

    def config_key(self) -> str:
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()[:16]

    def _quantisation(self) -> tuple[np.ndarray, np.ndarray, bool]:
        key = self.config_key()
        try:
            table = json.loads(CALIBRATION_FILE.read_text())
            entry = table.get("calibrations", {}).get(key)
        except (OSError, json.JSONDecodeError):
            entry = None
        if entry is not None and len(entry["scales"]) == self.dimension:
            return (
                np.asarray(entry["centres"], dtype=np.float32),
                np.asarray(entry["scales"], dtype=np.float32),
                True,
            )
        centres, scales = [], []
        n_bands = len(MODULATION_EDGES_HZ) - 1
        for block, stats, width in (
            ("mel", self.mel_statistics, frontend.N_MELS),
            ("modulation", ("share",) if self.modulation_groups else (), self.modulation_groups * n_bands),
            ("modulation", ("level",) if self.modulation_groups else (), self.modulation_groups),
            ("embedding", self.embedding_statistics, frontend.EMBEDDING_DIM),
        ):
            for stat in stats:
                off, sc = _FALLBACK[(block, stat)]
                centres.append(np.full(width, off, dtype=np.float32))
                scales.append(np.full(width, sc, dtype=np.float32))
        return np.concatenate(centres), np.concatenate(scales), False

    def _model_paths(self) -> list[Path]:
        if not self.embedding_statistics:
            return []
        from ..pretrained import model_path

        kw = {"directory": self.models_dir} if self.models_dir is not None else {}
        return [model_path(frontend.MELSPECTROGRAM_MODEL, **kw), model_path(frontend.EMBEDDING_MODEL, **kw)]

    def fingerprint(self) -> str:
        """Hash of the configuration, the window layout, the quantisation and the model files.

        Features (and models trained on them) are only comparable between
        feature prints with the same fingerprint; the feature cache and
        model loading check it. The window length and overlap are part of
        it: a classifier learns from the windows of the stream, and windows
        of another length are other examples.
        """
        if self._fingerprint is None:
            digest = hashlib.sha256()
            digest.update(json.dumps(self.config(), sort_keys=True).encode())
            digest.update(f"window={self.window_duration!r};overlap={self.overlap_factor!r}".encode())
            digest.update(self.centres.tobytes())
            digest.update(self.scales.tobytes())
            for path in self._model_paths():
                digest.update(sha256_file(path).encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    @property
    def hop_duration(self) -> float:
        """Seconds between the starts of successive windows."""
        return self.window_duration * (1.0 - self.overlap_factor)

    def __repr__(self) -> str:
        return (
            f"AudioFeaturePrint(window_duration={self.window_duration:g}, overlap_factor={self.overlap_factor:g}, "
            f"mel_statistics={self.mel_statistics}, embedding_statistics={self.embedding_statistics}, "
            f"embedding_stride={self.embedding_stride}, modulation_groups={self.modulation_groups}, "
            f"dimension={self.dimension})"
        )

    # -- computation -----------------------------------------------------------
    def _speech_embedding(self) -> frontend.SpeechEmbedding:
        if self._embedding is None:
            paths = self._model_paths()
            self._embedding = frontend.SpeechEmbedding(
                num_threads=self.num_threads, melspectrogram_path=paths[0], embedding_path=paths[1]
            )
        return self._embedding

    def raw_features(self, samples: np.ndarray) -> np.ndarray:
        """The statistics themselves (dB, embedding units), before centring."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        parts: list[np.ndarray] = []
        if self.uses_log_mel:
            parts += self._log_mel_block(frontend.log_mel(x))
        if self.embedding_statistics:
            emb = self._speech_embedding()(x, stride=self.embedding_stride)
            parts += _pool(emb, self.embedding_statistics)
        return np.concatenate(parts).astype(np.float32)

    @property
    def uses_log_mel(self) -> bool:
        return bool(self.mel_statistics) or self.modulation_groups > 0

    def _log_mel_block(self, frames: np.ndarray) -> list[np.ndarray]:
        """Everything pooled from one window's log-mel frames (clip and stream forms alike)."""
        parts = _pool(frames, self.mel_statistics)
        if self.modulation_groups:
            parts.append(modulation_spectrum(frames, self.modulation_groups))
        return parts

    def features(self, samples: np.ndarray) -> np.ndarray:
        """Float feature vector of one block of 16 kHz samples: the statistics
        minus their fixed per-dimension centres (what int8 values * scales give)."""
        return self.raw_features(samples) - self.centres

    def quantize(self, features: np.ndarray) -> np.ndarray:
        """Centred float features -> int8 (values beyond the calibrated range saturate)."""
        q = np.round(np.asarray(features, dtype=np.float32) / self.scales)
        return np.clip(q, -127, 127).astype(np.int8)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """int8 features (one vector or a matrix of rows) -> centred float32."""
        return np.asarray(values, dtype=np.float32) * self.scales

    def transform_clip(self, samples: np.ndarray) -> np.ndarray:
        """int8 feature vector (``dimension`` bytes) of a whole clip."""
        return self.quantize(self.features(samples))

    def feature(self, samples: np.ndarray, start: float = 0.0) -> QuantizedFeature:
        """A :class:`QuantizedFeature` of one block starting at ``start`` seconds."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        return QuantizedFeature(
            self.transform_clip(x),
            self.scales,
            start=start,
            end=start + len(x) / SAMPLE_RATE,
            rms_db=rms_db(x),
        )

    def as_transformer(self) -> "ClipFeaturePrint":
        """The clip-level form as a :class:`Transformer` (samples -> QuantizedFeature),
        e.g. as the prefix of ``print.as_transformer() | estimator``."""
        return ClipFeaturePrint(self)

    async def process(
        self, stream: AsyncIterable[TemporalFeature[np.ndarray]]
    ) -> AsyncIterator[TemporalFeature[QuantizedFeature]]:
        """One feature per window; items are stamped with the window's end time.

        Windows start at the segment's first sample and every hop after. The
        frame-level front ends run once per stretch of audio, however much
        the windows overlap (:class:`_StreamFrames`), and each window pools
        the frames that lie inside it — the same statistics as
        :meth:`transform_clip` of the window's samples, except that speech
        embeddings sit on the stream's grid (every ``embedding_stride`` mel
        frames from the segment start) rather than the window's.

        When a segment ends, audio after the last full window is covered by
        one final window aligned to the segment's end (so the end of a file
        is never lost); a segment shorter than one window yields one feature
        of what there was, if that is at least 0.5 s.
        """
        window = int(round(self.window_duration * SAMPLE_RATE))
        hop = max(1, int(round(self.hop_duration * SAMPLE_RATE)))
        min_tail = SAMPLE_RATE // 2
        frames = _StreamFrames(self)
        segment: object = object()
        t0 = 0.0  # time of the segment's first sample
        next_start = 0  # segment sample index where the next window starts
        covered = 0  # segment samples up to the end of the last emitted window

        def tail() -> TemporalFeature[QuantizedFeature] | None:
            seen = frames.end
            if seen == 0 or seen <= covered:
                return None
            if covered == 0:  # no full window in this segment
                if seen < min_tail:
                    return None
                a = 0
            else:
                a = seen - window
            feat = self.feature(frames.samples_between(a, seen), t0 + a / SAMPLE_RATE)
            return TemporalFeature(feat, feat.end, segment)  # type: ignore[arg-type]

        async for item in stream:
            if item.segment != segment:
                last = tail()
                if last is not None:
                    yield last
                segment, t0 = item.segment, float(item.timestamp)
                frames = _StreamFrames(self)
                next_start = covered = 0
            frames.append(np.asarray(item.value, dtype=np.float32).reshape(-1))
            while frames.end - next_start >= window:
                a, b = next_start, next_start + window
                block = frames.samples_between(a, b)
                raw = frames.pooled(a, b)
                if raw is None:  # window too short for the frame-level path
                    feat = self.feature(block, t0 + a / SAMPLE_RATE)
                else:
                    feat = QuantizedFeature(
                        self.quantize(raw - self.centres),
                        self.scales,
                        start=t0 + a / SAMPLE_RATE,
                        end=t0 + b / SAMPLE_RATE,
                        rms_db=rms_db(block),
                    )
                covered = b
                next_start += hop
                yield TemporalFeature(feat, feat.end, item.segment)
            # keep what the next window (or a final end-aligned window) needs
            frames.trim(min(next_start, max(0, frames.end - window)))
        last = tail()
        if last is not None:
            yield last

    def augmenter(self) -> AudioAugmenter:
        """What makes augmented copies of a training clip (the trainer asks the featurizer)."""
        return AudioAugmenter()

    def file_windows(self, path: str | Path) -> Iterator[QuantizedFeature]:
        """The windows :meth:`process` yields over ``read_audio(path)``, synchronously.

        This is how training sees a clip: the stream the device runs, over the
        file, decoded block by block, so memory is bounded by the window, not
        the file. A file shorter than 0.5 s yields nothing.
        """
        for item in iterate_sync(self.process(read_audio(path))):
            yield item.value

    def sample_windows(self, samples: np.ndarray) -> Iterator[QuantizedFeature]:
        """The windows :meth:`process` yields over samples already in memory
        (augmented copies of a clip), fed in the 0.1 s chunks of ``read_audio``."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        chunk = SAMPLE_RATE // 10

        async def chunks() -> AsyncIterator[TemporalFeature[np.ndarray]]:
            for a in range(0, len(x), chunk):
                yield TemporalFeature(x[a : a + chunk], a / SAMPLE_RATE, "samples")

        for item in iterate_sync(self.process(chunks())):
            yield item.value

    # -- calibration -------------------------------------------------------------
    @staticmethod
    def calibrate(raw_matrix: np.ndarray, margin: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension (centres, scales) from :meth:`raw_features` rows: the
        0.5–99.5 % range widened by ``margin`` of that span on each side maps
        onto -127 … 127."""
        lo = np.percentile(raw_matrix, 0.5, axis=0)
        hi = np.percentile(raw_matrix, 99.5, axis=0)
        span = np.maximum(hi - lo, 1e-3)
        lo, hi = lo - margin * span, hi + margin * span
        centres = ((lo + hi) / 2).astype(np.float32)
        scales = ((hi - lo) / 254.0).astype(np.float32)
        return centres, scales


class _StreamFrames:
    """Frame-level front ends of one stream, each frame computed once.

    Holds the stream's samples from :attr:`start` on, the log-mel frames
    (frame k covers samples [160k, 160k+400); numpy, frame-local) and the
    speech embeddings (embedding i covers samples [160·stride·i,
    160·stride·i + 12,640), computed from exactly those samples — see
    :meth:`~device.audio.frontend.SpeechEmbedding.embeddings`), so however
    the stream is cut into chunks the values are the same. Indices are
    absolute within the segment.
    """

    def __init__(self, fp: AudioFeaturePrint) -> None:
        self.fp = fp
        self.stride = fp.embedding_stride
        self._samples = np.zeros(0, dtype=np.float32)
        self._pending: list[np.ndarray] = []  # chunks appended since the last join
        self._length = 0  # samples held, pending chunks included
        self.start = 0  # segment index of samples[0]
        self.logmel = np.zeros((0, frontend.N_MELS), dtype=np.float32)
        self.logmel_start = 0
        self.emb = np.zeros((0, frontend.EMBEDDING_DIM), dtype=np.float32)
        self.emb_start = 0

    @property
    def samples(self) -> np.ndarray:
        """The held samples; chunks are joined only when samples are read
        (once per window, not once per 0.1 s chunk)."""
        if self._pending:
            self._samples = np.concatenate([self._samples, *self._pending])
            self._pending.clear()
        return self._samples

    @property
    def end(self) -> int:
        return self.start + self._length

    def append(self, chunk: np.ndarray) -> None:
        self._pending.append(chunk)
        self._length += len(chunk)

    def samples_between(self, a: int, b: int) -> np.ndarray:
        return self.samples[a - self.start : b - self.start]

    def _advance(self) -> None:
        hop = frontend.HOP_LENGTH
        if self.fp.uses_log_mel:
            done = self.logmel_start + len(self.logmel)
            last = (self.end - frontend.FRAME_LENGTH) // hop
            if last >= done:
                seg = self.samples_between(done * hop, last * hop + frontend.FRAME_LENGTH)
                self.logmel = np.concatenate([self.logmel, frontend.log_mel(seg)])
        if self.fp.embedding_statistics:
            step = hop * self.stride
            done = self.emb_start + len(self.emb)
            last = (self.end - frontend.EMBEDDING_SAMPLES) // step
            if last >= done:
                seg = self.samples_between(done * step, last * step + frontend.EMBEDDING_SAMPLES)
                self.emb = np.concatenate([self.emb, self.fp._speech_embedding().embeddings(seg, stride=self.stride)])

    def pooled(self, a: int, b: int) -> np.ndarray | None:
        """Raw statistics of the frames inside samples [a, b), or None if a
        block has no complete frame there."""
        self._advance()
        hop = frontend.HOP_LENGTH
        parts: list[np.ndarray] = []
        if self.fp.uses_log_mel:
            k0, k1 = -(-a // hop), (b - frontend.FRAME_LENGTH) // hop
            if k1 < k0:
                return None
            parts += self.fp._log_mel_block(self.logmel[k0 - self.logmel_start : k1 + 1 - self.logmel_start])
        if self.fp.embedding_statistics:
            step = hop * self.stride
            i0 = -(-a // step)
            i1 = (b - frontend.EMBEDDING_SAMPLES) // step
            if i1 < i0:
                return None
            parts += _pool(self.emb[i0 - self.emb_start : i1 + 1 - self.emb_start], self.fp.embedding_statistics)
        return np.concatenate(parts).astype(np.float32)

    def trim(self, a: int) -> None:
        """Forget samples and frames that lie wholly before sample ``a``."""
        hop = frontend.HOP_LENGTH
        if self.fp.embedding_statistics:  # embeddings not computed yet still need their samples
            a = min(a, (self.emb_start + len(self.emb)) * hop * self.stride)
        if a > self.start:
            cut = a - self.start
            self._samples = self._samples[cut:] if cut <= len(self._samples) else self.samples[cut:]
            self._length -= cut
            self.start = a
        k = a // hop  # first frame that may still be needed
        if k > self.logmel_start:
            self.logmel = self.logmel[k - self.logmel_start :]
            self.logmel_start = k
        e = a // (hop * self.stride)
        if e > self.emb_start:
            cut = min(e - self.emb_start, len(self.emb))
            self.emb = self.emb[cut:]
            self.emb_start += cut


class ClipFeaturePrint(Transformer[np.ndarray, QuantizedFeature]):
    """``AudioFeaturePrint`` over whole clips as a plain :class:`Transformer`."""

    output_type = QuantizedFeature

    def __init__(self, feature_print: AudioFeaturePrint) -> None:
        self.feature_print = feature_print

    def apply(self, x: np.ndarray) -> QuantizedFeature:
        return self.feature_print.feature(x)

    def fingerprint(self) -> str:
        return self.feature_print.fingerprint()

    def __repr__(self) -> str:
        return f"ClipFeaturePrint({self.feature_print!r})"
