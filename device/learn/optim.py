"""Adam, the network's optimizer, as a small object whose state is saved with the model.

In the manner of scikit-learn's ``AdamOptimizer``: settings in ``__init__``,
``update(params, grads)`` returns the new parameters; the step count and the
first/second moments are its state, stored in the model file so that training
resumes bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class Adam:
    """Adam (Kingma & Ba) with bias correction folded into the step size."""

    def __init__(
        self,
        learning_rate: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        *,
        step: int = 0,
        moments: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    ) -> None:
        if not learning_rate > 0:
            raise ValueError("learning_rate must be > 0")
        self.learning_rate = float(learning_rate)
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)
        self.step = int(step)
        #: (first moment, second moment) per parameter array, in parameter order
        self.moments: list[tuple[np.ndarray, np.ndarray]] = [(m, v) for m, v in moments]

    def reset(self, params: Sequence[np.ndarray]) -> None:
        """Zero moments shaped like ``params`` (a new model)."""
        self.step = 0
        self.moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]

    def update(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One step: the new parameters (float32); moments and step advance in place."""
        if len(params) != len(self.moments):
            raise ValueError(f"Adam holds moments for {len(self.moments)} arrays, got {len(params)}")
        self.step += 1
        t = self.step
        correction = self.learning_rate * math.sqrt(1 - self.beta2**t) / (1 - self.beta1**t)
        out = []
        for p, g, (m, v) in zip(params, grads, self.moments):
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * (g * g)
            out.append((p - correction * m / (np.sqrt(v) + self.epsilon)).astype(np.float32))
        return out

    def get_params(self) -> dict[str, float]:
        return {"learning_rate": self.learning_rate, "beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon}

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(meta, arrays) to store with the model."""
        arrays: dict[str, np.ndarray] = {}
        for i, (m, v) in enumerate(self.moments):
            arrays[f"adam.m{i}"], arrays[f"adam.v{i}"] = m, v
        return {"name": "adam", **self.get_params(), "step": self.step, "arrays": len(self.moments)}, arrays

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "Adam":
        if meta.get("name") != "adam":
            raise ValueError(f"unknown optimizer {meta.get('name')!r}")
        n = int(meta["arrays"])
        moments = [(np.array(arrays[f"adam.m{i}"], np.float32), np.array(arrays[f"adam.v{i}"], np.float32)) for i in range(n)]
        return cls(
            float(meta["learning_rate"]), float(meta["beta1"]), float(meta["beta2"]), float(meta["epsilon"]),
            step=int(meta["step"]), moments=moments,
        )
