"""Frame-level audio front ends: a numpy log-mel spectrogram and Google's
speech embedding (the openWakeWord front end) run through TFLite.

These produce *sequences* (one row per frame); :mod:`.featureprint` pools
them into one fixed-size vector per window.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np
import scipy.fft

from .sources import SAMPLE_RATE

# log-mel: 25 ms Hann frames every 10 ms, 512-point FFT, 64 HTK mel bands 50 Hz – 8 kHz
FRAME_LENGTH = 400
HOP_LENGTH = 160
N_FFT = 512
N_MELS = 64
F_MIN = 50.0
F_MAX = 8000.0
POWER_FLOOR_DB = -100.0

# speech embedding: mel frames every 10 ms (32 bins), 76 frames -> 96-d
EMBEDDING_FRAMES = 76
EMBEDDING_BINS = 32
EMBEDDING_DIM = 96
EMBEDDING_MIN_SAMPLES = (EMBEDDING_FRAMES + 3) * HOP_LENGTH  # the mel model drops 3 frames
# the audio of one embedding: its 76 mel frames (12,640 samples, 0.79 s)
EMBEDDING_SAMPLES = EMBEDDING_MIN_SAMPLES
# the two pinned models of the speech-embedding front end (models/manifest.json)
MELSPECTROGRAM_MODEL = "melspectrogram.tflite"
EMBEDDING_MODEL = "embedding_model.tflite"


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def mel_filterbank(
    n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE, fmin: float = F_MIN, fmax: float = F_MAX
) -> np.ndarray:
    """Triangular HTK mel filters, shape (n_fft // 2 + 1, n_mels), float32."""
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - freqs[None, :]) / np.maximum(upper - centre, 1e-9)
    bank = np.clip(np.minimum(rising, falling), 0.0, None)
    return np.ascontiguousarray(bank.T.astype(np.float32))


@functools.lru_cache(maxsize=2)
def _hann(length: int) -> np.ndarray:
    return np.hanning(length + 1)[:-1].astype(np.float32)  # periodic


def frame_count(n_samples: int) -> int:
    """Log-mel frames in ``n_samples`` (short inputs are padded to one frame)."""
    return 1 + max(0, n_samples - FRAME_LENGTH) // HOP_LENGTH


def log_mel(samples: np.ndarray) -> np.ndarray:
    """Log-mel spectrogram in dB, shape (frames, N_MELS), float32.

    Frames start at sample 0 and every HOP_LENGTH samples after; a clip
    shorter than one frame is zero padded. Power is relative to full scale
    (a full-scale sine gives about 0 dB in its band) and floored at -100 dB.
    """
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if len(x) < FRAME_LENGTH:
        x = np.pad(x, (0, FRAME_LENGTH - len(x)))
    n = frame_count(len(x))
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(n, FRAME_LENGTH), strides=(x.strides[0] * HOP_LENGTH, x.strides[0]), writeable=False
    )
    # scipy's FFT keeps float32 (numpy's would compute in float64: twice the time)
    spectrum = scipy.fft.rfft(frames * _hann(FRAME_LENGTH), n=N_FFT, axis=1, workers=1)
    power = (spectrum.real**2 + spectrum.imag**2) * np.float32(4.0 / FRAME_LENGTH**2)
    mel = power @ mel_filterbank()
    return (10.0 * np.log10(np.maximum(mel, 10.0 ** (POWER_FLOOR_DB / 10.0)))).astype(np.float32)


