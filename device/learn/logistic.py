"""Multinomial logistic regression, fitted with L-BFGS over chunks of examples.

The loss and gradient are summed chunk by chunk, so a feature cache larger than
memory is fitted without loading it (up to 64 MB of standardised examples are
held instead of read again on every L-BFGS iteration). With few clips per label it beats the
network (docs/training.md, "Choosing a classifier").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from device.components import CadenceError, Estimator, EventHandler, Examples, emit

from .inputs import label_indices, statistics
from .model import LOGISTIC_KIND, ClassifierModel


HELD_BYTES = 64 << 20  # standardised examples (float64) held in memory up to this size


class LogisticRegressionModel(ClassifierModel):
    kind = LOGISTIC_KIND

    def __init__(
        self, labels: Any, mean: np.ndarray, std: np.ndarray, weights: np.ndarray, bias: np.ndarray, *,
        params: Mapping[str, Any] | None = None, **kw: Any,
    ) -> None:
        super().__init__(labels, mean, std, **kw)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.params = dict(params or {})

    def _logits(self, z: np.ndarray) -> np.ndarray:
        return z @ self.weights + self.bias

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "bias": self.bias}

    def _meta(self) -> dict[str, Any]:
        return {"params": dict(self.params)}

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "LogisticRegressionModel":
        return cls(
            meta["labels"], arrays["mean"], arrays["std"], arrays["weights"], arrays["bias"],
            params=meta.get("params"), feature_scales=arrays.get("feature_scales"), metadata=meta.get("metadata"),
        )


class LogisticRegressionClassifier(Estimator[Any, dict[str, float]]):
    """Softmax regression on standardised features.

    ``l2_penalty`` weighs ``0.5 * ||W||^2`` against the mean cross-entropy
    (bias not penalised); ``max_iterations`` caps L-BFGS iterations;
    ``convergence_threshold`` is its gradient/loss tolerance.
    """

    def __init__(self, l2_penalty: float = 1e-3, max_iterations: int = 500, convergence_threshold: float = 1e-6) -> None:
        if l2_penalty < 0:
            raise ValueError("l2_penalty must be >= 0")
        if max_iterations < 1:
            raise ValueError("max_iterations must be >= 1")
        self.l2_penalty = float(l2_penalty)
        self.max_iterations = int(max_iterations)
        self.convergence_threshold = float(convergence_threshold)

    def get_params(self) -> dict[str, Any]:
        return {
            "l2_penalty": self.l2_penalty,
            "max_iterations": self.max_iterations,
            "convergence_threshold": self.convergence_threshold,
        }

    def fit(self, data: Examples, *, on_event: EventHandler | None = None) -> LogisticRegressionModel:
        """L-BFGS on the summed loss of every chunk of ``data`` (read once per iteration)."""
        from scipy.optimize import minimize

        labels = list(data.labels)
        if len(labels) < 2:
            raise CadenceError(f"need at least two labels to train a classifier, got {labels}")
        mean, std, n_total = statistics(data)
        d, k = int(mean.shape[0]), len(labels)
        lam = self.l2_penalty
        iteration = [0]

        def standardised() -> Any:
            for x, names in data:
                yield (x.astype(np.float64) - mean) / std, label_indices(labels, names)

        # small data is standardised once and held; larger data is read again on every iteration
        held = list(standardised()) if n_total * d * 8 <= HELD_BYTES else None

        def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w = theta[: d * k].reshape(d, k)
            b = theta[d * k :]
            loss, gw, gb = 0.0, np.zeros((d, k)), np.zeros(k)
            for z, y in held if held is not None else standardised():
                logits = z @ w + b
                logits -= logits.max(axis=1, keepdims=True)
                lse = np.log(np.exp(logits).sum(axis=1))
                loss += float((lse - logits[np.arange(len(y)), y]).sum())
                p = np.exp(logits - lse[:, None])
                p[np.arange(len(y)), y] -= 1.0
                gw += z.T @ p
                gb += p.sum(0)
            loss = loss / n_total + 0.5 * lam * float((w * w).sum())
            return loss, np.concatenate([(gw / n_total + lam * w).ravel(), gb / n_total])

        def callback(theta: np.ndarray) -> None:
            iteration[0] += 1
            emit(on_event, "fit", iteration[0], self.max_iterations)

        result = minimize(
            loss_grad, np.zeros(d * k + k), jac=True, method="L-BFGS-B", callback=callback,
            options={"maxiter": self.max_iterations, "gtol": self.convergence_threshold, "ftol": self.convergence_threshold},
        )
        theta = result.x
        return LogisticRegressionModel(
            labels, mean, std, theta[: d * k].reshape(d, k), theta[d * k :], params=self.get_params(),
            metadata={"training": {"iterations": int(result.nit), "final_loss": float(result.fun), "examples": n_total}},
        )

    def __repr__(self) -> str:
        return f"LogisticRegressionClassifier({self.get_params()})"
