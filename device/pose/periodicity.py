"""How periodic a one-dimensional motion is, and at which period.

The repetition counter projects the body's motion onto its dominant
direction and asks this module for the period: the normalised
autocorrelation of the signal, its peaks, and the choice among them (the
shortest period nearly as periodic as the best, so that every second
repetition is not skipped). Kept apart from the counter's bookkeeping so each
piece can be checked on its own (``tests/pose/test_counter.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

# A shorter period wins over the strongest one if its periodicity is at least
# this share of the best: guards against counting every second repetition.
PEAK_SHARE = 0.85


class Period(NamedTuple):
    """The chosen lag (frames, fractional; None if no peak), its strength (0–1)
    and how nearly a shorter or longer peak would have been chosen instead
    (0: clear choice, 1: a tie — the count may be off by a factor of two)."""

    lag: float | None
    strength: float
    ambiguity: float = 0.0


def normalised_acf(s: np.ndarray, maxlag: int) -> np.ndarray:
    """r[k] = Σ s[t]s[t+k] / sqrt(Σ s[t]² Σ s[t+k]²) over the overlap, k < maxlag."""
    n = len(s)
    nfft = 1 << int(math.ceil(math.log2(n + maxlag)))  # no wrap-around for lags < maxlag
    f = np.fft.rfft(s, nfft)
    acov = np.fft.irfft(f.real * f.real + f.imag * f.imag, nfft)[:maxlag]
    sq = np.empty(n + 1)
    sq[0] = 0.0
    np.cumsum(s * s, out=sq[1:])
    head = sq[n - maxlag + 1 : n + 1][::-1]  # head[k] = Σ_{t< n-k} s[t]²
    tail = sq[n] - sq[:maxlag]  # tail[k] = Σ_{t≥k} s[t]²
    den = np.sqrt(np.maximum(head * tail, 1e-18))
    return acov / den


def moving_part(s: np.ndarray, window: int, share: float) -> np.ndarray:
    """``s`` (centred) with the stillness before and after its moving part set to zero.

    Stillness is a stretch whose range over ``window`` frames is below
    ``share`` of the whole range. Left in, a person standing still before
    and after a short set correlates with itself at long lags (the normalised
    autocorrelation of two still stretches is 1), which hid sets of two or
    three repetitions; pauses inside the motion are kept.
    """
    if share <= 0 or len(s) <= window:
        return s
    still = share * (float(np.ptp(s)) + 1e-12)
    if float(np.ptp(s[:window])) > still and float(np.ptp(s[-window:])) > still:
        return s  # moving at both ends (the usual case): nothing to trim
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    reach = maximum_filter1d(s, window, mode="nearest") - minimum_filter1d(s, window, mode="nearest")
    moving = np.flatnonzero(reach > still)
    if moving.size == 0 or (moving[0] == 0 and moving[-1] == len(s) - 1):
        return s
    a, b = int(moving[0]), int(moving[-1]) + 1
    out = np.zeros_like(s)
    out[a:b] = s[a:b] - s[a:b].mean()
    return out


def median_rows(x: np.ndarray) -> np.ndarray:
    """np.median(x, axis=0) by partial sorting (cheaper for small arrays)."""
    m = len(x)
    h = m // 2
    if m % 2:
        return np.partition(x, h, axis=0)[h]
    part = np.partition(x, (h - 1, h), axis=0)
    return 0.5 * (part[h - 1] + part[h])


def pick_periods(r: np.ndarray, kmin: int, kmaxes: Sequence[int]) -> list[Period]:
    """For each longest lag kmax: the shortest lag in [kmin, kmax] with a strong,
    prominent autocorrelation peak (:class:`Period`; lag None if none).

    A peak's strength is half its rise above the deepest trough before it:
    1 for a sinusoid, about 0 for a ripple on a decaying slope (a slow motion
    whose period does not fit the span) or for noise. The peaks are found
    once for the longest kmax.
    """
    top = max(kmaxes)
    if top <= kmin + 1:
        return [Period(None, 0.0)] * len(kmaxes)
    peaks, vals = _peaks(r, kmin, top)
    out: list[Period] = []
    for kmax in kmaxes:
        keep = peaks <= kmax
        out.append(_choose(r, peaks[keep], vals[keep]) if kmax > kmin + 1 else Period(None, 0.0))
    return out


def _peaks(r: np.ndarray, kmin: int, kmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Lags of the autocorrelation peaks in [kmin, kmax] and their strengths."""
    seg = r[kmin - 1 : kmax + 2]
    inner = seg[1:-1]
    peaks = np.flatnonzero((inner > seg[:-2]) & (inner >= seg[2:])) + kmin
    trough = np.minimum.accumulate(r[1 : kmax + 1])  # trough[k-1] = min r[1..k]
    return peaks, np.minimum(0.5 * (r[peaks] - trough[peaks - 1]), r[peaks])


def _choose(r: np.ndarray, peaks: np.ndarray, vals: np.ndarray) -> Period:
    """The shortest peak at least PEAK_SHARE as strong as the best, at a fractional lag.

    Ambiguity: how close a shorter peak came to that bar, or, when a longer
    peak is the strongest, how close the chosen one came to falling below it.
    """
    if peaks.size == 0:
        return Period(None, 0.0)
    best = float(vals.max())
    if best <= 0:
        return Period(None, best)
    bar = PEAK_SHARE * best
    i = int(np.argmax(vals >= bar))  # the first one
    shorter = float(vals[:i].max()) / bar if i else 0.0
    longer = 1.0 - (float(vals[i]) - bar) / (best - bar) if vals[i] < best else 0.0
    k = int(peaks[i])
    a, b, c = float(r[k - 1]), float(r[k]), float(r[k + 1])
    den = a - 2 * b + c
    shift = 0.5 * (a - c) / den if den < 0 else 0.0  # parabola through the three
    return Period(k + min(0.5, max(-0.5, shift)), float(vals[i]), min(1.0, max(0.0, shorter, longer)))
