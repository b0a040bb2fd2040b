#!/usr/bin/env python3
"""Which audio feature print? Measure variants on room-sounds-dev.

For every clip of ``../shared/data/room-sounds-dev`` (or --data) the frame
level front ends are computed once (log-mel frames, speech-embedding frames
every 80 ms) and cached in a temporary file; each variant then pools them into
a clip vector and a multinomial logistic regression (scipy L-BFGS, features
standardised) is trained and tested **with a split by recording**:

* ``snu_PPPNNN`` (SNU-B36-50): PPP is the source position of one sound type;
  all its clips are one group (strict: test positions never heard in training).
* ``<label>_<fold>-<id>-<take>`` (ESC-50 style): the ESC id is the recording.
* ``crying_baby_<source>_<n>``: the source file is the recording.

Grouped 5-fold cross-validation (groups of each label dealt round-robin over
folds), repeated with several shuffles; "few-shot" draws 10 clips per class
from the training folds (several draws). Printed: mean accuracy (and spread)
per variant, plus extraction cost per second of audio.

    .venv/bin/python research/audio_features_study.py [--data DIR] [--repeats 3] [--json OUT]

``--window-training`` measures multiple-instance training instead: every clip
is cut into the feature print's windows (3 s every 1.5 s, a final window
aligned to the clip's end), each window pooled like the default variant and
labelled with its clip's label, the regression trained on windows (folds still
by recording group) and a clip predicted from its windows' mean
log-probability, mean probability or maximum probability.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.audio.featureprint import _pool as _fp_pool  # noqa: E402
from device.audio.featureprint import modulation_spectrum  # noqa: E402
from device.audio.frontend import SpeechEmbedding, dct_matrix, log_mel  # noqa: E402
from device.audio.sources import SAMPLE_RATE, load_audio  # noqa: E402


def recording_group(path: Path) -> str:
    """The recording a clip comes from (see the module docstring)."""
    label, stem = path.parent.name, path.stem
    m = re.fullmatch(r"snu_(\d{3})(\d{3})", stem)
    if m:
        return f"snu:{m.group(1)}"
    m = re.fullmatch(r".*_\d+-(\d+)-[A-Z]", stem)
    if m:
        return f"esc:{m.group(1)}"
    m = re.fullmatch(r"(.*)_\d+", stem)
    if m:
        return f"{label}:{m.group(1)}"
    return f"{label}:{stem}"


def clip_group(path: Path) -> str:
    """Looser grouping: each SNU clip is its own recording (positions shared)."""
    g = recording_group(path)
    return f"clip:{path.stem}" if g.startswith("snu:") else g


def extract(data: Path, cache: Path) -> dict:
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return {k: z[k] for k in z.files}
    files = sorted(p for p in data.glob("*/*") if p.suffix.lower() in (".wav", ".flac", ".ogg"))
    emb = SpeechEmbedding(num_threads=1)
    mels, embs, labels, paths = [], [], [], []
    cost = {"logmel": 0.0, "melmodel": 0.0, "embedding": 0.0, "audio_s": 0.0}
    for p in files:
        x = load_audio(p)
        cost["audio_s"] += len(x) / SAMPLE_RATE
        t = time.process_time()
        lm = log_mel(x)
        cost["logmel"] += time.process_time() - t
        t = time.process_time()
        m = emb.mel(x)
        cost["melmodel"] += time.process_time() - t
        t = time.process_time()
        e = emb.embed(m, stride=8)
        cost["embedding"] += time.process_time() - t
        mels.append(lm)
        embs.append(e)
        labels.append(p.parent.name)
        paths.append(str(p.relative_to(data)))
    out = {
        "mel_lengths": np.array([len(m) for m in mels]),
        "mel": np.concatenate(mels),
        "emb_lengths": np.array([len(e) for e in embs]),
        "emb": np.concatenate(embs),
        "labels": np.array(labels),
        "paths": np.array(paths),
        "cost": np.array([cost["logmel"], cost["melmodel"], cost["embedding"], cost["audio_s"]]),
    }
    np.savez(cache, **out)
    return out


def split_rows(values: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(values, np.cumsum(lengths)[:-1])


# ---- pooling variants --------------------------------------------------------
DCT = dct_matrix(64, 20)


def pool(frames: np.ndarray, how: tuple[str, ...]) -> np.ndarray:
    parts = []
    for h in how:
        if h == "mean":
            parts.append(frames.mean(0))
        elif h == "std":
            parts.append(frames.std(0))
        elif h == "max":
            parts.append(frames.max(0))
        elif h == "min":
            parts.append(frames.min(0))
        elif h == "p10":
            parts.append(np.percentile(frames, 10, axis=0))
        elif h == "p50":
            parts.append(np.percentile(frames, 50, axis=0))
        elif h == "p90":
            parts.append(np.percentile(frames, 90, axis=0))
        elif h == "dstd":
            d = np.diff(frames, axis=0) if len(frames) > 1 else np.zeros_like(frames)
            parts.append(d.std(0))
        elif h in ("skew", "kurt"):  # exactly the feature print's
            parts += _fp_pool(frames, (h,))
        elif h == "dabs":
            d = np.diff(frames, axis=0) if len(frames) > 1 else np.zeros_like(frames)
            parts.append(np.abs(d).mean(0))
        else:
            raise ValueError(h)
    return np.concatenate(parts)


def mel_feature(m: np.ndarray, how: tuple[str, ...], normalise: bool) -> np.ndarray:
    if normalise:
        m = m - m.mean()
    return pool(m, how)


def mfcc_feature(m: np.ndarray, how: tuple[str, ...], normalise: bool) -> np.ndarray:
    c = m @ DCT
    if normalise:
        c = c[:, 1:]
    return pool(c, how)


def emb_feature(e: np.ndarray, how: tuple[str, ...], stride: int) -> np.ndarray:
    return pool(e[:: stride // 8], how) if stride % 8 == 0 else pool(e[:: max(1, round(stride / 8))], how)


def envelope_feature(m: np.ndarray) -> np.ndarray:
    """Temporal shape of the frame energy: level statistics, peakiness, onset
    rate and periodicity (repeated blows), plus spectral centroid statistics."""
    power = 10.0 ** (m / 10.0)
    e = 10.0 * np.log10(power.sum(1) + 1e-12)
    p10, p50, p90 = np.percentile(e, [10, 50, 90])
    d = np.diff(e) if len(e) > 1 else np.zeros(1)
    onsets = np.sum((d[1:] > 3.0) & (d[:-1] <= 3.0)) / max(len(e) / 100.0, 0.1)
    z = e - e.mean()
    ac = np.correlate(z, z, mode="full")[len(z) - 1 :]
    ac = ac / (ac[0] + 1e-9)
    lags = ac[10:150] if len(ac) > 150 else np.zeros(1)
    centroid = (power * np.arange(m.shape[1])).sum(1) / (power.sum(1) + 1e-12)
    return np.array(
        [e.mean(), e.std(), e.max(), p10, p50, p90, e.max() - p50, d.std(), np.mean(e > p50 + 6.0), onsets,
         lags.max(), float(np.argmax(lags)), centroid.mean(), centroid.std(), np.percentile(centroid, 90)]
    )


LM4 = ("mean", "std", "max", "dstd")
LM7 = ("mean", "std", "max", "p10", "p50", "p90", "dstd")

ROUND2 = {
    "A: logmel4 + emb mean+max/160ms": lambda m, e: np.concatenate([mel_feature(m, LM4, False), emb_feature(e, ("mean", "max"), 16)]),
    "A+env": lambda m, e: np.concatenate([mel_feature(m, LM4, False), emb_feature(e, ("mean", "max"), 16), envelope_feature(m)]),
    "B: logmel7 + emb mean+max+std/160ms": lambda m, e: np.concatenate([mel_feature(m, LM7, False), emb_feature(e, ("mean", "max", "std"), 16)]),
    "B+env": lambda m, e: np.concatenate([mel_feature(m, LM7, False), emb_feature(e, ("mean", "max", "std"), 16), envelope_feature(m)]),
    "logmel4 + env": lambda m, e: np.concatenate([mel_feature(m, LM4, False), envelope_feature(m)]),
    "A 240ms": lambda m, e: np.concatenate([mel_feature(m, LM4, False), emb_feature(e, ("mean", "max"), 24)]),
}

ROUND1 = {
    "logmel mean+std": lambda m, e: mel_feature(m, ("mean", "std"), False),
    "logmel mean+std (gain-normalised)": lambda m, e: mel_feature(m, ("mean", "std"), True),
    "logmel mean+std+max+p10+p50+p90+dstd": lambda m, e: mel_feature(
        m, ("mean", "std", "max", "p10", "p50", "p90", "dstd"), False
    ),
    "logmel mean+std+max+dstd": lambda m, e: mel_feature(m, ("mean", "std", "max", "dstd"), False),
    "mfcc20 mean+std+dstd": lambda m, e: mfcc_feature(m, ("mean", "std", "dstd"), False),
    "mfcc20 mean+std+max+p10+p90+dstd": lambda m, e: mfcc_feature(m, ("mean", "std", "max", "p10", "p90", "dstd"), False),
    "embedding mean": lambda m, e: emb_feature(e, ("mean",), 8),
    "embedding mean+max": lambda m, e: emb_feature(e, ("mean", "max"), 8),
    "embedding mean+max+std": lambda m, e: emb_feature(e, ("mean", "max", "std"), 8),
    "embedding mean+max (stride 160 ms)": lambda m, e: emb_feature(e, ("mean", "max"), 16),
    "embedding mean+max (stride 320 ms)": lambda m, e: emb_feature(e, ("mean", "max"), 32),
    "logmel mean+std+max+dstd + embedding mean+max": lambda m, e: np.concatenate(
        [mel_feature(m, ("mean", "std", "max", "dstd"), False), emb_feature(e, ("mean", "max"), 8)]
    ),
    "logmel mean+std+max+dstd + embedding mean+max (160 ms)": lambda m, e: np.concatenate(
        [mel_feature(m, ("mean", "std", "max", "dstd"), False), emb_feature(e, ("mean", "max"), 16)]
    ),
    "logmel mean+std+max+dstd + embedding mean+max (320 ms)": lambda m, e: np.concatenate(
        [mel_feature(m, ("mean", "std", "max", "dstd"), False), emb_feature(e, ("mean", "max"), 32)]
    ),
    "mfcc20 stats + embedding mean+max (160 ms)": lambda m, e: np.concatenate(
        [mfcc_feature(m, ("mean", "std", "max", "p10", "p90", "dstd"), False), emb_feature(e, ("mean", "max"), 16)]
    ),
    "logmel all stats + embedding mean+max+std": lambda m, e: np.concatenate(
        [
            mel_feature(m, ("mean", "std", "max", "p10", "p50", "p90", "dstd"), False),
            emb_feature(e, ("mean", "max", "std"), 8),
        ]
    ),
}


# ---- classifier (throw-away logistic regression for the study) --------------
def few_shot_pick(train: np.ndarray, y: np.ndarray, n_classes: int, rng: np.random.Generator, per_class: int = 10) -> np.ndarray:
    """Indices of ``per_class`` random training clips of each class (all of a smaller class)."""
    pick: list[int] = []
    for c in range(n_classes):
        idx = np.flatnonzero(train & (y == c))
        pick.extend(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
    return np.array(pick)


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    n, d = z.shape
    onehot = np.eye(n_classes)[y]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        W = w[: d * n_classes].reshape(d, n_classes)
        b = w[d * n_classes :]
        logits = z @ W + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        value = -np.sum(onehot * np.log(p + 1e-12)) / n + 0.5 * l2 * np.sum(W * W)
        g = (p - onehot) / n
        return value, np.concatenate([(z.T @ g + l2 * W).ravel(), g.sum(0)])

    res = minimize(loss, np.zeros(d * n_classes + n_classes), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    W = res.x[: d * n_classes].reshape(d, n_classes)
    return mu, sd, np.vstack([W, res.x[d * n_classes :]])


def predict(model: tuple, x: np.ndarray) -> np.ndarray:
    mu, sd, Wb = model
    z = (x - mu) / sd
    return np.argmax(z @ Wb[:-1] + Wb[-1], axis=1)


def group_folds(labels: np.ndarray, groups: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold index per clip: the groups of each label dealt round-robin, so every
    label appears in every fold when it has ≥ k groups."""
    fold = np.zeros(len(labels), dtype=int)
    offset = int(rng.integers(k))
    for label in np.unique(labels):
        gs = np.unique(groups[labels == label])
        rng.shuffle(gs)
        for i, g in enumerate(gs):
            fold[(groups == g) & (labels == label)] = (i + offset) % k
        offset += len(gs)
    return fold