def dct_matrix(n_in: int = N_MELS, n_out: int = 20) -> np.ndarray:
    """Orthonormal DCT-II basis, shape (n_in, n_out): log-mel @ it = MFCC."""
    k = np.arange(n_out)[None, :]
    n = np.arange(n_in)[:, None]
    basis = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    basis[:, 0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


class SpeechEmbedding:
    """Google's speech embedding (as shipped by openWakeWord) on TFLite.

    :meth:`mel` turns 16 kHz samples into 32-bin mel frames (10 ms apart)
    exactly as openWakeWord prepares them: samples at int16 scale in, the
    model's output transformed by ``x / 10 + 2``. :meth:`embed` turns windows
    of 76 mel frames, taken every ``stride`` frames, into 96-d vectors.
    One instance is not thread-safe; it holds a lock so shared use is.
    """

    def __init__(
        self,
        *,
        num_threads: int = 1,
        melspectrogram_path: str | Path | None = None,
        embedding_path: str | Path | None = None,
    ) -> None:
        from ..inference import TFLiteModel
        from ..pretrained import model_path

        self.melspectrogram_path = Path(melspectrogram_path or model_path(MELSPECTROGRAM_MODEL))
        self.embedding_path = Path(embedding_path or model_path(EMBEDDING_MODEL))
        # the mel model has a free sample dimension: give it a shape before allocating
        self._mel = TFLiteModel(self.melspectrogram_path, num_threads=num_threads, input_shapes=[(1, SAMPLE_RATE)])
        self._embed = TFLiteModel(self.embedding_path, num_threads=num_threads)
        self._check_shapes()
        self._mel_samples = SAMPLE_RATE
        self._embed_batch = 1
        self._lock = threading.Lock()

    def _check_shapes(self) -> None:
        from ..inference import InferenceError

        mel_out = self._mel.output_shapes[0]
        if mel_out[-1] != EMBEDDING_BINS:
            raise InferenceError(f"{self.melspectrogram_path.name}: expected {EMBEDDING_BINS} mel bins, got {mel_out}")
        emb_in, emb_out = self._embed.input_shapes[0], self._embed.output_shapes[0]
        if tuple(emb_in[1:]) != (EMBEDDING_FRAMES, EMBEDDING_BINS, 1) or emb_out[-1] != EMBEDDING_DIM:
            raise InferenceError(
                f"{self.embedding_path.name}: expected input (n, 76, 32, 1) and 96 outputs, got {emb_in} -> {emb_out}"
            )

    def mel(self, samples: np.ndarray, *, pad: bool = True) -> np.ndarray:
        """Mel frames (frames, 32) of float samples in [-1, 1]; frame j covers
        samples [160 j, 160 j + 640). With ``pad`` short input is zero padded
        to one embedding's worth (76 frames); without, it needs ≥ 640 samples."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        minimum = EMBEDDING_MIN_SAMPLES if pad else 640
        if len(x) < minimum:
            x = np.pad(x, (0, minimum - len(x)))
        x = np.clip(x * 32767.0, -32768.0, 32767.0).astype(np.int16).astype(np.float32)[None, :]
        with self._lock:
            if self._mel_samples != x.shape[1]:
                self._mel.resize_input(0, x.shape)
                self._mel_samples = x.shape[1]
            out = self._mel.run(x)[0]
        return (np.squeeze(out).reshape(-1, EMBEDDING_BINS) / 10.0 + 2.0).astype(np.float32)

    def embed(self, mel_frames: np.ndarray, stride: int = 8) -> np.ndarray:
        """96-d embeddings of each 76-frame window every ``stride`` frames: (n, 96)."""
        mel_frames = np.asarray(mel_frames, dtype=np.float32)
        if len(mel_frames) < EMBEDDING_FRAMES:
            mel_frames = np.pad(mel_frames, ((0, EMBEDDING_FRAMES - len(mel_frames)), (0, 0)), constant_values=0.0)
        starts = range(0, len(mel_frames) - EMBEDDING_FRAMES + 1, stride)
        batch = np.stack([mel_frames[s : s + EMBEDDING_FRAMES] for s in starts])[..., None]
        with self._lock:
            if self._embed_batch != len(batch):
                self._embed.resize_input(0, batch.shape)
                self._embed_batch = len(batch)
            out = self._embed.run(batch)[0]
        return out.reshape(len(batch), EMBEDDING_DIM).astype(np.float32)

    def embeddings(self, samples: np.ndarray, stride: int = 8) -> np.ndarray:
        """One 96-d embedding every ``stride`` mel frames (10 ms each) from the
        first sample: (n, 96). Each is computed from its own
        :data:`EMBEDDING_SAMPLES` samples: the mel model's decibel floor
        follows the loudest frame of its input, so mel frames taken from a
        longer stretch would change with what is around them — and a stream
        cut into other chunks would give other values. Input shorter than one
        embedding's audio is zero padded to it."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if len(x) < EMBEDDING_SAMPLES:
            x = np.pad(x, (0, EMBEDDING_SAMPLES - len(x)))
        step = HOP_LENGTH * stride
        count = (len(x) - EMBEDDING_SAMPLES) // step + 1
        mels = [self.mel(x[i * step : i * step + EMBEDDING_SAMPLES], pad=False) for i in range(count)]
        return self.embed(np.concatenate(mels), stride=EMBEDDING_FRAMES)

    def __call__(self, samples: np.ndarray, stride: int = 8) -> np.ndarray:
        return self.embeddings(samples, stride)
