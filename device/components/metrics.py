"""Validation metrics: classification (incremental) and regression errors."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np

UNKNOWN = "<unknown>"


class ClassificationMetrics:
    """Accuracy, per-class precision/recall/F1 and a confusion matrix.

    Accumulates incrementally with :meth:`add` / :meth:`update` (so it works on
    batches that never sit in memory together) and merges with ``+``.

    With ``labels`` given the label set is fixed: a true or predicted label
    outside it is counted under :data:`UNKNOWN` (its own row/column) rather
    than silently dropped, and ``unknown_count`` says how many there were.
    Without ``labels`` the set grows as labels are seen.
    """

    def __init__(self, labels: Sequence[Hashable] | None = None) -> None:
        self._fixed = labels is not None
        self._labels: list[Hashable] = list(labels) if labels is not None else []
        if len(set(self._labels)) != len(self._labels):
            raise ValueError("ClassificationMetrics: labels must be unique")
        self._index = {label: i for i, label in enumerate(self._labels)}
        n = len(self._labels)
        self._counts = np.zeros((n, n), dtype=np.int64)
        self.unknown_count = 0
        # pairs of two different labels outside the fixed set: both land in the <unknown> cell of the
        # diagonal, but they are not right answers (accuracy leaves them off the trace)
        self.unknown_mismatches = 0

    # -- accumulation -------------------------------------------------------
    def _slot(self, label: Hashable) -> int:
        if label in self._index:
            return self._index[label]
        if self._fixed:
            label = UNKNOWN
            if label in self._index:
                return self._index[label]
        self._index[label] = len(self._labels)
        self._labels.append(label)
        n = len(self._labels)
        grown = np.zeros((n, n), dtype=np.int64)
        grown[: n - 1, : n - 1] = self._counts
        self._counts = grown
        return n - 1

    def _outside(self, label: Hashable) -> bool:
        return self._fixed and label not in self._index and label != UNKNOWN

    def add(self, true: Hashable, predicted: Hashable, n: int = 1) -> None:
        """Count one (true, predicted) pair (``n`` of them).

        ``unknown_count`` grows once per pair with a label outside the fixed set,
        not once per label: a pair whose both labels are unknown is one item."""
        if self._outside(true) or self._outside(predicted):
            self.unknown_count += n
        self._count(true, predicted, n)

    def _count(self, true: Hashable, predicted: Hashable, n: int) -> None:
        i, j = self._slot(true), self._slot(predicted)  # may grow the matrix: before indexing it
        if i == j and true != predicted:  # two labels the set does not hold, both in its <unknown> cell
            self.unknown_mismatches += n
        self._counts[i, j] += n

    def update(self, true: Iterable[Hashable], predicted: Iterable[Hashable]) -> "ClassificationMetrics":
        true, predicted = list(true), list(predicted)
        if len(true) != len(predicted):
            raise ValueError(
                f"ClassificationMetrics.update: {len(true)} true labels but {len(predicted)} predictions"
            )
        for t, p in zip(true, predicted):
            self.add(t, p)
        return self

    def __add__(self, other: "ClassificationMetrics") -> "ClassificationMetrics":
        merged = ClassificationMetrics(self._labels if self._fixed else None)
        merged.unknown_count = self.unknown_count + other.unknown_count
        merged.unknown_mismatches = self.unknown_mismatches + other.unknown_mismatches
        for source in (self, other):
            for i, t in enumerate(source._labels):
                for j, p in enumerate(source._labels):
                    c = int(source._counts[i, j])
                    if not c:
                        continue
                    # a cell with <unknown> was an unknown item there already (counted above); a wrong
                    # pair stays wrong even where both its labels fall in the merged set's <unknown> cell
                    if UNKNOWN not in (t, p) and (merged._outside(t) or merged._outside(p)):
                        merged.unknown_count += c
                    merged._count(t, p, c)
        return merged

    # -- results ------------------------------------------------------------
    @property
    def labels(self) -> list[Hashable]:
        return list(self._labels)

    @property
    def count(self) -> int:
        return int(self._counts.sum())

    @property
    def confusion_matrix(self) -> np.ndarray:
        """Rows are true labels, columns predictions, in :attr:`labels` order."""
        return self._counts.copy()

    @property
    def accuracy(self) -> float:
        total = self._counts.sum()
        return float((np.trace(self._counts) - self.unknown_mismatches) / total) if total else float("nan")

    def _row(self, label: Hashable) -> dict[str, float]:
        """Precision, recall, F1, support and how often ``label`` was predicted: the one place its
        row and column are summed, once each (the table and the JSON read the same figures)."""
        i = self._index[label]
        correct, predicted, support = int(self._counts[i, i]), int(self._counts[:, i].sum()), int(self._counts[i, :].sum())
        if label == UNKNOWN:  # its diagonal holds pairs of two different unknown labels too: not right
            correct -= self.unknown_mismatches
        precision = correct / predicted if predicted else 0.0
        recall = correct / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1, "support": support, "predicted": predicted}

    def precision(self, label: Hashable) -> float:
        return self._row(label)["precision"]

    def recall(self, label: Hashable) -> float:
        return self._row(label)["recall"]

    def f1(self, label: Hashable) -> float:
        return self._row(label)["f1"]

    def support(self, label: Hashable) -> int:
        return int(self._row(label)["support"])

    @property
    def macro_f1(self) -> float:
        present = [lab for lab in self._labels if self.support(lab)]
        return float(np.mean([self.f1(lab) for lab in present])) if present else float("nan")

    def per_class(self) -> dict[str, dict[str, float | None]]:
        """Per label: precision, recall, F1, support and how often it was predicted; a figure with
        nothing to measure (never predicted: precision; no items: recall; neither: F1) is None — the
        table's "n/a", not a score of 0 that reads as a failure."""
        out: dict[str, dict[str, float | None]] = {}
        for label in self._labels:
            row: dict[str, float | None] = dict(self._row(label))
            if not row["predicted"]:
                row["precision"] = None
            if not row["support"]:
                row["recall"] = None
            if not row["predicted"] and not row["support"]:
                row["f1"] = None
            out[str(label)] = row
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``accuracy``, ``per_class``, ``confusion``...)."""
        return {
            "accuracy": self.accuracy if self.count else None,
            "count": self.count,
            "macro_f1": self.macro_f1 if self.count else None,
            "labels": [str(label) for label in self._labels],
            "per_class": self.per_class(),
            "confusion": self._counts.tolist(),
            "unknown_count": self.unknown_count,
            "unknown_mismatches": self.unknown_mismatches,
        }

    def format_table(self) -> str:
        """A plain-text report: per-class table then the confusion matrix."""
        names = [str(label) for label in self._labels]
        width = max([len(n) for n in names] + [8])
        lines = [f"{'label':<{width}}  precision  recall     f1  support"]
        for label, name in zip(self._labels, names):
            row = self._row(label)  # the JSON's numbers (per_class), never sums of the table's own
            predicted, support = row["predicted"], row["support"]
            # a label with nothing to measure is "n/a", not a score of 0 that reads as a failure
            precision = f"{row['precision']:9.3f}" if predicted else f"{'n/a':>9}"
            recall = f"{row['recall']:6.3f}" if support else f"{'n/a':>6}"
            f1 = f"{row['f1']:5.3f}" if predicted or support else f"{'n/a':>5}"
            lines.append(f"{name:<{width}}  {precision}  {recall}  {f1}  {support:7d}")
        lines.append(f"accuracy {self.accuracy:.4f} over {self.count} items")
        if self.unknown_count:
            lines.append(f"{self.unknown_count} of them with a label outside the model's (row/column {UNKNOWN})")
        # columns are numbered like the rows: cutting names short made similar ones look alike
        lines.append("confusion (rows true, columns predicted, numbered as the rows):")
        lines.append(" " * (width + 5) + " ".join(f"{i:>6d}" for i in range(1, len(names) + 1)))
        for i, (name, row) in enumerate(zip(names, self._counts), 1):
            lines.append(f"{i:>3d} {name:<{width}} " + " ".join(f"{int(v):6d}" for v in row))
        return "\n".join(lines)


class RegressionMetrics:
    """Mean absolute and root-mean-square error, accumulated incrementally."""

    def __init__(self) -> None:
        self.count = 0
        self._abs = 0.0
        self._sq = 0.0

    def update(self, true: Iterable[float], predicted: Iterable[float]) -> "RegressionMetrics":
        t = np.asarray(list(true), dtype=float)
        p = np.asarray(list(predicted), dtype=float)
        if t.shape != p.shape:
            raise ValueError(f"RegressionMetrics.update: {t.size} true values but {p.size} predictions")
        err = p - t
        self.count += int(err.size)
        self._abs += float(np.abs(err).sum())
        self._sq += float((err**2).sum())
        return self

    @property
    def mean_absolute_error(self) -> float:
        return self._abs / self.count if self.count else float("nan")

    @property
    def root_mean_squared_error(self) -> float:
        return math.sqrt(self._sq / self.count) if self.count else float("nan")

    def to_dict(self) -> dict[str, float | int]:
        return {"mae": self.mean_absolute_error, "rmse": self.root_mean_squared_error, "count": self.count}


def mean_absolute_error(true: Iterable[float], predicted: Iterable[float]) -> float:
    return RegressionMetrics().update(true, predicted).mean_absolute_error


def root_mean_squared_error(true: Iterable[float], predicted: Iterable[float]) -> float:
    return RegressionMetrics().update(true, predicted).root_mean_squared_error


@dataclasses.dataclass
class ClipPrediction:
    """A clip's label from its windows: the highest mean window probability."""

    label: str | None
    probabilities: dict[str, float]
    windows: int