def evaluate(X: np.ndarray, y: np.ndarray, groups: np.ndarray, *, repeats: int, few_draws: int, l2: float) -> dict:
    n_classes = int(y.max()) + 1
    full, few = [], []
    for r in range(repeats):
        rng = np.random.default_rng(1000 + r)
        folds = group_folds(y, groups, 5, rng)
        correct_full = correct_few = total = 0
        for f in range(5):
            train, test = folds != f, folds == f
            if not test.any():
                continue
            model = fit_logistic(X[train], y[train], n_classes, l2)
            correct_full += int((predict(model, X[test]) == y[test]).sum())
            total += int(test.sum())
            for d in range(few_draws):
                pick = few_shot_pick(train, y, n_classes, rng)
                model = fit_logistic(X[pick], y[pick], n_classes, l2)
                correct_few += int((predict(model, X[test]) == y[test]).sum()) / few_draws
        full.append(correct_full / total)
        few.append(correct_few / total)
    return {
        "accuracy": float(np.mean(full)),
        "accuracy_min": float(np.min(full)),
        "few_shot_accuracy": float(np.mean(few)),
        "few_shot_min": float(np.min(few)),
    }


# ---- round 3: temporal structure (onsets, impacts, impulsiveness, modulation) --
def onset_strength(m: np.ndarray) -> np.ndarray:
    """Mean positive frame-to-frame rise over the bands (dB): spectral flux."""
    return np.maximum(np.diff(m, axis=0, prepend=m[:1]), 0).mean(1)


