"""Polyphase resampling in numpy, equal to ``scipy.signal.resample_poly``.

Why not scipy's: importing ``scipy.signal`` imports ``scipy.stats``,
``scipy.optimize``, ``scipy.interpolate`` … and adds about 50 MB of RSS to
the daemon (measured by ``scripts/soak.py``) for one function. This is the
same filter (a Kaiser-windowed sinc, β = 5, ``10 * max(up, down)`` taps on
each side at the upsampled rate, gain ``up``) and the same zero-padded
alignment, so the output matches scipy's to float rounding.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np

# terms of a resampling ratio at most this (every usual rate to 16 kHz is exact: 44.1 kHz is 160/441); an odd
# rate is resampled by the nearest such ratio (off by < 0.001 %) — exact, a damaged header's 2,097,151 Hz
# asked for a filter of 42 million taps (fuzzing: MemoryError)
MAX_RATIO_TERM = 1000


def resampling_ratio(rate_in: int, rate_out: int) -> tuple[int, int]:
    """(up, down) for resampling ``rate_in`` to ``rate_out``: exact, or the nearest ratio of small terms."""
    ratio = Fraction(int(rate_out), int(rate_in))
    if max(ratio.numerator, ratio.denominator) > MAX_RATIO_TERM:
        ratio = ratio.limit_denominator(MAX_RATIO_TERM)
    return ratio.numerator, ratio.denominator


@functools.lru_cache(maxsize=8)
def _polyphase(up: int, down: int) -> tuple[np.ndarray, int, int]:
    """The filter split into ``up`` phases (rows), its pre-padding and half length."""
    half = 10 * max(up, down)
    m = np.arange(2 * half + 1) - half
    cutoff = 1.0 / max(up, down)
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(2 * half + 1, 5.0)
    h = h / h.sum() * up
    taps = math.ceil(len(h) / up)
    phases = np.zeros(up * taps)
    phases[: len(h)] = h
    table = phases.reshape(taps, up).T.copy()  # table[p, j] = h[p + j * up]
    table.setflags(write=False)
    return table, down - half % down, taps


def resample_poly(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """Resample the 1-D signal ``x`` by ``up / down`` (zero padding at both ends), float64."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    g = math.gcd(int(up), int(down))
    up, down = int(up) // g, int(down) // g
    if up == down == 1:
        return x.copy()
    table, pre_pad, taps = _polyphase(up, down)
    n_out = -(-len(x) * up // down)
    first = (10 * max(up, down) + pre_pad) // down
    # windows[i] = padded[i : i + taps]; output k reads input t//up, t//up - 1, … (t = k*down - pre_pad)
    padded = np.concatenate([np.zeros(taps), x, np.zeros(taps + down)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, taps)
    out = np.empty(n_out)
    for r in range(min(up, n_out)):  # outputs r, r + up, r + 2 up … share a phase; their inputs advance by `down`
        t = (first + r) * down - pre_pad
        rows = windows[t // up + 1 :: down][: len(range(r, n_out, up))]
        out[r::up] = rows @ table[t % up, ::-1]
    return out