class ClipVote:
    """Running sums of window probabilities, per clip (bounded memory over long streams).

    The one rule for a clip's label: the highest mean window probability.
    """

    def __init__(self, labels: Sequence[str], clips: int = 1) -> None:
        self.labels = list(labels)
        self.total = np.zeros((clips, len(self.labels)), dtype=np.float64)
        self.windows = np.zeros(clips, dtype=np.int64)

    def add(self, probabilities: np.ndarray, clips: Any = 0) -> None:
        """Add window probabilities ``(k,)`` or ``(n, k)`` to clip ``clips`` (or to clip ``clips[i]`` per row)."""
        p = np.atleast_2d(np.asarray(probabilities, dtype=np.float64))
        owner = np.broadcast_to(np.asarray(clips, dtype=np.int64), (p.shape[0],))
        np.add.at(self.total, owner, p)
        np.add.at(self.windows, owner, 1)

    def result(self, clip: int = 0) -> ClipPrediction:
        if not self.windows[clip]:
            return ClipPrediction(None, {}, 0)
        mean = self.total[clip] / self.windows[clip]
        return ClipPrediction(
            self.labels[int(np.argmax(mean))], {k: float(v) for k, v in zip(self.labels, mean)}, int(self.windows[clip])
        )

    def predicted(self) -> list[str | None]:
        """Every clip's label (None for a clip without windows)."""
        best = np.argmax(self.total, axis=1)
        return [self.labels[int(i)] if n else None for i, n in zip(best, self.windows)]