def onset_peaks(o: np.ndarray, min_gap: int = 5, rel: float = 0.3) -> np.ndarray:
    """Local maxima of the onset strength above ``rel`` of its maximum, at least
    ``min_gap`` frames apart (strongest first), in time order."""
    cand = np.flatnonzero((o[1:-1] >= o[:-2]) & (o[1:-1] > o[2:])) + 1
    cand = cand[o[cand] >= rel * o.max()] if o.max() > 0 else cand[:0]
    keep: list[int] = []
    for c in cand[np.argsort(-o[cand])]:
        if all(abs(c - k) >= min_gap for k in keep):
            keep.append(int(c))
    return np.array(sorted(keep), dtype=int)


def onset_feature(m: np.ndarray) -> np.ndarray:
    """Onset rate, inter-onset intervals (mean, spread, regularity, shrinking
    ratio: bounces), second-strongest/strongest onset, flux statistics."""
    o = onset_strength(m)
    p = onset_peaks(o)
    s = np.sort(o[p])[::-1] if len(p) else np.zeros(1)
    ioi = np.diff(p) / 100.0 if len(p) > 1 else np.zeros(1)
    r = ioi[1:] / (ioi[:-1] + 1e-3) if len(ioi) > 1 else np.ones(1)
    second = s[1] / s[0] if len(s) > 1 and s[0] > 0 else 0.0
    return np.array([len(p) / (len(m) / 100.0), np.log1p(len(p)), ioi.mean(), ioi.std(), ioi.std() / (ioi.mean() + 1e-3),
                     np.median(r), r.mean(), second, o.mean(), o.std(), o.max(), np.percentile(o, 90), (o > 0.5 * o.max()).mean()])


