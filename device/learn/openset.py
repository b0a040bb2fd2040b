"""The reject option: "none of the taught sounds" instead of the nearest taught label.

A classifier always picks one of its labels, so every sound the owner never
taught becomes an alert for whichever label it resembles most (a hammering
next door reported as ``vacuum_cleaner`` at 0.9996). :class:`RejectOption`
is fitted beside the classifier, on the same training windows, and says per
window whether the window lies too far from the label the classifier picked;
the model then answers :data:`OTHER` (``_other``), a label the sound-event
detector treats as silent, like ``background`` (:data:`SILENT_LABELS`).

Distance (Mahalanobis in a principal subspace, numpy only): windows are
standardised and projected on the first ``components`` principal axes of the
training windows; each label has its mean there and a whitening from its own
covariance blended (``per_label``) with the covariance shared by all labels,
shrunk towards its average variance (``shrinkage``). The distance of a window
to label *c* is the root of the mean squared whitened offset from *c*'s mean
plus the window's energy outside the subspace relative to the training
windows' median — a sound unlike anything taught has energy where no taught
sound had any.

Thresholds need no unknown sounds: the training recordings are dealt into
``folds`` folds (the shipped negatives' apart, so they leave the owner's as
they are); for each fold the distances are fitted on the other folds and
measured on the held-out fold's original windows (never augmented copies) to
their own label. Per label, ``m_c`` is the median held-out distance; one
factor ``g`` — the ``quantile`` of all labels' held-out ``d / m_c`` pooled —
gives ``tau_c = g * m_c``, so a label taught from 10 clips gets as steady a
threshold as one taught from 90. Silent labels get none (they never fire).
The quantile is the knob: lower rejects more of what was never taught and
more of what was (docs/audio.md, "Sounds it was never taught").

Fitting streams the windows in chunks (several passes, one 688 × 688
covariance in memory at a time), so it takes bounded memory like the rest of
training. Per window at run time: one 688 × ``components`` product and one
``components`` × ``components`` one (≈ 0.05–0.1 ms). Stored as ``openset_*``
arrays beside the classifier's (≈ 100 KB + 4 KB per label).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

OTHER = "_other"  # what the model answers for a rejected window; never an owner label
BACKGROUND = "background"  # the owner's "nothing to report" label
# the shipped negatives' class (device/learn/negatives.py): trained like a label, never answered — a window it holds
# with more than NEGATIVES_THRESHOLD is answered background, below that it is left out (docs/audio.md)
NEGATIVES = "_negatives"
NEGATIVES_THRESHOLD = 0.9
# labels that never become an event (the detector's default); the reject option fits no threshold for them and
# leaves them out of its factor (the shipped negatives' many windows would otherwise set it for the owner's labels)
SILENT_LABELS = (BACKGROUND, OTHER, NEGATIVES)
RESERVED_PREFIX = "_"  # owner labels may not start with it: the model's own answers do

# (float windows (n, d), each window's position in the rows given to the fit); a fresh pass per call
ChunkSource = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]


@dataclasses.dataclass(frozen=True)
class RejectSettings:
    """How the reject option is fitted (the quantile is the owner-facing knob)."""

    quantile: float = 0.90  # share of held-out windows of a taught label that must stay accepted (docs/audio.md)
    components: int = 32  # principal axes
    shrinkage: float = 0.1  # of the shared covariance towards its average variance
    per_label: float = 0.5  # share of each label's own covariance in its whitening (0: shared only)
    folds: int = 4  # recordings dealt into this many folds for the held-out distances
    seed: int = 0

    def validate(self) -> None:
        if not 0.5 <= self.quantile < 1.0:
            raise ValueError(f"reject quantile must be in [0.5, 1), got {self.quantile}")
        if self.components < 1 or self.folds < 2:
            raise ValueError("reject option: components must be ≥ 1 and folds ≥ 2")
        if not 0.0 <= self.shrinkage <= 1.0 or not 0.0 <= self.per_label <= 1.0:
            raise ValueError("reject option: shrinkage and per_label must be in [0, 1]")


def reserved(label: str) -> bool:
    """Whether ``label`` is one the model keeps for itself (``_other``, any ``_…``)."""
    return str(label).startswith(RESERVED_PREFIX)


class RejectOption:
    """A fitted reject option for the labels of one classifier (same order)."""

    def __init__(
        self,
        labels: Sequence[str],
        mean: np.ndarray,
        std: np.ndarray,
        basis: np.ndarray,
        means: np.ndarray,
        whiten: np.ndarray,
        residual_scale: float,
        thresholds: np.ndarray,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.labels = [str(label) for label in labels]
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.basis = np.asarray(basis, dtype=np.float32)  # d × k, orthonormal columns
        self.means = np.asarray(means, dtype=np.float32)  # L × k
        self.whiten = np.asarray(whiten, dtype=np.float32)  # L × k × k
        self.residual_scale = float(residual_scale)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)  # L; inf: never rejected
        self.params: dict[str, Any] = dict(params or {})
        #: held-out ``d / m_c`` of every label, pooled (kept in memory after a fit; not saved)
        self.held_out_ratios: np.ndarray | None = None
        d, k, n = self.mean.shape[0], self.basis.shape[1], len(self.labels)
        if (self.std.shape != (d,) or self.basis.shape != (d, k) or self.means.shape != (n, k)
                or self.whiten.shape != (n, k, k) or self.thresholds.shape != (n,)
                or not self.residual_scale > 0):
            raise ValueError("reject option arrays do not fit together")

    def distances(self, x: np.ndarray, label_index: np.ndarray) -> np.ndarray:
        """Distance of each window (row of dequantised ``x``) to label ``label_index[i]``."""
        z = (np.asarray(x, dtype=np.float32) - self.mean) / self.std
        u = z @ self.basis
        idx = np.asarray(label_index, dtype=np.int64)
        w = np.einsum("nk,nkj->nj", u - self.means[idx], self.whiten[idx])
        outside = np.maximum((z * z).sum(axis=1) - (u * u).sum(axis=1), 0.0)
        return np.sqrt((w * w).mean(axis=1) + outside / self.residual_scale)

    def rejects(self, x: np.ndarray, picked: np.ndarray) -> np.ndarray:
        """Boolean per window: too far from the label the classifier picked (index into labels)."""
        picked = np.asarray(picked, dtype=np.int64)
        limit = self.thresholds[picked]
        out = np.zeros(len(picked), dtype=bool)
        finite = np.isfinite(limit)
        if finite.any():
            out[finite] = self.distances(np.asarray(x)[finite], picked[finite]) > limit[finite]
        return out

    def with_quantile(self, quantile: float) -> "RejectOption":
        """The same option with thresholds for another held-out quantile (no refit; only right after a fit)."""
        if self.held_out_ratios is None or not self.params.get("factor"):
            raise ValueError("the held-out distances are not known (only a freshly fitted reject option can be retuned)")
        factor = float(np.quantile(self.held_out_ratios, quantile))
        other = RejectOption(self.labels, self.mean, self.std, self.basis, self.means, self.whiten, self.residual_scale,
                             self.thresholds * (factor / self.params["factor"]),
                             self.params | {"quantile": quantile, "factor": factor})
        other.held_out_ratios = self.held_out_ratios
        return other

    # -- persistence ------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "openset_mean": self.mean, "openset_std": self.std, "openset_basis": self.basis,
            "openset_means": self.means, "openset_whiten": self.whiten,
            "openset_residual_scale": np.array(self.residual_scale, dtype=np.float64),
            "openset_thresholds": self.thresholds,
        }

    def meta(self) -> dict[str, Any]:
        return {"method": "mahalanobis", "labels": self.labels, **self.params}

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], labels: Sequence[str]) -> "RejectOption":
        if list(meta.get("labels", [])) != list(labels):
            raise ValueError("the reject option's labels differ from the classifier's")
        params = {k: v for k, v in meta.items() if k not in ("method", "labels")}
        return cls(
            labels, arrays["openset_mean"], arrays["openset_std"], arrays["openset_basis"], arrays["openset_means"],
            arrays["openset_whiten"], float(arrays["openset_residual_scale"]), arrays["openset_thresholds"], params,
        )


# ---------------------------------------------------------------------------------------------- fitting
@dataclasses.dataclass
class _Core:
    """Standardisation, principal axes and per-label whitening fitted on some rows."""

    mean: np.ndarray
    std: np.ndarray
    basis: np.ndarray
    means: np.ndarray
    whiten: np.ndarray
    residual_scale: float
    counts: np.ndarray  # windows per label

    def option(self, labels: Sequence[str], thresholds: np.ndarray, params: Mapping[str, Any]) -> RejectOption:
        return RejectOption(labels, self.mean, self.std, self.basis, self.means, self.whiten, self.residual_scale,
                            thresholds, params)


def _whitening(cov: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(cov)
    return vecs / np.sqrt(np.maximum(vals, 1e-9))


def _fit_core(
    chunks: ChunkSource, label_of: np.ndarray, use: np.ndarray, n_labels: int, settings: RejectSettings
) -> _Core | None:
    """Fit on the rows where ``use[owner]``: pass 1 moments and axes, pass 2 within-label scatter."""
    n, s1, scatter = 0, None, None
    sums: np.ndarray | None = None
    counts = np.zeros(n_labels, dtype=np.int64)
    for x, owner in chunks():
        sel = use[owner]
        if not sel.any():
            continue
        xs, lab = x[sel], label_of[owner[sel]]
        if scatter is None:
            d = x.shape[1]
            s1, scatter, sums = np.zeros(d), np.zeros((d, d)), np.zeros((n_labels, d))
        scatter += xs.T @ xs  # float32 product, float64 sums
        s1 += xs.sum(axis=0, dtype=np.float64)
        for c in np.unique(lab):
            sums[c] += xs[lab == c].sum(axis=0, dtype=np.float64)
        counts += np.bincount(lab, minlength=n_labels)
        n += len(xs)
    present = counts > 0
    if scatter is None or n < 3 or present.sum() < 2:
        return None
    mean = s1 / n
    std = np.sqrt(np.maximum(np.diag(scatter) / n - mean * mean, 0.0))
    std = np.where(std > 1e-6, std, 1.0)
    cov = (scatter - n * np.outer(mean, mean)) / (n - 1) / np.outer(std, std)
    del scatter
    k = int(min(settings.components, n - 1, len(mean)))
    basis = np.linalg.eigh(cov)[1][:, ::-1][:, :k].astype(np.float32)
    label_means = np.zeros((n_labels, k))
    label_means[present] = ((sums[present] / counts[present, None] - mean) / std) @ basis
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)
    within = np.zeros((n_labels, k, k))
    outside: list[np.ndarray] = []
    for x, owner in chunks():
        sel = use[owner]
        if not sel.any():
            continue
        z = (x[sel] - mean32) / std32
        u = z @ basis
        r = u - label_means[label_of[owner[sel]]]
        lab = label_of[owner[sel]]
        for c in np.unique(lab):
            rc = r[lab == c]
            within[c] += rc.T @ rc
        outside.append(np.maximum((z * z).sum(axis=1) - (u * u).sum(axis=1), 0.0).astype(np.float32))
    shared = within.sum(axis=0) / max(n - int(present.sum()), 1)
    shared = (1 - settings.shrinkage) * shared + settings.shrinkage * np.trace(shared) / k * np.eye(k)
    whiten = np.empty((n_labels, k, k))
    for c in range(n_labels):
        if counts[c] >= 2 and settings.per_label > 0:
            own = within[c] / (counts[c] - 1)
            whiten[c] = _whitening((1 - settings.per_label) * shared + settings.per_label * own)
        else:
            whiten[c] = _whitening(shared)
    residual = float(np.median(np.concatenate(outside))) + 1e-9
    return _Core(mean32, std32, basis, label_means.astype(np.float32), whiten.astype(np.float32), residual, counts)


def _deal_folds(groups: np.ndarray, label_of: np.ndarray, labels: Sequence[str], settings: RejectSettings,
                silent: set[str]) -> np.ndarray:
    """Each row's fold: the owner's recordings dealt in one seeded order, then the shipped negatives'
    (``_negatives``) in another, so that adding them leaves the owner's folds — and thresholds — as
    they are without them (dealt together, their many groups reshuffled the owner's: a 5-clip label
    could lose every held-out distance and take a threshold of other labels' scale)."""
    negatives = labels.index(NEGATIVES) if NEGATIVES in labels else -1
    owner = sorted(set(groups[label_of != negatives].tolist()))
    fold_of = dict(zip(owner, np.random.default_rng(settings.seed).permutation(len(owner)) % settings.folds))
    shipped = sorted(set(groups[label_of == negatives].tolist()) - set(fold_of))
    fold_of.update(zip(shipped, np.random.default_rng(settings.seed + 1).permutation(len(shipped)) % settings.folds))
    fold = np.array([fold_of[g] for g in groups.tolist()], dtype=np.int64)
    # A judged label whose recordings all fell in one fold would have no held-out distance and take
    # another label's scale (a 3-recording `crying_baby` rejected whole): its recordings alone are
    # dealt round the folds; every other row keeps its fold.
    spread = np.random.default_rng(settings.seed + 2)
    for c, label in enumerate(labels):
        rows = label_of == c
        own = sorted(set(groups[rows].tolist()))
        if label not in silent and len(own) > 1 and len(set(fold[rows].tolist())) == 1:
            fold_of_own = dict(zip(own, spread.permutation(len(own)) % settings.folds))
            fold[rows] = [fold_of_own[g] for g in groups[rows].tolist()]
    return fold


def fit_reject_option(
    chunks: ChunkSource,
    labels: Sequence[str],
    names: Sequence[str],
    groups: Sequence[str],
    is_copy: Sequence[bool],
    settings: RejectSettings = RejectSettings(),
    *,
    clips: Sequence[str] | None = None,
    silent: Iterable[str] = SILENT_LABELS,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[RejectOption | None, dict[str, Any]]:
    """Fit on the windows ``chunks()`` yields; row ``i`` (a window's owner) has label ``names[i]``,
    recording ``groups[i]`` and is an augmented copy if ``is_copy[i]`` (of clip
    ``clips[i]``). A label whose clips all come from one recording (ten clips
    of one ``cadence record`` session) is dealt into folds clip by clip: held
    out by clip, its threshold is tighter than a new session deserves, but
    without it the label would have none. A label of a few recordings that all
    fell in one fold has them alone dealt round the folds (:func:`_deal_folds`).

    Returns the option (None when the data cannot fit one: fewer than two
    labels with windows) and a report: the factor, and per label the held-out
    windows, their median distance and the share accepted at its threshold.
    """
    settings.validate()
    labels = [str(label) for label in labels]
    index = {label: i for i, label in enumerate(labels)}
    label_of = np.array([index[str(n)] for n in names], dtype=np.int64)
    groups = np.asarray([str(g) for g in groups], dtype=object)
    is_copy = np.asarray(is_copy, dtype=bool)
    silent = set(silent)
    report: dict[str, Any] = {"quantile": settings.quantile, "folds": settings.folds, "factor": None, "per_label": {}}
    if clips is not None:
        clips = np.asarray([str(c) for c in clips], dtype=object)
        single = [c for c in range(len(labels)) if len(set(groups[(label_of == c) & ~is_copy].tolist())) == 1]
        for c in single:
            rows = label_of == c
            groups[rows] = np.array([f"{labels[c]}/clip:{k}" for k in clips[rows]], dtype=object)
        if single:
            report["one_recording"] = [labels[c] for c in single]
    groups = groups.astype(str)
    fold = _deal_folds(groups, label_of, labels, settings, silent)
    steps, step = settings.folds + 1, 0
    held: dict[int, list[np.ndarray]] = {}
    for f in range(settings.folds):
        core = _fit_core(chunks, label_of, fold != f, len(labels), settings)
        step += 1
        if on_step is not None:
            on_step(step, steps)
        test = (fold == f) & ~is_copy
        if core is None or not test.any():
            continue
        option = core.option(labels, np.full(len(labels), np.inf), {})
        judged = (core.counts > 0) & np.array([label not in silent for label in labels])
        for x, owner in chunks():
            sel = test[owner]
            lab = label_of[owner[sel]]
            keep = judged[lab]
            if keep.any():
                d = option.distances(x[sel][keep], lab[keep])
                for c in np.unique(lab[keep]):
                    held.setdefault(int(c), []).append(d[lab[keep] == c])
    core = _fit_core(chunks, label_of, np.ones(len(label_of), dtype=bool), len(labels), settings)
    if on_step is not None:
        on_step(steps, steps)
    if core is None:
        report["note"] = "not fitted: fewer than two labels have windows above the volume gate"
        return None, report
    distances = {c: np.concatenate(v) for c, v in held.items() if sum(len(a) for a in v)}
    medians = {c: float(np.median(v)) for c, v in distances.items()}
    thresholds = np.full(len(labels), np.inf)
    if medians:
        pooled = np.concatenate([v / max(medians[c], 1e-12) for c, v in distances.items()])
        factor = float(np.quantile(pooled, settings.quantile))
        fallback = float(np.median(list(medians.values())))
        for c, label in enumerate(labels):
            if label not in silent and core.counts[c] > 0:
                thresholds[c] = factor * medians.get(c, fallback)
        report["factor"] = factor
    else:
        report["note"] = ("no thresholds: every label's recordings fell in one fold (more recordings per label "
                          "are needed); sounds are never rejected")
    for c, label in enumerate(labels):
        d = distances.get(c)
        report["per_label"][label] = {
            "held_out_windows": 0 if d is None else int(len(d)),
            "median_distance": medians.get(c),
            "threshold": None if not math.isfinite(thresholds[c]) else float(thresholds[c]),
            "held_out_accepted": None if d is None or not math.isfinite(thresholds[c])
            else float(np.mean(d <= thresholds[c])),
        }
    params = dataclasses.asdict(settings) | {"factor": report["factor"]}
    option = core.option(labels, thresholds, params)
    if medians:
        option.held_out_ratios = pooled
    return option, report


def array_chunks(x: np.ndarray, chunk_size: int = 1024) -> ChunkSource:
    """A :data:`ChunkSource` over windows in memory (row i is owner i)."""
    x = np.asarray(x, dtype=np.float32)

    def source() -> Iterable[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(x), chunk_size):
            yield x[start : start + chunk_size], np.arange(start, min(start + chunk_size, len(x)))

    return source
