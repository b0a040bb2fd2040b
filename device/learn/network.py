"""A small fully connected ReLU network, trained chunk by chunk with Adam (numpy).

The model carries everything training needs to go on: weights, the
:class:`~device.learn.optim.Adam` state and its own random generator
(dropout, mini-batch order). Saving it is a checkpoint: ``update`` after
``save``/``load`` gives bit for bit what ``update`` alone gives.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device.components import CadenceError, EventHandler, Examples, PersistenceError, UpdatableEstimator, emit

from .inputs import label_indices, statistics
from .model import NETWORK_KIND, ClassifierModel, decode_rng, encode_rng, softmax
from .optim import Adam


class FullyConnectedNetworkModel(ClassifierModel):
    """Weights and biases per layer, the optimizer's state and the model's random generator."""

    kind = NETWORK_KIND

    def __init__(
        self,
        labels: Sequence[str],
        mean: np.ndarray,
        std: np.ndarray,
        weights: list[np.ndarray],
        biases: list[np.ndarray],
        *,
        params: Mapping[str, Any],
        optimizer: Adam,
        rng: np.random.Generator,
        updates: int = 0,
        **kw: Any,
    ) -> None:
        super().__init__(labels, mean, std, **kw)
        self.weights = [np.asarray(w, dtype=np.float32) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float32) for b in biases]
        if not self.weights or len(self.weights) != len(self.biases):
            raise ValueError(f"{len(self.weights)} weight and {len(self.biases)} bias arrays")
        self.params = dict(params)
        self.optimizer = optimizer
        self.rng = rng
        self.updates = int(updates)
        #: mean training loss of the last ``update`` (not saved)
        self.last_loss = math.nan

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
        return self.forward(z.astype(np.float32))[0]

    def parameters(self) -> list[np.ndarray]:
        """Weights and biases interleaved: w0, b0, w1, b1, … (the optimizer's order)."""
        return [a for pair in zip(self.weights, self.biases) for a in pair]

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)} | {f"b{i}": b for i, b in enumerate(self.biases)}
        return arrays | self.optimizer.state()[1]

    def _meta(self) -> dict[str, Any]:
        return {
            "params": dict(self.params),
            "layers": len(self.weights),
            "optimizer": self.optimizer.state()[0],
            "rng_state": encode_rng(self.rng),
            "updates": self.updates,
        }

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "FullyConnectedNetworkModel":
        n = int(meta["layers"])
        return cls(
            meta["labels"], arrays["mean"], arrays["std"],
            [arrays[f"w{i}"] for i in range(n)], [arrays[f"b{i}"] for i in range(n)],
            params=meta.get("params") or {},
            optimizer=Adam.from_state(meta["optimizer"], arrays),
            rng=decode_rng(meta["rng_state"]),
            updates=int(meta.get("updates", 0)),
            feature_scales=arrays.get("feature_scales"),
            metadata=meta.get("metadata"),
        )

    def copy(self) -> "FullyConnectedNetworkModel":
        meta, arrays = self.state()
        return FullyConnectedNetworkModel.from_state(meta, {k: v.copy() for k, v in arrays.items()})


class FullyConnectedNetworkClassifier(UpdatableEstimator[Any, dict[str, float]]):
    """ReLU layers of ``hidden_unit_counts`` and a softmax output, trained with Adam.

    ``update(model, x, y)`` shuffles the chunk with the model's own generator
    and takes one Adam step per ``batch_size`` examples; ``fit`` makes
    ``max_iterations`` passes of that over the data. ``dropout`` is applied
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

    def epochs(self) -> int:
        return self.max_iterations

    def start(self, data: Examples) -> FullyConnectedNetworkModel:
        """An untrained model for ``data``'s labels, standardised by one pass over it."""
        if len(data.labels) < 2:
            raise CadenceError(f"need at least two labels to train a classifier, got {data.labels}")
        mean, std, _ = statistics(data)
        rng = np.random.Generator(np.random.PCG64(self.random_seed))
        sizes = [int(mean.shape[0]), *self.hidden_unit_counts, len(data.labels)]
        weights, biases = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            limit = math.sqrt(6.0 / fan_in)  # He-uniform for ReLU
            weights.append(rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32))
            biases.append(np.zeros(fan_out, dtype=np.float32))
        weights[-1] *= 0.1  # start close to uniform probabilities
        optimizer = Adam(self.learning_rate)
        model = FullyConnectedNetworkModel(
            data.labels, mean, std, weights, biases, params=self.get_params(), optimizer=optimizer, rng=rng
        )
        optimizer.reset(model.parameters())
        return model

    def update(
        self,
        model: FullyConnectedNetworkModel,
        x: np.ndarray,
        y: Sequence[Any],
        *,
        on_event: EventHandler | None = None,
    ) -> FullyConnectedNetworkModel:
        """One pass of Adam steps over a chunk (in mini-batches of ``batch_size``);
        the model is updated in place and returned, its mean loss in ``last_loss``."""
        target = label_indices(model.labels, y)
        if not len(target):
            raise CadenceError("an update needs at least one example")
        z = model.standardise(np.asarray(x, dtype=np.float32))
        if not np.all(np.isfinite(z)):
            raise CadenceError("training features contain NaN or infinite values")
        order = model.rng.permutation(len(target))
        total_loss = 0.0
        n_batches = math.ceil(len(target) / self.batch_size)
        for i in range(n_batches):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            total_loss += self._step(model, z[idx], target[idx]) * idx.size
            emit(on_event, "update", i + 1, n_batches)
        model.updates += 1
        model.last_loss = total_loss / len(target)
        return model

    def _step(self, model: FullyConnectedNetworkModel, z: np.ndarray, y: np.ndarray) -> float:
        logits, acts, masks = model.forward(z, train=True)
        p = softmax(logits.astype(np.float64))
        n = len(y)
        loss = float(-np.log(np.maximum(p[np.arange(n), y], 1e-12)).mean())
        delta = p
        delta[np.arange(n), y] -= 1.0
        delta = (delta / n).astype(np.float32)
        grads: list[np.ndarray] = []
        for layer in range(len(model.weights) - 1, -1, -1):
            grads[:0] = [acts[layer].T @ delta + self.l2_penalty * model.weights[layer], delta.sum(0)]
            if layer > 0:
                delta = delta @ model.weights[layer].T
                # acts = relu(pre) * mask, so d acts / d pre = (acts > 0) * mask
                delta = delta * (acts[layer] > 0)
                mask = masks[layer - 1]
                if mask is not None:
                    delta = delta * mask
        new = model.optimizer.update(model.parameters(), grads)
        model.weights, model.biases = new[0::2], new[1::2]
        return loss

    def save(self, model: FullyConnectedNetworkModel, path: str | os.PathLike[str]) -> Path:
        return model.save(path)

    def load(self, path: str | os.PathLike[str]) -> FullyConnectedNetworkModel:
        model = FullyConnectedNetworkModel.read(path)
        if not isinstance(model, FullyConnectedNetworkModel):
            raise PersistenceError(f"{path}: holds a {type(model).__name__}, expected a network model")
        return model

    def __repr__(self) -> str:
        return f"FullyConnectedNetworkClassifier({self.get_params()})"
