"""Feature input: the three forms a classifier accepts, and input standardisation.

A classifier takes exactly

- a :class:`~device.components.QuantizedFeature` or a list of them (each
  dequantised with its own scales),
- a float array ``(n, d)`` or ``(d,)``,
- an int8 array ``(n, d)`` or ``(d,)``, dequantised with the feature scales
  the model stored when it was trained (the featurizer's).

Anything else is refused with one line, so a caller never gets a silently
wrong dequantisation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from device.components import CadenceError, QuantizedFeature


class FeatureInputError(CadenceError, ValueError):
    """Features in a form the classifiers do not take (one line)."""


FORMS = "a QuantizedFeature (or a list of them), a float array (n, d)/(d,) or an int8 array"


def as_matrix(features: Any, scales: np.ndarray | None = None) -> np.ndarray:
    """``features`` in one of the accepted forms as a float32 ``(n, d)`` matrix.

    ``scales`` dequantise int8 arrays (a model passes its stored feature scales).
    """
    if isinstance(features, QuantizedFeature):
        out = features.dequantize()[None, :]
    elif isinstance(features, np.ndarray):
        arr = features[None, :] if features.ndim == 1 else features
        if arr.ndim != 2:
            raise FeatureInputError(f"a feature array must be (n, d) or (d,), got shape {features.shape}")
        if arr.dtype == np.int8:
            if scales is None:
                raise FeatureInputError("int8 features need the feature scales; the model stored none (give floats)")
            out = arr.astype(np.float32) * np.asarray(scales, dtype=np.float32)
        elif np.issubdtype(arr.dtype, np.floating):
            out = arr.astype(np.float32, copy=False)
        else:
            raise FeatureInputError(f"feature arrays must be float or int8, got {arr.dtype}")
    elif isinstance(features, list) and features and all(isinstance(f, QuantizedFeature) for f in features):
        rows = [f.dequantize() for f in features]
        if len({r.shape for r in rows}) != 1:
            raise FeatureInputError(f"quantised features have different lengths: {sorted({len(r) for r in rows})}")
        out = np.stack(rows)
    else:
        raise FeatureInputError(f"features must be {FORMS}; got {_describe(features)}")
    if not np.all(np.isfinite(out)):
        raise FeatureInputError("features contain NaN or infinite values")
    return out


def _describe(features: Any) -> str:
    if isinstance(features, list):
        return "an empty list" if not features else f"a list of {type(features[0]).__name__}"
    return f"a {type(features).__name__}"


class Standardiser:
    """Per-dimension mean and std over chunks, in one pass and bounded memory."""

    def __init__(self) -> None:
        self.n = 0
        self.s: np.ndarray | None = None
        self.ss: np.ndarray | None = None

    def add(self, x: np.ndarray) -> None:
        x64 = x.astype(np.float64)
        if self.s is None or self.ss is None:
            self.s = np.zeros(x.shape[1])
            self.ss = np.zeros(x.shape[1])
        self.n += x.shape[0]
        self.s += x64.sum(0)
        self.ss += (x64 * x64).sum(0)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.n or self.s is None or self.ss is None:
            raise CadenceError("no training examples")
        mean = self.s / self.n
        std = np.sqrt(np.maximum(self.ss / self.n - mean * mean, 0.0))
        std[std < 1e-6] = 1.0
        return mean.astype(np.float32), std.astype(np.float32)


def statistics(chunks: Iterable[tuple[np.ndarray, Any]]) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean, std, count) of the features of ``(x, y)`` chunks; refuses NaN and no data."""
    st = Standardiser()
    for x, _ in chunks:
        if not np.all(np.isfinite(x)):
            raise FeatureInputError("training features contain NaN or infinite values")
        st.add(x)
    mean, std = st.result()
    return mean, std, st.n


def label_indices(labels: list[str], names: Iterable[Any]) -> np.ndarray:
    """Indices of ``names`` in ``labels``; a label the model does not know is one line."""
    names = np.asarray(names if isinstance(names, np.ndarray) else list(names)).astype(str)
    index = {label: i for i, label in enumerate(labels)}
    unique, inverse = np.unique(names, return_inverse=True)
    try:
        return np.array([index[str(u)] for u in unique], dtype=np.int64)[inverse.reshape(-1)]
    except KeyError as exc:
        raise CadenceError(f"label {exc.args[0]!r} is not one of the model's labels {labels}") from None