def impact_feature(m: np.ndarray, k: int = 3) -> np.ndarray:
    """Impact-aligned: the attack spectrum (3 frames from each of the ``k``
    strongest onsets) above the clip's 10th-percentile background, and the
    decay of 8 band groups 50/100/200/400 ms after the onset."""
    o = onset_strength(m)
    p = onset_peaks(o)
    if len(p) == 0:
        p = np.array([int(np.argmax(o))])
    top = p[np.argsort(-o[p])][:k]
    g = m.reshape(len(m), 8, 8).mean(2)
    last, bg = len(m) - 1, np.percentile(m, 10, axis=0)
    attack = np.mean([m[t : t + 3].mean(0) - bg for t in top], axis=0)
    decay = np.mean([np.concatenate([g[min(last, t + d)] - g[min(last, t + 1)] for d in (5, 10, 20, 40)]) for t in top], axis=0)
    return np.concatenate([attack, decay])


def periodicity_feature(m: np.ndarray) -> np.ndarray:
    """Autocorrelation of the onset strength at 0.1–1.5 s lags: peak, its lag, mean, top-10 mean."""
    z = onset_strength(m)
    z = z - z.mean()
    ac = np.correlate(z, z, "full")[len(z) - 1 :]
    ac = ac / (ac[0] + 1e-9)
    lags = ac[10:150] if len(ac) > 150 else np.pad(ac[10:], (0, max(0, 150 - len(ac))))
    return np.array([lags.max(), np.log((int(np.argmax(lags)) + 10) / 100.0), lags.mean(), np.sort(lags)[-10:].mean()])


def flatness_feature(m: np.ndarray) -> np.ndarray:
    """Spectral flatness (dB) and centroid (band index) per frame, pooled."""
    pw = 10 ** (m / 10)
    fl = 10 * (np.log10(pw + 1e-12).mean(1) - np.log10(pw.mean(1) + 1e-12))
    c = (pw * np.arange(m.shape[1])).sum(1) / (pw.sum(1) + 1e-12)
    return np.array([fl.mean(), fl.std(), fl.min(), np.percentile(fl, 90), c.mean(), c.std(), c.max(), c.min()])


def contrast_feature(m: np.ndarray) -> np.ndarray:
    """Spectral contrast (max - min band within 8 groups) per frame: mean, std."""
    g = m.reshape(len(m), 8, 8)
    c = g.max(2) - g.min(2)
    return np.concatenate([c.mean(0), c.std(0)])


def prominence_feature(m: np.ndarray) -> np.ndarray:
    """Per band: peak above the median, and the 5–95 % range (gain-invariant)."""
    return np.concatenate([m.max(0) - np.percentile(m, 50, axis=0), np.percentile(m, 95, axis=0) - np.percentile(m, 5, axis=0)])


def delta_lag_feature(m: np.ndarray, lag: int = 5) -> np.ndarray:
    """Change over 50 ms per band: std, max, min."""
    d = m[lag:] - m[:-lag] if len(m) > lag else np.zeros_like(m)
    return np.concatenate([d.std(0), d.max(0), d.min(0)])


def group_stats_feature(m: np.ndarray) -> np.ndarray:
    """8 band groups: percentiles, peak prominence, fastest rise/fall, |Δ| p90."""
    g = m.reshape(len(m), 8, 8).mean(2)
    d = np.diff(g, axis=0)
    return np.concatenate([np.percentile(g, 10, 0), np.percentile(g, 50, 0), np.percentile(g, 90, 0),
                           g.max(0) - np.percentile(g, 50, 0), d.max(0), d.min(0), np.percentile(np.abs(d), 90, 0)])


def embedding_shape_feature(e: np.ndarray) -> np.ndarray:
    """Skewness and log kurtosis of the embedding (every 160 ms) over the clip."""
    return np.concatenate(_fp_pool(e[::2], ("skew", "kurt")))


