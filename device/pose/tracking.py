"""The analysis behind the repetition counter, one segment at a time.

:class:`Tracker` holds one segment's recent poses and turns them into a
:class:`RepetitionCount`: gaps, the periodic component, turning points and
repetitions, which side is rest, sets and how a set is settled.
:class:`~device.pose.counter.HumanBodyActionCounter` (the stream stage:
windows in, states out, exercise names on sets) drives it; they are apart so
that each module holds one concept. The method is in ``docs/counter.md``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .body import FEATURE_POINTS, body_features
from .periodicity import PEAK_SHARE, median_rows, moving_part, normalised_acf, pick_periods
from .rest import rest_direction

# Share of the motion's range around rest that does not count as progress.
_DEAD_ZONE = 0.15


class _Candidate(NamedTuple):
    """The dominant motion over one span and its period."""

    strength: float  # periodicity, 0..1
    span: int  # frames looked at
    lag: float  # period in frames
    signal: np.ndarray  # the motion along the component, one value per frame of the span
    component: np.ndarray  # direction in feature space
    centre: np.ndarray  # mean pose (features) of the span
    ambiguity: float  # 0..1, how nearly half or twice the period was chosen


@dataclasses.dataclass(frozen=True)
class RepetitionCount:
    """The counter's state after one window.

    ``count`` is cumulative and never decreases (a repetition in progress
    counts partly); ``period`` is in seconds and ``rate`` in repetitions per
    minute while a periodic motion is seen (None otherwise). ``set_number`` is
    0 before the first repetition, then 1, 2, … — a pause longer than the
    rest time ends a set; ``set_count`` is the count within the current set;
    ``sets`` holds the final counts of the finished sets. ``final`` marks
    the settled state once a segment (a file, a camera run) has ended: its
    ``count`` is the completed repetitions and ``sets`` includes the last set.
    Confidence: ``periodicity`` (0–1) is how repetitive the motion is (below
    the counter's ``min_periodicity`` nothing is counted); ``ambiguity``
    (0–1) is how nearly a period half or twice as long was chosen instead —
    near 1 the count may be off by a factor of two. With an exercise
    recogniser before the counter: ``exercise`` is the open set's exercise
    (else the one recognised now: ``none`` when nobody exercises, ``unknown``
    when it is no exercise the model knows), ``exercise_confidence`` the
    recogniser's confidence, and ``set_exercises`` the exercise of each of
    ``sets``; a change of exercise ends a set.
    """

    count: float
    period: float | None = None
    rate: float | None = None
    set_number: int = 0
    set_count: float = 0.0
    resting: bool = True
    periodicity: float = 0.0
    sets: tuple[float, ...] = ()
    final: bool = False
    ambiguity: float = 0.0
    exercise: str | None = None
    exercise_confidence: float = 0.0
    set_exercises: tuple[str | None, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sets"] = list(self.sets)
        d["set_exercises"] = list(self.set_exercises)
        return d


class Tracker:
    """The synchronous core: push frames, get the current state."""

    def __init__(self, counter: Any) -> None:  # a HumanBodyActionCounter: its settings
        c = counter
        self.c = c
        self.fps = float(c.fps)
        self.dims = 3 if c.use_z else 2
        self.capacity = max(int(round(c.history * self.fps)), 8)
        self.feat = np.empty((0, FEATURE_POINTS * self.dims))
        self.valid = np.empty(0, dtype=bool)  # the frame was observed (not interpolated over a long gap)
        self.observed = np.empty(0, dtype=bool)  # a person was found in this frame
        self.offset = 0  # absolute index of self.feat[0]
        self.last_joint: np.ndarray | None = None
        self.component: np.ndarray | None = None
        self.count = 0  # whole repetitions counted
        self.events: list[int] = []  # absolute frame indices of recent repetitions (bounded)
        # turning points not yet paired into a repetition, per direction
        # (True: into the high side of the signal, False: into the low side)
        self.pending: dict[bool, list[int]] = {True: [], False: []}
        self.turn_last = {True: -(10**12), False: -(10**12)}  # last turning point taken, per direction
        self.polarity = 1.0
        self.progress = 0.0
        self.fresh = 0  # frames added since the last analysis
        self.shown = 0.0
        self.set_number = 0
        self.set_base = 0  # whole count when the current set began
        self.set_open = False
        self.finished_sets: list[float] = []
        self.period: float | None = None
        self.periodicity = 0.0
        self.ambiguity = 0.0
        self.start_pose: np.ndarray | None = None  # where the open (or starting) set began
        # the rest direction of a known exercise (None: class-agnostic)
        rest = rest_direction(c.exercise)
        self.rest_dir = rest if rest is not None and len(rest) == self.feat.shape[1] else None

    # ------------------------------------------------------------------ input
    def push(self, poses: Sequence[Any]) -> None:
        feats, ok, self.last_joint = body_features(poses, self.dims, self.c.min_visibility, self.last_joint)
        self.fresh = len(poses)
        first_new = len(self.feat)
        self.feat = np.concatenate([self.feat, feats])
        self.observed = np.concatenate([self.observed, ok])
        self.valid = np.concatenate([self.valid, ok])
        # only gaps after the last observation before this chunk can change
        seen = np.flatnonzero(self.observed[:first_new])
        self._fill_gaps(int(seen[-1]) if seen.size else 0)
        extra = len(self.feat) - self.capacity
        if extra > 0:
            self.feat = self.feat[extra:]
            self.valid = self.valid[extra:]
            self.observed = self.observed[extra:]
            self.offset += extra

    def _fill_gaps(self, begin: int) -> None:
        """Linear interpolation across missing frames from ``begin`` on;
        trailing ones hold the last value until the next observation. Frames
        in gaps longer than ``max_gap`` are marked invalid (not counted)."""
        miss = np.flatnonzero(~self.observed[begin:]) + begin
        if miss.size == 0:
            return
        n = len(self.feat)
        max_gap = self.c.max_gap * self.fps
        splits = np.flatnonzero(np.diff(miss) > 1) + 1
        for run in np.split(miss, splits):
            a, b = int(run[0]), int(run[-1])
            left, right = a - 1, b + 1
            if left < 0 and right >= n:
                continue
            if left < 0:
                self.feat[a : b + 1] = self.feat[right]
            elif right >= n:
                self.feat[a : b + 1] = self.feat[left]
            else:
                w = (np.arange(a, b + 1) - left) / (right - left)
                self.feat[a : b + 1] = self.feat[left] + w[:, None] * (self.feat[right] - self.feat[left])
            self.valid[a : b + 1] = (b - a + 1) <= max_gap

    # --------------------------------------------------------------- analysis
    def update(self) -> RepetitionCount:
        c = self.c
        n = len(self.feat)
        now = self.offset + n - 1  # absolute index of the newest frame
        ok = np.isfinite(self.feat[:, 0])
        self.period = None
        self.periodicity = 0.0
        self.ambiguity = 0.0
        self.progress = 0.0
        kmin = max(2, int(math.floor(c.min_period * self.fps)))
        if ok.sum() >= 2 * kmin + 2:
            self._analyse(now, ok, kmin)
        return self._state(now)

    def _analyse(self, now: int, ok: np.ndarray, kmin: int) -> None:
        c = self.c
        n = len(self.feat)
        spans = sorted({min(n, int(round(sec * self.fps))) for sec in c.spans})
        # distance of each frame from the typical pose of the recent past
        recent = self.feat[-spans[0] :]
        centre = median_rows(recent[np.isfinite(recent[:, 0])][::2]) if ok[-spans[0] :].any() else 0.0
        d = self.feat - centre
        self.dev = np.sqrt(np.einsum("ij,ij->i", d, d))
        cands: list[_Candidate] = []
        slow = None
        for span in spans:
            if span < 4 * kmin:
                continue
            shares = [c.max_period_share]
            if span == spans[-1] and c.slow_share > c.max_period_share:
                shares.append(c.slow_share)
            found = self._periodic_component(span, kmin, shares)
            if found[0] is not None:
                cands.append(found[0])
            if len(found) > 1:
                slow = found[1]
        best = None
        if cands:
            # like within one span: the shortest period nearly as periodic as the best
            top = max(cd.strength for cd in cands)
            best = min((cd for cd in cands if cd.strength >= PEAK_SHARE * top), key=lambda cd: cd.lag)
        # nothing periodic with two cycles in view: accept one and a half cycles of a slow
        # motion over the whole history; where no period with two cycles exists at all (a
        # clip of two slow repetitions and no rest), only a clearly periodic one
        need = c.min_periodicity if best is not None else max(c.min_periodicity, c.slow_periodicity)
        if (best is None or best.strength < c.min_periodicity) and slow is not None and slow.strength >= need:
            best = slow
        if best is None:
            return
        strength, span, lag, s, comp, centre, ambiguity = best
        self.periodicity = strength
        self.ambiguity = ambiguity
        if strength < c.min_periodicity:
            return
        self.component = comp
        self.period = lag / self.fps
        if self.fresh > span and not self.set_open:
            # more new frames than the span (a long first window, downsampling):
            # look for the repetitions of a starting set in all of them
            span = min(n, self.fresh)
            seg = self.feat[-span:]
            s = np.nan_to_num((seg - centre) @ comp)
        self._events(now, span, lag, s)

    def _periodic_component(self, span: int, kmin: int, shares: Sequence[float]) -> list:
        """Period and strength of the dominant motion over the last ``span`` frames.

        The dominant motion is the first principal component of the joint
        trajectories (sign kept consistent with the previous window's); frames
        far from the typical pose (a tracking glitch, someone walking through)
        get little say in its direction and are clipped to the range of the
        others. For each share in ``shares`` (the longest period as a share of
        the span) returns a :class:`_Candidate`
        or None.
        """
        c = self.c
        seg = self.feat[-span:]
        ok = np.isfinite(seg[:, 0])
        kmaxes = [min(int(c.max_period * self.fps), int(span * sh)) for sh in shares]
        n_ok = int(ok.sum())
        if n_ok < 4 * kmin or max(kmaxes) <= kmin + 1:
            return [None] * len(shares)
        everyone = n_ok == span
        x = seg if everyone else seg[ok]
        w = np.ones(len(x))
        if c.robust > 0:
            dev = self.dev[-span:] if everyone else self.dev[-span:][ok]
            k = min(len(dev) - 1, int(len(dev) * c.robust_quantile / 100.0))
            scale = c.robust * max(float(np.partition(dev, k)[k]), 1e-6)
            w = np.minimum(1.0, (scale / np.maximum(dev, 1e-12)) ** 2)
        total = max(float(w.sum()), 1e-12)
        xt = x.T  # features × frames: cheaper products
        mean = (xt @ w) / total
        xc = xt - mean[:, None]
        cov = (xc * w) @ xc.T  # Σ w (x − μ)(x − μ)ᵀ
        comp = np.linalg.eigh(cov)[1][:, -1]
        proj = comp @ xc
        if w.min() < 1.0:
            typical = proj[w >= 1.0]
            if typical.size:
                proj = np.clip(proj, typical.min(), typical.max())
        if self.component is not None and float(comp @ self.component) < 0:
            comp, proj = -comp, -proj
        if everyone:
            s = proj
        else:
            s = np.zeros(span)
            s[ok] = proj
        r = normalised_acf(moving_part(s, max(3, int(0.5 * self.fps)), c.stillness), max(kmaxes) + 2)
        return [None if p.lag is None else _Candidate(p.strength, span, p.lag, s, comp, mean, p.ambiguity)
                for p in pick_periods(r, kmin, kmaxes)]

    def _events(self, now: int, span: int, lag: float, s: np.ndarray) -> None:
        c = self.c
        from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d

        smooth = max(1, int(round(lag * c.smoothing)))
        if smooth > 1:
            s = uniform_filter1d(s, smooth, mode="nearest")
        size = max(3, int(round(lag)))
        hi = maximum_filter1d(s, size, mode="nearest")
        lo = minimum_filter1d(s, size, mode="nearest")
        mid = 0.5 * (hi + lo)
        amp = 0.5 * (hi - lo)
        valid = self.valid[-span:]
        active = (amp >= c.min_amplitude) & valid
        if c.relative_amplitude > 0 and active.any():
            # a repetition is a full-size excursion: wiggles much smaller than
            # the motion's usual size (e.g. fidgeting while resting) are not
            sizes = amp[active]
            k = int(0.9 * (sizes.size - 1))
            active &= amp >= c.relative_amplitude * float(np.partition(sizes, k)[k])  # ≈ 90th percentile
        band = c.hysteresis * amp
        start = self.offset + len(self.feat) - span
        # Orient the motion so that the rest position is "up"; a repetition is
        # counted when the motion comes back up, i.e. when it returns to rest.
        self._orient(s, lag, mid, band, active, start)
        if self.polarity < 0:
            s, mid = -s, -mid
            hi, lo = -lo, -hi
        high = active & (s > mid + band)
        low = active & (s < mid - band)
        marks = np.flatnonzero(high | low)
        if marks.size < 2:
            return
        lab = high[marks]
        rises = marks[1:][lab[1:] & ~lab[:-1]] + start  # into the rest side
        falls = marks[1:][~lab[1:] & lab[:-1]] + start  # into the far side
        refractory = c.refractory * lag
        # turning points are taken from the recent past only; when a set
        # starts, from as far back as it took to recognise the motion as
        # periodic, and at least from where the full-size motion began
        back = c.lookback if self.set_open else c.start_lookback
        # frames not analysed before (the whole first window) always count
        lookback = now - max(back * lag, c.lookback_min * self.fps, self.fresh)
        if not self.set_open:
            # the latest run of full-size motion; a pause at the very end (the
            # person stopped as the rhythm was recognised) does not cut it short
            moving = np.flatnonzero(active)
            idle = np.flatnonzero(~active[: int(moving[-1]) + 1] if moving.size else ~active)
            lookback = min(lookback, start + (int(idle[-1]) + 1 if idle.size else 0))
            self._note_start(int(lookback - 0.5 * lag))  # the envelope blurs the run start by half a period
            # half-movements from before that are not part of the starting set
            for key in (True, False):
                self.pending[key] = [e for e in self.pending[key] if e >= lookback]
        for key, turns in ((self.polarity > 0, rises), (self.polarity < 0, falls)):
            last = self.turn_last[key]
            for e in turns[(turns > last + refractory) & (turns >= lookback)].tolist():  # mostly seen before
                if e > last + refractory:
                    self.pending[key].append(e)
                    last = e
            self.turn_last[key] = last
        # a repetition is a full cycle: both turning points passed, whichever
        # of them is the rest position; it is counted at the second one
        up, down = self.pending[True], self.pending[False]
        polarity = self.polarity
        while up and down:
            e_up, e_down = up.pop(0), down.pop(0)
            if not self.set_open and self.rest_dir is None:  # the side that completes the repetition is rest
                self.polarity = 1.0 if e_up >= e_down else -1.0
            self._count_event(max(e_up, e_down))
        for key in (True, False):  # bounded, whatever the input
            del self.pending[key][:-64]
        if self.polarity != polarity:  # rest turned out to be the other side
            s, mid, hi, lo, low = -s, -mid, -lo, -hi, high
        last = self.events[-1] if self.events else -(10**12)
        # progress of the repetition in progress: out from rest to the far
        # extreme is the first half, the way back the second
        if amp[-1] >= c.min_amplitude:
            u = float(np.clip((hi[-1] - s[-1]) / max(hi[-1] - lo[-1], 1e-12), 0.0, 1.0))
            since = max(0, int(last) - start + 1) if self.events else 0
            turned = bool(low[since:].any())
            # jitter around the rest position is not progress (dead zone)
            out = float(np.clip((u - _DEAD_ZONE) / (1.0 - _DEAD_ZONE), 0.0, 1.0))
            self.progress = 0.5 + 0.5 * (1.0 - u) if turned else 0.5 * out

    def _orient(self, s: np.ndarray, lag: float, mid: np.ndarray, band: np.ndarray, active: np.ndarray, start: int) -> None:
        """Guess which side of the motion is the rest position (made "up").

        Only orients the progress shown before the first repetition of a set
        (the count pairs both turning points; the side completing the first
        repetition then becomes the rest side). A motion that dwells at rest
        has its excursions in the short tail of the distribution (skew over
        whole periods); for a symmetric motion the set's first clear
        position, i.e. where the person started, is the rest position.
        """
        if self.rest_dir is not None and self.component is not None:  # the exercise is known
            self.polarity = 1.0 if float(self.component @ self.rest_dir) >= 0 else -1.0
            return
        if self.set_open:
            return
        whole = int(round(lag * max(1, int(len(s) // lag))))
        d = s[len(s) - whole :]
        d = d - d.mean()
        sd = float(np.sqrt(np.mean(d * d)))
        skew = float(np.mean(d**3)) / sd**3 if sd > 0 else 0.0
        if abs(skew) > self.c.skew_switch:
            self.polarity = -1.0 if skew > 0 else 1.0
            return
        if self.c.orient_start:
            first = max(0, self.events[-1] - start + 1) if self.events else 0
            clear = np.flatnonzero(active[first:] & (np.abs(s[first:] - mid[first:]) > band[first:]))
            if clear.size:
                i = first + int(clear[0])
                self.polarity = 1.0 if s[i] > mid[i] else -1.0

    def _count_event(self, e: int) -> None:
        if not self.set_open:
            self.set_number += 1
            self.set_base = self.count
            self.set_open = True
            self.shown = max(self.shown, float(self.count))
        self.count += 1
        self.events.append(e)
        if len(self.events) > 4096:
            del self.events[:2048]
        self.shown = max(self.shown, float(self.count))

    def _state(self, now: int) -> RepetitionCount:
        frac = min(self.progress, self.c.max_fraction) if self.period is not None else 0.0
        self.shown = max(self.shown, self.count + frac)
        resting = not self.events or (now - self.events[-1]) > self.c.rest_time * self.fps
        if resting and self.set_open:  # a long enough pause ends the set
            self.count += self._settled()
            self.shown = max(self.shown, float(self.count))
            self.finished_sets.append(float(self.count - self.set_base))
            self.set_open = False
            self.pending = {True: [], False: []}
        rate = 60.0 / self.period if self.period else None
        return RepetitionCount(
            count=round(self.shown, 4),
            period=None if self.period is None else round(self.period, 4),
            rate=None if rate is None else round(rate, 2),
            set_number=self.set_number,
            set_count=round(max(0.0, self.shown - self.set_base), 4) if self.set_open else 0.0,
            resting=resting,
            periodicity=round(self.periodicity, 4),
            sets=tuple(self.finished_sets),
            ambiguity=round(self.ambiguity, 4),
        )

    def _note_start(self, frame: int) -> None:
        """Remember the pose a starting set begins in (its first observed frame from ``frame`` on)."""
        i = max(0, frame - self.offset)
        seen = np.flatnonzero(np.isfinite(self.feat[i:, 0]))
        if seen.size:
            self.start_pose = self.feat[i + int(seen[0])].copy()

    def _settled(self) -> int:
        """1 if the open set ends with one turning point unpaired and the person back
        where the set started (a repetition ending with the clip or the set), else 0.

        Full cycles leave the last turning point of a set unpaired when the
        set's first one was not seen (the clip began in the first movement, or
        the rhythm was recognised late); a person who then stops in the
        position the set started from has completed the repetition. One who
        stops at the far side (a clip cut half-way) has not.
        """
        unpaired = self.pending[True] + self.pending[False]
        if not self.set_open or len(unpaired) != 1 or not self.events or self.start_pose is None:
            return 0
        # the two sides: where the unpaired turning point and the last counted one were crossed
        sides = [self.feat[i - self.offset] for i in (unpaired[0], self.events[-1]) if i >= self.offset]
        tail = self.feat[-max(2, int(0.3 * self.fps)) :]
        tail = tail[np.isfinite(tail[:, 0])]
        if len(sides) < 2 or not tail.size or not np.isfinite(sides).all():
            return 0
        end = tail.mean(axis=0)  # where the person stopped

        def on_unpaired_side(pose: np.ndarray) -> bool:
            return bool(np.linalg.norm(pose - sides[0]) < np.linalg.norm(pose - sides[1]))

        if self.rest_dir is not None and float((sides[0] - sides[1]) @ self.rest_dir) <= 0:
            return 0  # the exercise is known and the unpaired turning point went out, not back to rest

        return int(on_unpaired_side(self.start_pose) and on_unpaired_side(end))

    def final(self) -> float:
        """Completed repetitions (the fraction of an unfinished one dropped), the
        open set settled as if it ended here."""
        return float(self.count + self._settled())

    def split_set(self) -> None:
        """End the open set here and go on in a new one (another exercise began
        without a pause). Bookkeeping only: what is being counted is untouched."""
        if not self.set_open:
            return
        self.finished_sets.append(float(self.count - self.set_base))
        self.set_number += 1
        self.set_base = self.count
