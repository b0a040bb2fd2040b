"""Sound classifiers over feature prints: logistic regression and a small network.

Both are :mod:`device.components` estimators over
``AnnotatedFeature(feature_vector, label)``. A feature vector may be

- a float array (any real dtype),
- an int8 array (a quantised feature print); it is dequantised with the
  ``feature_scales``/``feature_offsets`` the model keeps (the training loop
  stores the feature print's), if any,
- a tuple ``(int8_values, scales[, offsets])`` or an object with ``.values``
  and ``.scales`` (and ``.offsets``), such as the audio feature print's
  ``QuantizedFeature``: dequantised with its own scales and offsets.

A model fitted directly on bare int8 vectors with no known scales works on
int8 values throughout (its ``input_space`` is ``"quantized"``): it then
takes the ``.values`` of quantised items as they are, so both forms agree.

Every fitted model learns a per-dimension standardisation (mean/std) and keeps
it, so raw feature prints go straight in. A fitted model is a
:class:`~device.components.Transformer` mapping one feature vector to a
``{label: probability}`` dict; :meth:`ClassifierModel.predict_proba` and
:meth:`ClassifierModel.predict` work on batches.

Models are saved with :func:`device.components.save_state` (JSON + npz, atomic,
versioned, checksummed; no pickle) together with their labels, the fingerprint
of the feature print that produced their inputs, metrics and creation time.
:func:`load_classifier` refuses a model whose fingerprint differs from the
running feature print, because its weights would mean nothing there.

:class:`FullyConnectedNetworkClassifier` is updatable: ``make_transformer()``
then ``update(model, batch)`` (Adam in numpy). The Adam moments, step count and
the model's random generator state (dropout, mini-batch order) live in the
model, so a saved model resumes training bit-for-bit.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device.components import (
    AnnotatedFeature,
    CadenceError,
    ClassificationMetrics,
    Estimator,
    EventHandler,
    PersistenceError,
    Transformer,
    UpdatableEstimator,
    emit,
    first_line,
    load_state,
    save_state,
)

LOGISTIC_KIND = "cadence.classifier.logistic_regression"
NETWORK_KIND = "cadence.classifier.fully_connected_network"
MODEL_KINDS = (LOGISTIC_KIND, NETWORK_KIND)
MODEL_VERSION = 1

# (features as float32 matrix, label indices) for one chunk of data
Chunk = tuple[np.ndarray, np.ndarray]
ChunkSource = Callable[[], Iterable[Chunk]]


class FeaturePrintMismatchError(CadenceError):
    """A model was trained on another feature print than the one running."""


# --------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------
def _split_quantised(x: Any) -> tuple[Any, Any, Any]:
    """Return (values, own scales or None, own offsets or None) for one feature item."""
    if isinstance(x, Mapping) and "values" in x:
        return x["values"], x.get("scales", x.get("scale")), x.get("offsets")
    if hasattr(x, "values") and (hasattr(x, "scales") or hasattr(x, "scale")) and not isinstance(x, np.ndarray):
        values = x.values() if callable(x.values) else x.values
        scales = getattr(x, "scales", None) if hasattr(x, "scales") else x.scale
        return values, scales, getattr(x, "offsets", None)
    if isinstance(x, tuple) and len(x) in (2, 3) and isinstance(x[0], np.ndarray):
        return x[0], x[1], x[2] if len(x) == 3 else None
    return x, None, None


def _is_quantised_item(x: Any) -> bool:
    return _split_quantised(x)[1] is not None


def as_feature_matrix(
    features: Any,
    scales: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
    *,
    space: str = "float",
) -> np.ndarray:
    """Turn one vector, a batch, or a list of (possibly quantised) items into float32 (n, d).

    In the ``"float"`` space (the normal one) quantised items are dequantised
    (``values * scales + offsets``) with their own scales, integer arrays
    with ``scales``/``offsets`` when given. A model fitted on bare int8
    vectors without known scales works in the ``"quantized"`` space: it takes
    the int8 values of every input as they are.
    """
    if isinstance(features, np.ndarray):
        return _dequantise(features[None, :] if features.ndim == 1 else features, None, None, scales, offsets, space)
    values, own_s, own_o = _split_quantised(features)
    if own_s is not None:
        arr = np.asarray(values)
        return _dequantise(arr[None, :] if arr.ndim == 1 else arr, own_s, own_o, scales, offsets, space)
    items = list(features)
    if not items:
        raise ValueError("no feature vectors given")
    if all(isinstance(i, (int, float, np.number)) for i in items):
        return _dequantise(np.asarray(items)[None, :], None, None, scales, offsets, space)
    rows = []
    for item in items:
        v, own_s, own_o = _split_quantised(item)
        arr = np.asarray(v)
        if arr.ndim != 1:
            raise ValueError(f"a feature vector must be 1-D, got shape {arr.shape}")
        rows.append(_dequantise(arr[None, :], own_s, own_o, scales, offsets, space)[0])
    dims = {r.shape[0] for r in rows}
    if len(dims) != 1:
        raise ValueError(f"feature vectors have different lengths: {sorted(dims)}")
    return np.stack(rows).astype(np.float32, copy=False)


def _dequantise(
    arr: np.ndarray, own_s: Any, own_o: Any, scales: Any, offsets: Any, space: str
) -> np.ndarray:
    if arr.dtype == object:
        raise ValueError("feature vectors must be numeric")
    out = arr.astype(np.float32)
    if space == "float":
        if own_s is not None:
            use_s, use_o = own_s, own_o
            if use_o is None and offsets is not None and scales is not None and _same(own_s, scales):
                # (values, scales) of the feature print the model knows: its offsets apply too
                use_o = offsets
        elif np.issubdtype(arr.dtype, np.integer):
            use_s, use_o = scales, offsets
        else:
            use_s = use_o = None
        if use_s is not None:
            out = out * np.asarray(use_s, dtype=np.float32)
        if use_o is not None:
            out = out + np.asarray(use_o, dtype=np.float32)
    if not np.all(np.isfinite(out)):
        raise ValueError("feature vectors contain NaN or infinite values")
    return out


def _same(a: Any, b: Any) -> bool:
    a = np.asarray(a, dtype=np.float32).reshape(-1)
    b = np.asarray(b, dtype=np.float32).reshape(-1)
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _input_space(items: Sequence[Any], scales: Any) -> str:
    """``"quantized"`` when fitting on bare integer vectors with no known scales."""
    if scales is not None:
        return "float"
    for item in items[:16]:
        if _is_quantised_item(item):
            return "float"
        if not np.issubdtype(np.asarray(item).dtype, np.integer):
            return "float"
    return "quantized"


class _Standardiser:
    """Running sums for a per-dimension mean/std over chunks."""

    def __init__(self) -> None:
        self.n = 0
        self.s: np.ndarray | None = None
        self.ss: np.ndarray | None = None

    def add(self, x: np.ndarray) -> None:
        x64 = x.astype(np.float64)
        if self.s is None:
            self.s = np.zeros(x.shape[1])
            self.ss = np.zeros(x.shape[1])
        self.n += x.shape[0]
        self.s += x64.sum(0)
        self.ss += (x64 * x64).sum(0)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.n or self.s is None or self.ss is None:
            raise ValueError("no training data")
        mean = self.s / self.n
        var = np.maximum(self.ss / self.n - mean * mean, 0.0)
        std = np.sqrt(var)
        std[std < 1e-6] = 1.0
        return mean.astype(np.float32), std.astype(np.float32)


def feature_statistics(chunks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std over float chunks (one pass, bounded memory)."""
    st = _Standardiser()
    for x in chunks:
        st.add(x)
    return st.result()


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _label_list(labels: Iterable[Hashable]) -> list[str]:
    out = sorted({str(label) for label in labels})
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (np.floating,)):
        return _json_safe(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# --------------------------------------------------------------------------
# fitted models
# --------------------------------------------------------------------------
class ClassifierModel(Transformer[Any, dict[str, float]]):
    """Common part of fitted classifiers: labels, standardisation, metadata."""

    kind: str = ""

    def __init__(
        self,
        labels: Sequence[str],
        mean: np.ndarray | None,
        std: np.ndarray | None,
        *,
        feature_scales: np.ndarray | None = None,
        feature_offsets: np.ndarray | None = None,
        input_space: str = "float",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.labels = [str(label) for label in labels]
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)
        # how bare int8 inputs are dequantised (the feature print's scales/offsets)
        self.feature_scales = None if feature_scales is None else np.asarray(feature_scales, dtype=np.float32)
        self.feature_offsets = None if feature_offsets is None else np.asarray(feature_offsets, dtype=np.float32)
        if input_space not in ("float", "quantized"):
            raise PersistenceError(f"unknown input space {input_space!r}")
        self.input_space = input_space
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.metadata.setdefault("created", _now())

    # -- inference ----------------------------------------------------------
    @property
    def dimension(self) -> int | None:
        return None if self.mean is None else int(self.mean.shape[0])

    @property
    def fingerprint(self) -> str | None:
        fp = self.metadata.get("feature_print_fingerprint")
        return str(fp) if fp else None

    def standardise(self, x: np.ndarray) -> np.ndarray:
        if self.mean is None or self.std is None:
            raise CadenceError(f"{type(self).__name__}: the model has not been trained yet")
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"feature vectors have {x.shape[1]} dimensions, the model expects {self.mean.shape[0]}")
        return (x - self.mean) / self.std

    def _logits(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def as_matrix(self, features: Any) -> np.ndarray:
        """Inputs as the float matrix this model was trained on."""
        return as_feature_matrix(features, self.feature_scales, self.feature_offsets, space=self.input_space)

    def predict_proba(self, features: Any) -> np.ndarray:
        """Probabilities (n, len(labels)) for a batch of feature vectors."""
        x = self.as_matrix(features)
        return _softmax(self._logits(self.standardise(x)).astype(np.float64)).astype(np.float32)

    def predict(self, features: Any) -> list[str]:
        """The most probable label for each feature vector of a batch."""
        p = self.predict_proba(features)
        return [self.labels[i] for i in np.argmax(p, axis=1)]

    def apply(self, x: Any) -> dict[str, float]:
        p = self.predict_proba(x)[0]
        return {label: float(v) for label, v in zip(self.labels, p)}

    def evaluate(self, data: Iterable[AnnotatedFeature[Any, Any]]) -> ClassificationMetrics:
        items = list(data)
        metrics = ClassificationMetrics(self.labels)
        if items:
            metrics.update([str(i.annotation) for i in items], self.predict([i.feature for i in items]))
        return metrics

    # -- persistence --------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(meta, arrays) as stored on disk."""
        arrays = self._arrays()
        if self.mean is not None and self.std is not None:
            arrays["mean"] = self.mean
            arrays["std"] = self.std
        if self.feature_scales is not None:
            arrays["feature_scales"] = self.feature_scales
        if self.feature_offsets is not None:
            arrays["feature_offsets"] = self.feature_offsets
        meta = {
            "model_version": MODEL_VERSION,
            "input_space": self.input_space,
            "labels": self.labels,
            "params": self._params(),
            "metadata": _json_safe(self.metadata),
        }
        return meta, arrays

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (old file intact on any failure, e.g. a full disk)."""
        meta, arrays = self.state()
        return save_state(path, self.kind, meta, arrays)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(labels={self.labels}, dimension={self.dimension})"


class LogisticRegressionModel(ClassifierModel):
    kind = LOGISTIC_KIND

    def __init__(self, labels, mean, std, weights, bias, *, params=None, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(labels, mean, std, **kw)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.params = dict(params or {})

    def _logits(self, z: np.ndarray) -> np.ndarray:
        return z @ self.weights + self.bias

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "bias": self.bias}

    def _params(self) -> dict[str, Any]:
        return dict(self.params)

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "LogisticRegressionModel":
        return cls(
            meta["labels"],
            arrays["mean"],
            arrays["std"],
            arrays["weights"],
            arrays["bias"],
            params=meta.get("params"),
            feature_scales=arrays.get("feature_scales"),
            feature_offsets=arrays.get("feature_offsets"),
            input_space=meta.get("input_space", "float"),
            metadata=meta.get("metadata"),
        )


class FullyConnectedNetworkModel(ClassifierModel):
    """Weights, Adam moments, step and RNG state of the network classifier."""

    kind = NETWORK_KIND

    def __init__(
        self,
        labels: Sequence[str],
        mean: np.ndarray | None,
        std: np.ndarray | None,
        weights: list[np.ndarray],
        biases: list[np.ndarray],
        *,
        params: Mapping[str, Any],
        moments: dict[str, list[np.ndarray]] | None = None,
        step: int = 0,
        rng_state: Mapping[str, Any] | None = None,
        updates: int = 0,
        **kw: Any,
    ) -> None:
        super().__init__(labels, mean, std, **kw)
        self.weights = [np.asarray(w, dtype=np.float32) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float32) for b in biases]
        self.params = dict(params)
        zeros = lambda arrs: [np.zeros_like(a) for a in arrs]  # noqa: E731
        self.moments = moments or {
            "mw": zeros(self.weights),
            "vw": zeros(self.weights),
            "mb": zeros(self.biases),
            "vb": zeros(self.biases),
        }
        self.step = int(step)
        self.updates = int(updates)
        self.rng = np.random.Generator(np.random.PCG64(int(self.params.get("random_seed", 0))))
        if rng_state:
            self.rng.bit_generator.state = _decode_rng(rng_state)

    @property
    def is_initialised(self) -> bool:
        return bool(self.weights) and self.mean is not None

    def forward(self, z: np.ndarray, *, train: bool = False) -> tuple[np.ndarray, list[np.ndarray], list]:
        """Logits, layer activations and dropout masks (masks only when training)."""
        acts = [z]
        masks: list[np.ndarray | None] = []
        h = z
        dropout = float(self.params.get("dropout", 0.0))
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            h = np.maximum(h @ w + b, 0.0)
            if train and dropout > 0:
                keep = (self.rng.random(h.shape, dtype=np.float32) >= dropout).astype(np.float32) / (1.0 - dropout)
                h = h * keep
                masks.append(keep)
            else:
                masks.append(None)
            acts.append(h)
        return acts[-1] @ self.weights[-1] + self.biases[-1], acts, masks

    def _logits(self, z: np.ndarray) -> np.ndarray:
        if not self.weights:
            raise CadenceError("FullyConnectedNetworkModel: the model has not been trained yet")
        return self.forward(z.astype(np.float32))[0]

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"w{i}"] = w
            arrays[f"b{i}"] = b
            for key in ("mw", "vw"):
                arrays[f"{key}{i}"] = self.moments[key][i]
            for key in ("mb", "vb"):
                arrays[f"{key}{i}"] = self.moments[key][i]
        return arrays

    def _params(self) -> dict[str, Any]:
        return dict(self.params)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = super().state()
        meta["optimizer"] = {
            "name": "adam",
            "step": self.step,
            "updates": self.updates,
            "layers": len(self.weights),
            "rng_state": _encode_rng(self.rng.bit_generator.state),
        }
        return meta, arrays

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "FullyConnectedNetworkModel":
        opt = meta.get("optimizer") or {}
        n = int(opt.get("layers", 0))
        try:
            weights = [arrays[f"w{i}"] for i in range(n)]
            biases = [arrays[f"b{i}"] for i in range(n)]
            moments = {
                key: [arrays[f"{key}{i}"] for i in range(n)] for key in ("mw", "vw", "mb", "vb")
            }
        except KeyError as exc:
            raise PersistenceError(f"network model is missing array {exc}") from exc
        return cls(
            meta["labels"],
            arrays.get("mean"),
            arrays.get("std"),
            weights,
            biases,
            params=meta.get("params") or {},
            moments=moments if n else None,
            step=int(opt.get("step", 0)),
            updates=int(opt.get("updates", 0)),
            rng_state=opt.get("rng_state"),
            feature_scales=arrays.get("feature_scales"),
            feature_offsets=arrays.get("feature_offsets"),
            input_space=meta.get("input_space", "float"),
            metadata=meta.get("metadata"),
        )

    def copy(self) -> "FullyConnectedNetworkModel":
        meta, arrays = self.state()
        return FullyConnectedNetworkModel.from_state(meta, {k: v.copy() for k, v in arrays.items()})


def _encode_rng(state: Mapping[str, Any]) -> dict[str, Any]:
    inner = state["state"]
    return {
        "bit_generator": state["bit_generator"],
        "state": str(inner["state"]),
        "inc": str(inner["inc"]),
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def _decode_rng(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "bit_generator": data["bit_generator"],
        "state": {"state": int(data["state"]), "inc": int(data["inc"])},
        "has_uint32": int(data["has_uint32"]),
        "uinteger": int(data["uinteger"]),
    }


# --------------------------------------------------------------------------
# estimators
# --------------------------------------------------------------------------
def _annotated_to_arrays(
    data: Iterable[AnnotatedFeature[Any, Any]],
    scales: np.ndarray | None,
    offsets: np.ndarray | None = None,
    space: str | None = None,
) -> tuple[np.ndarray, list[str], str]:
    """(float matrix, label names, input space) of annotated examples."""
    items = list(data)
    if not items:
        raise CadenceError("no training examples")
    feats = [i.feature for i in items]
    space = space or _input_space(feats, scales)
    x = as_feature_matrix(feats, scales, offsets, space=space)
    return x, [str(i.annotation) for i in items], space


def _indices(labels: Sequence[str], names: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index[n] for n in names], dtype=np.int64)


class LogisticRegressionClassifier(Estimator[Any, dict[str, float]]):
    """Multinomial logistic regression (softmax), fitted with scipy's L-BFGS.

    ``l2_penalty`` is the weight of ``0.5 * ||W||^2`` added to the mean
    cross-entropy (bias not penalised); ``max_iterations`` caps L-BFGS
    iterations; ``convergence_threshold`` is its gradient/loss tolerance.
    :meth:`fit_chunks` computes loss and gradient chunk by chunk, so a feature
    cache larger than memory can be fitted.
    """

    def __init__(
        self,
        l2_penalty: float = 1e-3,
        max_iterations: int = 500,
        convergence_threshold: float = 1e-6,
        *,
        feature_scales: np.ndarray | None = None,
        feature_offsets: np.ndarray | None = None,
    ) -> None:
        if l2_penalty < 0:
            raise ValueError("l2_penalty must be >= 0")
        if max_iterations < 1:
            raise ValueError("max_iterations must be >= 1")
        self.l2_penalty = float(l2_penalty)
        self.max_iterations = int(max_iterations)
        self.convergence_threshold = float(convergence_threshold)
        self.feature_scales = feature_scales
        self.feature_offsets = feature_offsets

    def get_params(self) -> dict[str, Any]:
        return {
            "l2_penalty": self.l2_penalty,
            "max_iterations": self.max_iterations,
            "convergence_threshold": self.convergence_threshold,
        }

    def fit(
        self,
        data: Iterable[AnnotatedFeature[Any, Any]],
        *,
        validation: Iterable[AnnotatedFeature[Any, Any]] | None = None,
        on_event: EventHandler | None = None,
        labels: Sequence[str] | None = None,
    ) -> LogisticRegressionModel:
        x, names, space = _annotated_to_arrays(data, self.feature_scales, self.feature_offsets)
        label_list = list(labels) if labels is not None else _label_list(names)
        y = _indices(label_list, names)
        model = self.fit_chunks(lambda: [(x, y)], label_list, on_event=on_event)
        model.input_space = space
        if validation is not None:
            val = list(validation)
            if val:
                model.metadata["validation"] = model.evaluate(val).to_dict()
        return model

    def fit_chunks(
        self,
        chunks: ChunkSource,
        labels: Sequence[str],
        *,
        on_event: EventHandler | None = None,
        statistics: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> LogisticRegressionModel:
        """Fit from a re-iterable source of ``(float_features, label_index)`` chunks."""
        from scipy.optimize import minimize

        labels = [str(label) for label in labels]
        mean, std = statistics if statistics is not None else feature_statistics(x for x, _ in chunks())
        d, k = int(mean.shape[0]), len(labels)
        if k < 2:
            raise CadenceError(f"need at least two labels to train a classifier, got {labels}")
        n_total = sum(int(x.shape[0]) for x, _ in chunks())
        lam = self.l2_penalty
        iteration = [0]

        def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w = theta[: d * k].reshape(d, k)
            b = theta[d * k :]
            loss = 0.0
            gw = np.zeros((d, k))
            gb = np.zeros(k)
            for x, y in chunks():
                z = (x.astype(np.float64) - mean) / std
                logits = z @ w + b
                logits -= logits.max(axis=1, keepdims=True)
                lse = np.log(np.exp(logits).sum(axis=1))
                loss += float((lse - logits[np.arange(len(y)), y]).sum())
                p = np.exp(logits - lse[:, None])
                p[np.arange(len(y)), y] -= 1.0
                gw += z.T @ p
                gb += p.sum(0)
            loss = loss / n_total + 0.5 * lam * float((w * w).sum())
            gw = gw / n_total + lam * w
            gb = gb / n_total
            return loss, np.concatenate([gw.ravel(), gb])

        def callback(theta: np.ndarray) -> None:
            iteration[0] += 1
            emit(on_event, "fit", iteration[0], self.max_iterations)

        result = minimize(
            loss_grad,
            np.zeros(d * k + k),
            jac=True,
            method="L-BFGS-B",
            callback=callback,
            options={"maxiter": self.max_iterations, "gtol": self.convergence_threshold, "ftol": self.convergence_threshold},
        )
        theta = result.x
        model = LogisticRegressionModel(
            labels,
            mean,
            std,
            theta[: d * k].reshape(d, k),
            theta[d * k :],
            params=self.get_params(),
            feature_scales=self.feature_scales,
            feature_offsets=self.feature_offsets,
            metadata={"training": {"iterations": int(result.nit), "final_loss": float(result.fun), "examples": n_total}},
        )
        return model

    def save(self, model: LogisticRegressionModel, path: str | os.PathLike[str]) -> Path:
        return model.save(path)

    def load(self, path: str | os.PathLike[str]) -> LogisticRegressionModel:
        model = load_classifier(path)
        if not isinstance(model, LogisticRegressionModel):
            raise PersistenceError(f"{path}: holds a {type(model).__name__}, expected a logistic regression model")
        return model

    def __repr__(self) -> str:
        return f"LogisticRegressionClassifier({self.get_params()})"


class FullyConnectedNetworkClassifier(UpdatableEstimator[Any, dict[str, float]]):
    """A small ReLU network with softmax output, trained with Adam (numpy).

    ``update(model, batch)`` shuffles the batch with the model's own generator
    and takes one Adam step per ``batch_size`` examples. ``fit`` runs
    ``max_iterations`` epochs of that over the data. ``dropout`` is applied
    after each hidden layer during training; ``l2_penalty`` is weight decay.
    """

    def __init__(
        self,
        hidden_unit_counts: Sequence[int] = (64,),
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        max_iterations: int = 100,
        dropout: float = 0.1,
        random_seed: int = 0,
        *,
        l2_penalty: float = 1e-4,
        feature_scales: np.ndarray | None = None,
        feature_offsets: np.ndarray | None = None,
    ) -> None:
        if any(int(h) < 1 for h in hidden_unit_counts):
            raise ValueError("hidden_unit_counts must be positive")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if learning_rate <= 0:
            raise ValueError("learning_rate must be > 0")
        self.hidden_unit_counts = tuple(int(h) for h in hidden_unit_counts)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.max_iterations = int(max_iterations)
        self.dropout = float(dropout)
        self.random_seed = int(random_seed)
        self.l2_penalty = float(l2_penalty)
        self.feature_scales = feature_scales
        self.feature_offsets = feature_offsets

    def get_params(self) -> dict[str, Any]:
        return {
            "hidden_unit_counts": list(self.hidden_unit_counts),
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "max_iterations": self.max_iterations,
            "dropout": self.dropout,
            "random_seed": self.random_seed,
            "l2_penalty": self.l2_penalty,
        }

    # -- updatable protocol ---------------------------------------------------
    def make_transformer(
        self,
        labels: Sequence[str] | None = None,
        *,
        statistics: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> FullyConnectedNetworkModel:
        """An untrained model. Labels and standardisation may be given now
        (the training loop does, from one pass over the cache); otherwise they
        are taken from the first batch, and labels first seen later get a new
        output unit."""
        model = FullyConnectedNetworkModel(
            _label_list(labels) if labels is not None else [],
            None,
            None,
            [],
            [],
            params=self.get_params(),
            feature_scales=self.feature_scales,
            feature_offsets=self.feature_offsets,
        )
        if statistics is not None:
            self._initialise(model, statistics[0], statistics[1])
        return model

    def _initialise(self, model: FullyConnectedNetworkModel, mean: np.ndarray, std: np.ndarray) -> None:
        model.mean = np.asarray(mean, dtype=np.float32)
        model.std = np.asarray(std, dtype=np.float32)
        sizes = [int(model.mean.shape[0]), *self.hidden_unit_counts, max(len(model.labels), 1)]
        model.weights, model.biases = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            limit = math.sqrt(6.0 / fan_in)  # He-uniform for ReLU
            model.weights.append(model.rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32))
            model.biases.append(np.zeros(fan_out, dtype=np.float32))
        if model.labels:
            model.weights[-1] *= 0.1  # start close to uniform probabilities
        model.moments = {
            "mw": [np.zeros_like(w) for w in model.weights],
            "vw": [np.zeros_like(w) for w in model.weights],
            "mb": [np.zeros_like(b) for b in model.biases],
            "vb": [np.zeros_like(b) for b in model.biases],
        }

    def _add_labels(self, model: FullyConnectedNetworkModel, names: Iterable[str]) -> None:
        new = sorted(set(names) - set(model.labels))
        if not new:
            return
        if not model.labels:
            # output layer was sized 1 as a placeholder
            model.weights[-1] = model.weights[-1][:, :0]
            model.biases[-1] = model.biases[-1][:0]
            for key, arrs in (("mw", model.weights), ("vw", model.weights)):
                model.moments[key][-1] = np.zeros_like(arrs[-1])
            for key in ("mb", "vb"):
                model.moments[key][-1] = np.zeros_like(model.biases[-1])
        fan_in = model.weights[-1].shape[0]
        extra_w = np.zeros((fan_in, len(new)), dtype=np.float32)
        extra_b = np.zeros(len(new), dtype=np.float32)
        merged = model.labels + new
        order = np.argsort(merged, kind="stable")
        def grow(a: np.ndarray, extra: np.ndarray, axis: int) -> np.ndarray:
            return np.take(np.concatenate([a, extra], axis=axis), order, axis=axis)
        model.weights[-1] = grow(model.weights[-1], extra_w, 1)
        model.biases[-1] = grow(model.biases[-1], extra_b, 0)
        for key in ("mw", "vw"):
            model.moments[key][-1] = grow(model.moments[key][-1], extra_w, 1)
        for key in ("mb", "vb"):
            model.moments[key][-1] = grow(model.moments[key][-1], extra_b, 0)
        model.labels = [merged[i] for i in order]

    def update(
        self,
        model: FullyConnectedNetworkModel,
        batch: Sequence[AnnotatedFeature[Any, Any]],
        *,
        on_event: EventHandler | None = None,
    ) -> FullyConnectedNetworkModel:
        """One pass of Adam steps over ``batch`` (in mini-batches of ``batch_size``)."""
        if not model.weights and model.feature_scales is None:
            # an untrained model learns how its inputs are represented from the first batch
            model.input_space = _input_space([i.feature for i in batch], self.feature_scales)
        x, names, _ = _annotated_to_arrays(
            batch, model.feature_scales, model.feature_offsets, space=model.input_space
        )
        return self.update_arrays(model, x, names, on_event=on_event)

    def update_arrays(
        self,
        model: FullyConnectedNetworkModel,
        x: np.ndarray,
        names: Sequence[str] | np.ndarray,
        *,
        on_event: EventHandler | None = None,
    ) -> FullyConnectedNetworkModel:
        """:meth:`update` on a float matrix and label names (the cache's fast path).

        The model is updated in place and returned. Returns the mean training
        loss of the pass in ``model.metadata['last_update_loss']``.
        """
        if not model.weights:
            st = _Standardiser()
            st.add(x)
            self._initialise(model, *st.result())
        names = [str(n) for n in names]
        self._add_labels(model, names)
        if len(model.labels) < 1:
            raise CadenceError("no labels to train on")
        y = _indices(model.labels, names)
        z = model.standardise(x.astype(np.float32, copy=False))
        order = model.rng.permutation(len(y))
        total_loss, steps = 0.0, 0
        n_batches = max(1, math.ceil(len(y) / self.batch_size))
        for i in range(n_batches):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            if idx.size == 0:
                continue
            total_loss += self._step(model, z[idx], y[idx]) * idx.size
            steps += idx.size
            emit(on_event, "update", i + 1, n_batches)
        model.updates += 1
        model.metadata["last_update_loss"] = total_loss / max(steps, 1)
        return model

    def _step(self, model: FullyConnectedNetworkModel, z: np.ndarray, y: np.ndarray) -> float:
        logits, acts, masks = model.forward(z, train=True)
        p = _softmax(logits.astype(np.float64))
        n = len(y)
        loss = float(-np.log(np.maximum(p[np.arange(n), y], 1e-12)).mean())
        delta = p
        delta[np.arange(n), y] -= 1.0
        delta = (delta / n).astype(np.float32)
        grads_w: list[np.ndarray] = [None] * len(model.weights)  # type: ignore[list-item]
        grads_b: list[np.ndarray] = [None] * len(model.weights)  # type: ignore[list-item]
        for layer in range(len(model.weights) - 1, -1, -1):
            grads_w[layer] = acts[layer].T @ delta + self.l2_penalty * model.weights[layer]
            grads_b[layer] = delta.sum(0)
            if layer > 0:
                delta = delta @ model.weights[layer].T
                # acts = relu(pre) * mask, so d acts / d pre = (acts > 0) * mask
                delta = delta * (acts[layer] > 0)
                mask = masks[layer - 1]
                if mask is not None:
                    delta = delta * mask
        model.step += 1
        b1, b2, eps, lr = 0.9, 0.999, 1e-8, self.learning_rate
        t = model.step
        correction = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        for layer in range(len(model.weights)):
            for params, grads, mkey, vkey in (
                (model.weights, grads_w, "mw", "vw"),
                (model.biases, grads_b, "mb", "vb"),
            ):
                g = grads[layer]
                m = model.moments[mkey][layer]
                v = model.moments[vkey][layer]
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * (g * g)
                params[layer] = (params[layer] - correction * m / (np.sqrt(v) + eps)).astype(np.float32)
        return loss

    def fit(
        self,
        data: Iterable[AnnotatedFeature[Any, Any]],
        *,
        validation: Iterable[AnnotatedFeature[Any, Any]] | None = None,
        on_event: EventHandler | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
    ) -> FullyConnectedNetworkModel:
        """``max_iterations`` (or ``epochs``) passes of :meth:`update` over all data."""
        x, names, space = _annotated_to_arrays(data, self.feature_scales, self.feature_offsets)
        val = list(validation) if validation is not None else []
        labels = _label_list(names + [str(v.annotation) for v in val])
        model = self.make_transformer(labels, statistics=feature_statistics([x]))
        model.input_space = space
        n_epochs = int(epochs if epochs is not None else self.max_iterations)
        for epoch in range(n_epochs):
            self.update_arrays(model, x, names)
            metrics: dict[str, Any] = {"loss": model.metadata["last_update_loss"]}
            if val:
                metrics["validation_accuracy"] = model.evaluate(val).accuracy
            emit(on_event, "fit", epoch + 1, n_epochs, **metrics)
        model.metadata.pop("last_update_loss", None)
        return model

    def save(self, model: FullyConnectedNetworkModel, path: str | os.PathLike[str]) -> Path:
        return model.save(path)

    def load(self, path: str | os.PathLike[str]) -> FullyConnectedNetworkModel:
        model = load_classifier(path)
        if not isinstance(model, FullyConnectedNetworkModel):
            raise PersistenceError(f"{path}: holds a {type(model).__name__}, expected a network model")
        return model

    def __repr__(self) -> str:
        return f"FullyConnectedNetworkClassifier({self.get_params()})"


# --------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------
def _running_fingerprint(feature_print: Any) -> str | None:
    if feature_print is None:
        return None
    if isinstance(feature_print, str):
        return feature_print
    fp = feature_print.fingerprint
    return str(fp() if callable(fp) else fp)


def model_from_state(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], source: str = "<model>") -> ClassifierModel:
    kind = meta.get("kind")
    version = meta.get("model_version", 1)
    if not isinstance(version, int) or version > MODEL_VERSION:
        raise PersistenceError(f"{source}: classifier version {version!r} is newer than this Cadence reads")
    try:
        if kind == LOGISTIC_KIND:
            model: ClassifierModel = LogisticRegressionModel.from_state(meta, arrays)
        elif kind == NETWORK_KIND:
            model = FullyConnectedNetworkModel.from_state(meta, arrays)
        else:
            raise PersistenceError(f"{source}: holds a {kind!r}, not a sound classifier model")
    except PersistenceError as exc:
        if str(exc).startswith(source):
            raise
        raise PersistenceError(f"{source}: {exc}") from exc
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, OverflowError) as exc:
        raise PersistenceError(f"{source}: incomplete classifier model ({first_line(exc)})") from exc
    _check_usable(model, source)
    return model


def _check_usable(model: ClassifierModel, source: str) -> None:
    """Refuse at load time a model whose arrays do not fit together, so that a
    bad file never reaches inference (where every window would fail)."""
    try:
        if model.dimension is None or not model.labels:
            raise ValueError("no labels or no standardisation")
        probe = np.zeros((1, model.dimension), dtype=np.int8)  # also checks the stored scales/offsets
        p = model.predict_proba(probe)
        if p.shape != (1, len(model.labels)) or not np.all(np.isfinite(p)):
            raise ValueError(f"outputs of shape {p.shape} for {len(model.labels)} labels")
    except (CadenceError, ValueError, TypeError, IndexError) as exc:
        raise PersistenceError(f"{source}: inconsistent classifier model ({first_line(exc)})") from exc


def load_classifier(path: str | os.PathLike[str], *, feature_print: Any = None) -> ClassifierModel:
    """Load a saved classifier; with ``feature_print`` (an object with
    ``fingerprint()`` or the fingerprint string) refuse a model made for
    another feature print."""
    meta, arrays = load_state(path)
    model = model_from_state(meta, arrays, str(path))
    check_fingerprint(model, feature_print, source=str(path))
    return model


def check_fingerprint(model: ClassifierModel, feature_print: Any, *, source: str = "model") -> None:
    running = _running_fingerprint(feature_print)
    if running is None:
        return
    stored = model.fingerprint
    if stored is None:
        raise FeaturePrintMismatchError(
            f"{source}: the model does not record which feature print it was trained on; retrain it with 'cadence train sound'"
        )
    if stored != running:
        raise FeaturePrintMismatchError(
            f"{source}: the model was trained on feature print {stored[:12]} but this device runs {running[:12]}; "
            "retrain it with 'cadence train sound' (or roll back with 'cadence models rollback')"
        )


def iterate_chunks(x: np.ndarray, y: np.ndarray, chunk_size: int) -> Iterator[Chunk]:
    for start in range(0, len(y), chunk_size):
        yield x[start : start + chunk_size], y[start : start + chunk_size]