def _default(m: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Feature print v1 (log-mel 4 stats + embedding mean + max every 160 ms)."""
    return np.concatenate([pool(m, LM4), emb_feature(e, ("mean", "max"), 16)])


def _with(*blocks):  # noqa: ANN002, ANN202
    """The v1 default with extra blocks (functions of log-mel and embedding frames) appended."""
    return lambda m, e: np.concatenate([_default(m, e), *[b(m, e) for b in blocks]])


SK = lambda m, e: pool(m, ("skew", "kurt"))  # noqa: E731
MOD8 = lambda m, e: modulation_spectrum(m, 8)  # noqa: E731
MOD16 = lambda m, e: modulation_spectrum(m, 16)  # noqa: E731

ROUND3 = {
    "v1 default (logmel4 + emb mean+max/160ms)": _default,
    "v1 + onsets (rate, intervals, flux)": _with(lambda m, e: onset_feature(m)),
    "v1 + impact-aligned (attack spectrum, decay)": _with(lambda m, e: impact_feature(m)),
    "v1 + modulation spectrum (8 groups)": _with(MOD8),
    "v1 + onset periodicity": _with(lambda m, e: periodicity_feature(m)),
    "v1 + flatness/centroid": _with(lambda m, e: flatness_feature(m)),
    "v1 + spectral contrast": _with(lambda m, e: contrast_feature(m)),
    "v1 + percentiles p10/p50/p90": _with(lambda m, e: pool(m, ("p10", "p50", "p90"))),
    "v1 + prominence (max-p50, p95-p5)": _with(lambda m, e: prominence_feature(m)),
    "v1 + 50 ms deltas": _with(lambda m, e: delta_lag_feature(m)),
    "v1 + band-group stats": _with(lambda m, e: group_stats_feature(m)),
    "v1 + skew": _with(lambda m, e: pool(m, ("skew",))),
    "v1 + kurt": _with(lambda m, e: pool(m, ("kurt",))),
    "v1 + skew + kurt": _with(SK),
    "v1 + skew + kurt + prominence": _with(SK, lambda m, e: prominence_feature(m)),
    "v1 + skew + kurt + embedding skew/kurt": _with(SK, lambda m, e: embedding_shape_feature(e)),
    "v1 + skew + kurt + modulation (8 groups)": _with(SK, MOD8),
    "v1 + skew + kurt + modulation (16 groups) = v2 blocks": _with(SK, MOD16),
    "v1 + skew + kurt + modulation (8) + impact": _with(SK, MOD8, lambda m, e: impact_feature(m)),
    "v1 + skew + kurt + modulation (8) + onsets": _with(SK, MOD8, lambda m, e: onset_feature(m)),
    # embedding density with v2's log-mel blocks (the cache has one embedding every 80 ms)
    "v2 blocks, embedding every 240 ms": lambda m, e: np.concatenate(
        [pool(m, LM4), SK(m, e), MOD16(m, e), emb_feature(e, ("mean", "max"), 24)]),
    "v2 blocks, embedding every 320 ms": lambda m, e: np.concatenate(
        [pool(m, LM4), SK(m, e), MOD16(m, e), emb_feature(e, ("mean", "max"), 32)]),
    "v2 log-mel blocks only (no embedding)": lambda m, e: np.concatenate([pool(m, LM4), SK(m, e), MOD16(m, e)]),
}


def round3(args: argparse.Namespace, data: dict, mels: list, embs: list) -> int:
    """Each temporal-structure variant, both groupings, with all clips and
    without the clips duplicated under another label (same folds and draws
    for every variant)."""
    names = sorted(set(data["labels"]))
    y_all = np.array([names.index(label) for label in data["labels"]])
    paths = [args.data / p for p in data["paths"]]
    dup = conflicting_duplicates(args.data.resolve(), data["paths"])
    results = {}
    for name, fn in ROUND3.items():
        if args.only and args.only not in name:
            continue
        X_all = np.stack([fn(m, e) for m, e in zip(mels, embs)]).astype(np.float64)
        cells = []
        for subset in ("all clips", "without duplicates"):
            keep = np.ones(len(y_all), bool) if subset == "all clips" else ~dup
            for grouping, grouper in (("clip", clip_group), ("recording", recording_group)):
                groups = np.array([grouper(p) for p, k in zip(paths, keep) if k])
                r = evaluate(X_all[keep], y_all[keep], groups, repeats=args.repeats, few_draws=args.few_draws, l2=args.l2[0])
                r["dimension"] = int(X_all.shape[1])
                results[f"{subset} | {grouping} | {name}"] = r
                cells.append(f"{r['accuracy']:.3f}/{r['few_shot_accuracy']:.3f}")
        print(f"{name:50s} d={X_all.shape[1]:4d}  all: clip {cells[0]} position {cells[1]}  "
              f"w/o dup: clip {cells[2]} position {cells[3]}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"repeats": args.repeats, "few_draws": args.few_draws, "results": results}, indent=2))
    return 0


VARIANTS = {
    "logmel mean+std": ROUND1["logmel mean+std"],
    "logmel mean+std (gain-normalised)": ROUND1["logmel mean+std (gain-normalised)"],
    "logmel mean+std+max+dstd": ROUND1["logmel mean+std+max+dstd"],
    "logmel mean+std+max+p10+p50+p90+dstd": ROUND1["logmel mean+std+max+p10+p50+p90+dstd"],
    "mfcc20 mean+std+max+p10+p90+dstd": ROUND1["mfcc20 mean+std+max+p10+p90+dstd"],
    "embedding mean+max (80 ms)": ROUND1["embedding mean+max"],
    "embedding mean+max+std (80 ms)": ROUND1["embedding mean+max+std"],
    "logmel 4 stats + embedding mean+max (80 ms)": ROUND1["logmel mean+std+max+dstd + embedding mean+max"],
    "logmel 4 stats + embedding mean+max (160 ms)": ROUND1["logmel mean+std+max+dstd + embedding mean+max (160 ms)"],
    "logmel 4 stats + embedding mean+max (320 ms)": ROUND1["logmel mean+std+max+dstd + embedding mean+max (320 ms)"],
    "logmel 4 stats + embedding mean+max (160 ms) + envelope": ROUND2["A+env"],
    "logmel 7 stats + embedding mean+max+std (80 ms)": ROUND1["logmel all stats + embedding mean+max+std"],
}


def real_feature_print(data: Path, repeats: int, few_draws: int, l2: float, json_out: Path | None = None) -> dict:
    """The shipped default AudioFeaturePrint (int8, dequantised): the study's
    logistic regression (all training clips and 10 per class) and the device's
    own LogisticRegressionClassifier, both groupings, with all clips and
    without the clips duplicated under another label."""
    from device.audio.featureprint import AudioFeaturePrint
    from device.components import Examples
    from device.learn import LogisticRegressionClassifier

    fp = AudioFeaturePrint()
    files = sorted(p for p in data.glob("*/*") if p.suffix.lower() in (".wav", ".flac", ".ogg"))
    t = time.process_time()
    seconds = 0.0
    q = []
    for p in files:
        x = load_audio(p)
        seconds += len(x) / SAMPLE_RATE
        q.append(fp.transform_clip(x))
    cost = (time.process_time() - t) / seconds
    X_all = fp.dequantize(np.stack(q)).astype(np.float64)
    names = sorted({p.parent.name for p in files})
    y_all = np.array([names.index(p.parent.name) for p in files])
    dup = conflicting_duplicates(data, np.array([str(p.relative_to(data)) for p in files]))
    print(f"default feature print {fp.fingerprint()[:12]}: d={fp.dimension}, clip form {1000 * cost:.1f} ms CPU per s of audio; "
          f"{len(files)} clips, {int(dup.sum())} duplicated under another label")
    results: dict = {"fingerprint": fp.fingerprint(), "dimension": fp.dimension, "clips": len(files),
                     "repeats": repeats, "few_draws": few_draws, "l2": l2, "results": {}}
    for subset in ("all clips", "without duplicates"):
        keep = np.ones(len(files), bool) if subset == "all clips" else ~dup
        X, y, kept = X_all[keep], y_all[keep], np.flatnonzero(keep)
        for grouping, grouper in (("clip", clip_group), ("recording", recording_group)):
            groups = np.array([grouper(files[i]) for i in kept])
            r = evaluate(X, y, groups, repeats=repeats, few_draws=few_draws, l2=l2)
            # the device's own classifier on int8 input, one 5-fold pass
            folds = group_folds(y, groups, 5, np.random.default_rng(1000))
            correct = 0
            for f in range(5):
                tr, te = kept[folds != f], kept[folds == f]
                model = LogisticRegressionClassifier(l2_penalty=l2).fit(
                    Examples.of(fp.dequantize(np.stack([q[i] for i in tr])), [names[y_all[i]] for i in tr])
                )
                pred = model.predict(fp.dequantize(np.stack([q[i] for i in te])))
                correct += sum(p == names[y_all[i]] for p, i in zip(pred, te))
            r["device_accuracy"] = correct / len(y)
            results["results"][f"{subset} | {grouping}"] = r
            print(
                f"  {subset:18s} {grouping:9s} grouping: acc {r['accuracy']:.3f} (min {r['accuracy_min']:.3f})  "
                f"10/class {r['few_shot_accuracy']:.3f} (min {r['few_shot_min']:.3f})  "
                f"device classifier {r['device_accuracy']:.3f}",
                flush=True,
            )
    if json_out:
        json_out.write_text(json.dumps(results, indent=2))
    return results


# ---- window-level (multiple-instance) training --------------------------------
WINDOW_S, HOP_S = 3.0, 1.5
LOGMEL_FRAME, LOGMEL_HOP = 400, 160  # log-mel frame j covers samples [160 j, 160 j + 400)
EMB_HOP, EMB_SPAN = 1280, 160 * 75 + 640  # embedding i covers samples [1280 i, 1280 i + 12640)


def window_bounds(n_samples: int, window_s: float = WINDOW_S, hop_s: float = HOP_S) -> list[tuple[int, int]]:
    """Sample ranges of the feature print's windows over one clip: a window
    every hop, a final one aligned to the clip's end if audio is left over,
    and the whole clip as one window if it is shorter than a window."""
    w, h = int(round(window_s * SAMPLE_RATE)), int(round(hop_s * SAMPLE_RATE))
    if n_samples <= w:
        return [(0, n_samples)]
    out = [(a, a + w) for a in range(0, n_samples - w + 1, h)]
    if out[-1][1] < n_samples:
        out.append((n_samples - w, n_samples))
    return out


def window_feature(m: np.ndarray, e: np.ndarray, a: int, b: int, *, last: bool = False) -> np.ndarray:
    """The default variant (log-mel 4 stats + embedding mean+max every 160 ms)
    of the cached frames that lie inside samples [a, b); the clip's last
    window (``last``) keeps every frame to the clip's end (the speech mel model
    pads the end, so its last embedding may reach a few ms past it)."""
    j = np.arange(len(m))
    mm = m[(j * LOGMEL_HOP >= a) & ((j * LOGMEL_HOP + LOGMEL_FRAME <= b) | last)]
    if len(mm) == 0:
        mm = m
    i = np.arange(len(e))
    sel = (i % 2 == 0) & (i * EMB_HOP >= a) & ((i * EMB_HOP + EMB_SPAN <= b) | last)
    ee = e[sel] if sel.any() else e[::2]
    return np.concatenate([pool(mm, LM4), pool(ee, ("mean", "max"))])


def clip_samples(mel_frames: int) -> int:
    """Clip length in samples recovered from its log-mel frame count."""
    return (mel_frames - 1) * LOGMEL_HOP + LOGMEL_FRAME


def log_proba(model: tuple, x: np.ndarray) -> np.ndarray:
    mu, sd, Wb = model
    logits = ((x - mu) / sd) @ Wb[:-1] + Wb[-1]
    logits -= logits.max(1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(1, keepdims=True))


AGGREGATES = ("mean log-prob", "mean prob", "max prob")


def aggregate(lp: np.ndarray, owner: np.ndarray, clips: np.ndarray) -> dict[str, np.ndarray]:
    """Clip predictions from window log-probabilities, three ways."""
    out = {k: np.zeros(len(clips), dtype=int) for k in AGGREGATES}
    for n, c in enumerate(clips):
        w = lp[owner == c]
        out["mean log-prob"][n] = np.argmax(w.mean(0))
        out["mean prob"][n] = np.argmax(np.exp(w).mean(0))
        out["max prob"][n] = np.argmax(w.max(0))
    return out


def conflicting_duplicates(data: Path, paths: np.ndarray) -> np.ndarray:
    """Mask of clips whose bytes equal another clip's with a different label."""
    import hashlib

    digests = [hashlib.sha256((data / p).read_bytes()).hexdigest() for p in paths]
    labels = [Path(p).parent.name for p in paths]
    by: dict[str, set[str]] = {}
    for d, label in zip(digests, labels):
        by.setdefault(d, set()).add(label)
    return np.array([len(by[d]) > 1 for d in digests])


def evaluate_windows(
    variants: dict[str, tuple[str, np.ndarray]], owner: np.ndarray, y: np.ndarray, groups: np.ndarray,
    *, repeats: int, few_draws: int, l2: float,
) -> dict[str, dict[str, float]]:
    """Same folds and 10-per-class draws as :func:`evaluate`, shared by all
    variants. A variant is ("clip", X per clip) or ("window", X per window,
    rows owned by clip ``owner``); window variants are scored per aggregate."""
    n_classes = int(y.max()) + 1
    keys = [(name, agg) for name, (kind, _) in variants.items() for agg in (("-",) if kind == "clip" else AGGREGATES)]
    full = {k: [] for k in keys}
    few = {k: [] for k in keys}

    def score(model_rows: np.ndarray, test: np.ndarray, acc: dict, weight: float) -> None:
        test_clips = np.flatnonzero(test)
        for name, (kind, X) in variants.items():
            if kind == "clip":
                model = fit_logistic(X[model_rows], y[model_rows], n_classes, l2)
                acc[(name, "-")] += weight * int((predict(model, X[test]) == y[test]).sum())
            else:
                rows = np.isin(owner, model_rows)
                model = fit_logistic(X[rows], y[owner[rows]], n_classes, l2)
                trows = np.isin(owner, test_clips)
                preds = aggregate(log_proba(model, X[trows]), owner[trows], test_clips)
                for agg, p in preds.items():
                    acc[(name, agg)] += weight * int((p == y[test_clips]).sum())

    for r in range(repeats):
        rng = np.random.default_rng(1000 + r)
        folds = group_folds(y, groups, 5, rng)
        cf = {k: 0.0 for k in keys}
        cw = {k: 0.0 for k in keys}
        total = 0
        for f in range(5):
            train, test = folds != f, folds == f
            if not test.any():
                continue
            score(np.flatnonzero(train), test, cf, 1.0)
            total += int(test.sum())
            for d in range(few_draws):
                score(few_shot_pick(train, y, n_classes, rng), test, cw, 1.0 / few_draws)
        for k in keys:
            full[k].append(cf[k] / total)
            few[k].append(cw[k] / total)
    return {
        f"{name} [{agg}]" if agg != "-" else name: {
            "accuracy": float(np.mean(full[(name, agg)])),
            "few_shot_accuracy": float(np.mean(few[(name, agg)])),
        }
        for name, agg in keys
    }


def window_training(args: argparse.Namespace, data: dict, mels: list, embs: list) -> int:
    """Clip-pooled default vs training on windows (each labelled with its
    clip's label, folds still by recording group), both groupings, with and
    without the clips whose bytes are duplicated under another label."""
    names = sorted(set(data["labels"]))
    y_all = np.array([names.index(label) for label in data["labels"]])
    paths_all = np.array([args.data / p for p in data["paths"]])
    dup = conflicting_duplicates(args.data.resolve(), data["paths"])
    win_rows, win_owner, win_index, win_count = [], [], [], []
    for c, (m, e) in enumerate(zip(mels, embs)):
        bounds = window_bounds(clip_samples(len(m)), args.window, args.hop)
        win_count.append(len(bounds))
        for k, (a, b) in enumerate(bounds):
            win_rows.append(window_feature(m, e, a, b, last=k == len(bounds) - 1))
            win_owner.append(c)
            win_index.append(k)
    Xw_all = np.stack(win_rows).astype(np.float64)
    owner_all = np.array(win_owner)
    Xc_all = np.stack([ROUND2["A: logmel4 + emb mean+max/160ms"](m, e) for m, e in zip(mels, embs)]).astype(np.float64)
    print(
        f"{len(y_all)} clips -> {len(Xw_all)} windows of {args.window:g} s every {args.hop:g} s "
        f"(per clip: min {min(win_count)}, median {int(np.median(win_count))}, max {max(win_count)}); "
        f"{int(dup.sum())} clips duplicated under another label",
        flush=True,
    )
    results = {}
    for subset in ("all clips", "without duplicates"):
        keep = np.ones(len(y_all), bool) if subset == "all clips" else ~dup
        new_index = -np.ones(len(y_all), dtype=int)
        new_index[keep] = np.arange(int(keep.sum()))
        wkeep = keep[owner_all]
        owner = new_index[owner_all[wkeep]]
        y, Xc, Xw = y_all[keep], Xc_all[keep], Xw_all[wkeep]
        variants: dict[str, tuple[str, np.ndarray]] = {"clip-pooled default": ("clip", Xc)}
        variants["window training"] = ("window", Xw)
        if args.window_extras:
            variants["window training + clip vector"] = ("window", np.hstack([Xw, Xc[owner]]))
        for grouping, grouper in (("clip", clip_group), ("recording", recording_group)):
            groups = np.array([grouper(p) for p in paths_all[keep]])
            for l2 in args.l2:
                t = time.time()
                r = evaluate_windows(variants, owner, y, groups, repeats=args.repeats, few_draws=args.few_draws, l2=l2)
                for name, v in r.items():
                    results[f"{subset} | {grouping} | l2 {l2:g} | {name}"] = v
                    print(
                        f"{subset:18s} {grouping:9s} l2 {l2:<6g} {name:52s} acc {v['accuracy']:.3f}  "
                        f"10/class {v['few_shot_accuracy']:.3f}",
                        flush=True,
                    )
                print(f"  ({time.time() - t:.0f} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"repeats": args.repeats, "few_draws": args.few_draws, "results": results}, indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "room-sounds-dev")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cadence-audio-study.npz")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--few-draws", type=int, default=3)
    parser.add_argument("--l2", type=float, nargs="+", default=[0.01])
    parser.add_argument("--grouping", choices=["recording", "clip"], default="recording")
    parser.add_argument("--all", action="store_true", help="every variant tried (both rounds), not the summary set")
    parser.add_argument("--real", action="store_true", help="evaluate the shipped default feature print instead")
    parser.add_argument("--only", default=None, help="substring filter on variant names")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--window-training", action="store_true",
                        help="train on the feature print's windows (clip's label) and predict a clip from its windows; "
                             "compared with the clip-pooled default, both groupings, with/without duplicated clips")
    parser.add_argument("--window", type=float, default=WINDOW_S, help="window length (s) for --window-training")
    parser.add_argument("--hop", type=float, default=HOP_S, help="window hop (s) for --window-training")
    parser.add_argument("--round3", action="store_true",
                        help="temporal-structure variants (onsets, impacts, skew/kurtosis, modulation spectrum), "
                             "both groupings, with/without duplicated clips")
    parser.add_argument("--window-extras", action="store_true",
                        help="with --window-training: also each window's vector joined with its clip's vector")
    args = parser.parse_args()
    if args.real:
        real_feature_print(args.data.resolve(), args.repeats, args.few_draws, args.l2[0], args.json)
        return 0
    data = extract(args.data.resolve(), args.cache)
    mels = split_rows(data["mel"], data["mel_lengths"])
    embs = split_rows(data["emb"], data["emb_lengths"])
    if args.window_training:
        return window_training(args, data, mels, embs)
    if args.round3:
        return round3(args, data, mels, embs)
    names = sorted(set(data["labels"]))
    y = np.array([names.index(label) for label in data["labels"]])
    paths = [args.data / p for p in data["paths"]]
    grouper = recording_group if args.grouping == "recording" else clip_group
    groups = np.array([grouper(p) for p in paths])
    c = data["cost"]
    print(f"{len(y)} clips, {len(set(groups))} recording groups ({args.grouping}), {c[3]:.0f} s of audio")
    print(
        f"front-end cost per second of audio (1 thread): log-mel {1000 * c[0] / c[3]:.2f} ms, "
        f"mel model {1000 * c[1] / c[3]:.2f} ms, embeddings every 80 ms {1000 * c[2] / c[3]:.2f} ms"
    )
    results = {}
    table = {**ROUND1, **ROUND2} if args.all else VARIANTS
    for (name, fn), l2 in ((item, l2) for item in table.items() for l2 in args.l2):
        if args.only and args.only not in name:
            continue
        X = np.stack([fn(m, e) for m, e in zip(mels, embs)]).astype(np.float64)
        r = evaluate(X, y, groups, repeats=args.repeats, few_draws=args.few_draws, l2=l2)
        r["dimension"] = int(X.shape[1])
        r["l2"] = l2
        results[f"{name} (l2 {l2:g})"] = r
        print(
            f"{name:52s} l2 {l2:<5g} d={X.shape[1]:4d}  acc {r['accuracy']:.3f} (min {r['accuracy_min']:.3f})  "
            f"10/class {r['few_shot_accuracy']:.3f} (min {r['few_shot_min']:.3f})",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps({"grouping": args.grouping, "l2": args.l2, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
