"""The training loop: preprocess once, fit on cached features, stop early, checkpoint, resume.

:class:`Trainer` runs the whole job for a data set and an output path:

1. the :class:`~device.learn.cache.FeatureCache` extracts only clips it has not seen;
2. clips are split into training and validation by recording, stratified by label;
3. the network classifier starts untrained (``make_transformer``) and each
   epoch calls ``update`` on cached chunks (at most ``chunk_size`` features in
   memory), then measures training and validation loss/accuracy
   (:class:`ClassificationMetrics`) and reports an ``Event("train", …)``;
4. it stops when validation accuracy reaches ``target_accuracy`` or has not
   improved for ``patience`` epochs, keeping the best epoch's weights;
5. every ``checkpoint_every`` epochs a checkpoint (model + Adam state + epoch
   + history + RNG states + best model so far) is written atomically, the last
   ``keep_checkpoints`` kept; ``resume=True`` continues from the newest valid
   one (corrupt ones are skipped) and ends with the same model as an
   uninterrupted run;
6. the final model is published through :mod:`device.learn.registry`
   (previous version kept for rollback).

Logistic regression has no epochs: it is fitted with L-BFGS whose loss and
gradient are computed chunk by chunk over the cache, in one step.

``classifier="auto"`` (the default) picks logistic regression while the
median label has fewer than ``auto_network_min_clips`` clips and the network
from there on: with a few clips per label the network's validation hold-out
takes clips it needs to learn from (held out on the dev set it was 3 points
worse at 10 clips per label, 2 at 15, 1 at 20 and 1 point better at ~50;
docs/training.md, "Choosing a classifier"). Below the same size each training
clip also gets ``augment_copies`` augmented copies (:class:`AudioAugmenter`:
gain, colouring, speed, noise, cropping), extracted once into the feature
cache; validation and the reported metrics use the original clips only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device.components import (
    CadenceError,
    ClassificationMetrics,
    EventHandler,
    PersistenceError,
    StorageFullError,
    emit,
    load_state,
    save_state,
)

from ..storage import default_state_dir
from .cache import CacheReport, FeatureCache, fingerprint_of
from .classifiers import (
    FullyConnectedNetworkClassifier,
    FullyConnectedNetworkModel,
    LogisticRegressionClassifier,
    _decode_rng,
    _encode_rng,
    _json_safe,
    feature_statistics,
    model_from_state,
)
from .dataset import Dataset, describe_split, split_by_recording
from .registry import publish, remove_stale_temp_files

CHECKPOINT_KIND = "cadence.training_checkpoint"
CLASSIFIERS = ("auto", "network", "logistic")
AUTO_AUGMENT_COPIES = 8


class TrainingError(CadenceError):
    """Training cannot go on (too little data, settings changed under --resume, …)."""


@dataclasses.dataclass
class TrainingConfig:
    classifier: str = "auto"  # "network", "logistic", or "auto": logistic for few clips per label
    # "auto" picks the network once the median label has at least this many clips
    auto_network_min_clips: int = 30
    # augmented copies per training clip; None: AUTO_AUGMENT_COPIES below auto_network_min_clips, else 0
    augment_copies: int | None = None
    validation_split: float = 0.2
    target_accuracy: float | None = None
    max_epochs: int = 60
    patience: int = 10
    checkpoint_every: int = 5
    keep_checkpoints: int = 3
    chunk_size: int = 1024
    seed: int = 0
    # after early stopping, train once more on training + validation clips
    refit: bool = True
    # network
    hidden_unit_counts: tuple[int, ...] = (128,)
    batch_size: int = 32
    learning_rate: float = 3e-3
    dropout: float = 0.5
    network_l2: float = 1e-4
    # logistic regression
    l2_penalty: float = 1e-2
    max_iterations: int = 500
    convergence_threshold: float = 1e-6

    def validate(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise TrainingError(f"unknown classifier {self.classifier!r} (choose {', '.join(CLASSIFIERS)})")
        if self.augment_copies is not None and not 0 <= self.augment_copies <= 100:
            raise TrainingError(f"--augment must be between 0 and 100 copies, got {self.augment_copies}")
        if self.auto_network_min_clips < 1:
            raise TrainingError(f"auto_network_min_clips must be at least 1, got {self.auto_network_min_clips}")
        if not 0.0 <= self.validation_split < 1.0:
            raise TrainingError(f"--validation-split must be in [0, 1), got {self.validation_split}")
        if self.target_accuracy is not None and not 0.0 < self.target_accuracy <= 1.0:
            raise TrainingError(f"--target-accuracy must be in (0, 1], got {self.target_accuracy}")
        for name in ("max_epochs", "patience", "checkpoint_every", "keep_checkpoints", "chunk_size", "batch_size"):
            if getattr(self, name) < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise TrainingError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not self.learning_rate > 0:
            raise TrainingError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.l2_penalty < 0 or self.network_l2 < 0:
            raise TrainingError(f"--l2-penalty must be at least 0, got {min(self.l2_penalty, self.network_l2)}")
        if not self.hidden_unit_counts or any(int(h) < 1 for h in self.hidden_unit_counts):
            raise TrainingError(f"--hidden-units must be positive integers, got {self.hidden_unit_counts}")

    def resolved(self, names: Sequence[str]) -> tuple["TrainingConfig", str | None]:
        """The config with ``classifier="auto"`` and ``augment_copies=None``
        replaced by the choices for clips labelled ``names`` (training +
        validation), and why they were made."""
        if self.classifier != "auto" and self.augment_copies is not None:
            return self, None
        counts: dict[str, int] = {}
        for name in names:
            counts[str(name)] = counts.get(str(name), 0) + 1
        median = float(np.median(list(counts.values()))) if counts else 0.0
        few = median < self.auto_network_min_clips
        relation = "fewer than" if few else "at least"
        clips = "clip" if median == 1 else "clips"
        why = f"the median label has {median:g} {clips}, {relation} {self.auto_network_min_clips}"
        changes: dict[str, Any] = {}
        said = []
        if self.classifier == "auto":
            changes["classifier"] = "logistic" if few else "network"
            said.append(f"classifier auto → {changes['classifier']}")
        if self.augment_copies is None:
            changes["augment_copies"] = AUTO_AUGMENT_COPIES if few else 0
            said.append(f"{changes['augment_copies']} augmented copies per training clip")
        return dataclasses.replace(self, **changes), f"{', '.join(said)}: {why}"

    def estimator(self) -> FullyConnectedNetworkClassifier | LogisticRegressionClassifier:
        if self.classifier == "auto":
            raise TrainingError("classifier 'auto' must be resolved for the data first (TrainingConfig.resolved)")
        if self.classifier == "logistic":
            return LogisticRegressionClassifier(self.l2_penalty, self.max_iterations, self.convergence_threshold)
        return FullyConnectedNetworkClassifier(
            self.hidden_unit_counts,
            self.batch_size,
            self.learning_rate,
            self.max_epochs,
            self.dropout,
            self.seed,
            l2_penalty=self.network_l2,
        )

    def path_settings(self) -> dict[str, Any]:
        """Settings that decide the training path (must match to resume)."""
        keys = ["classifier", "validation_split", "chunk_size", "seed", "refit", "augment_copies"]
        if self.classifier == "network":
            keys += ["hidden_unit_counts", "batch_size", "learning_rate", "dropout", "network_l2"]
        else:
            keys += ["l2_penalty", "max_iterations", "convergence_threshold"]
        settings = {k: _json_safe(getattr(self, k)) for k in keys}
        if self.augment_copies:
            from device.audio.augmentation import AudioAugmenter

            settings["augmenter"] = AudioAugmenter().key  # other copies are other training data
        return settings


@dataclasses.dataclass
class TrainingResult:
    model: Any
    model_path: Path
    history: list[dict[str, Any]]
    validation: ClassificationMetrics | None
    report: dict[str, Any]


def checkpoint_dir_for(state_dir: Path, out: Path) -> Path:
    key = hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:16]
    return Path(state_dir) / "checkpoints" / key


class Trainer:
    """Runs preprocessing, training, checkpointing and publishing for one model path."""

    def __init__(
        self,
        feature_print: Any,
        config: TrainingConfig | None = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        on_event: EventHandler | None = None,
        shard_size: int | None = None,
        keep_versions: int = 3,
        jobs: int = 1,
    ) -> None:
        self.feature_print = feature_print
        self.config = config or TrainingConfig()
        self.config.validate()
        # ``config`` with "auto" settings decided for the data of the current run (see fit_cached)
        self.resolved_config = self.config
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self.on_event = on_event
        self.shard_size = shard_size
        self.keep_versions = keep_versions
        self.jobs = max(1, int(jobs))
        self.notes: list[str] = []
        self._copies: dict[str, list[str]] = {}  # clip key -> augmented copies' keys (see augment)
        self.warnings: list[str] = []

    # -- public ----------------------------------------------------------------
    def train(self, data: Dataset, out: str | os.PathLike[str], *, resume: bool = False) -> TrainingResult:
        """Preprocess, fit and publish; a full disk stops the run with the model untouched."""
        out = Path(out)
        try:
            return self._train(data, out, resume)
        except StorageFullError as exc:
            previous = f"{out} was not changed" if out.exists() else "no model was written"
            raise StorageFullError(
                f"{exc} — training stopped and {previous}; free some space and run again (--resume continues)"
            ) from exc

    def _train(self, data: Dataset, out: Path, resume: bool) -> TrainingResult:
        started = time.perf_counter()
        self.config.validate()  # it may have been changed since __init__
        self.notes = []
        cache = FeatureCache(self.state_dir / "feature-cache", self.feature_print, shard_size=self.shard_size)
        with cache:
            cache_report, hashes = cache.update(data.clips, on_event=self.on_event, jobs=self.jobs)
            skipped = list(data.problems) + cache_report.skipped
            usable, self.warnings = resolve_duplicates([c for c in data.clips if c.path in hashes], hashes)
            train_clips, val_clips = split_by_recording(usable, self.config.validation_split, self.config.seed)
            labels = sorted({c.label for c in usable})
            if len(labels) < 2:
                raise TrainingError(f"need clips of at least two labels, have {labels or 'none'} usable")
            train_keys = [hashes[c.path] for c in train_clips]
            train_names = np.array([c.label for c in train_clips])
            val_keys = [hashes[c.path] for c in val_clips]
            val_names = np.array([c.label for c in val_clips])
            if not train_keys:
                raise TrainingError("no clips left for training after the validation split")
            validated = {c.label for c in val_clips}
            if val_clips and len(validated) < len(labels) / 2:
                self.warnings.append(
                    f"the validation clips cover only {len(validated)} of {len(labels)} labels (a label with one "
                    "recording stays in training), so the validation figures say little; more recordings per label help"
                )
            # copies of the validation clips too: the final refit trains on them
            to_copy = usable if self.config.refit else train_clips
            copies, augment_report = self.augment(cache, to_copy, [c.label for c in usable], hashes)
            self.warnings += augment_report.skipped  # a failed copy: its clip still trains
            fitted = self.fit_cached(
                cache, labels, train_keys, train_names, val_keys, val_names,
                checkpoint_dir=checkpoint_dir_for(self.state_dir, out), resume=resume, copies=copies,
            )
            model, history, stop_reason, run_id, epochs, validation, training_metrics = fitted
            ckpt_dir = checkpoint_dir_for(self.state_dir, out)
        report = self._report(
            data, out, model, history, validation, training_metrics, cache_report, skipped, stop_reason,
            train_clips, val_clips, epochs, time.perf_counter() - started,
        )
        report["augmentation"] = augment_report.to_dict() | {"copies_per_clip": self.resolved_config.augment_copies}
        model.metadata.update(
            {
                "feature_print_fingerprint": cache.fingerprint,
                "feature_print": _describe_feature_print(self.feature_print),
                "labels": labels,
                "metrics": {
                    "validation": validation.to_dict() if validation else None,
                    "training": {"accuracy": training_metrics.accuracy, "count": training_metrics.count},
                },
                "training": {
                    "run_id": run_id,
                    "epochs": epochs,
                    "stop_reason": stop_reason,
                    "config": _json_safe(dataclasses.asdict(self.resolved_config)),
                    "clips": {"train": len(train_keys), "validation": len(val_keys)},
                    "data": str(data.source),
                },
            }
        )
        model.metadata.pop("last_update_loss", None)
        model.metadata["created"] = _now()
        path = publish(model, out, keep=self.keep_versions)
        report["model"] = str(path)
        report["created"] = model.metadata["created"]
        emit(self.on_event, "publish", 1, 1, path=str(path))
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        return TrainingResult(model, path, history, validation, report)

    def augment(
        self, cache: FeatureCache, clips: Sequence[Any], names: Sequence[str], hashes: dict[Path, str]
    ) -> tuple[dict[str, list[str]], CacheReport]:
        """Cache the augmented copies ``clips`` get under this config for these
        ``names`` (none for many clips per label); returns each clip key's copies."""
        config, _ = self.config.resolved(names)
        if not config.augment_copies:
            return {}, CacheReport()
        from device.audio.augmentation import AudioAugmenter

        report, copies = cache.augment(
            [(c, hashes[c.path]) for c in clips], AudioAugmenter(), config.augment_copies,
            on_event=self.on_event, jobs=self.jobs,
        )
        return copies, report

    def _with_copies(self, keys: Sequence[str], names: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Training keys and labels followed by those of their augmented copies."""
        n = int(self.resolved_config.augment_copies or 0)
        extra = [(k, name) for key, name in zip(keys, names) for k in self._copies.get(key, [])[:n]]
        if not extra:
            return list(keys), names
        return list(keys) + [k for k, _ in extra], np.concatenate([names, np.array([name for _, name in extra])])

    def fit_cached(
        self,
        cache: FeatureCache,
        labels: list[str],
        train_keys: list[str],
        train_names: np.ndarray,
        val_keys: list[str],
        val_names: np.ndarray,
        *,
        checkpoint_dir: Path | None = None,
        resume: bool = False,
        copies: dict[str, list[str]] | None = None,
    ) -> tuple[Any, list[dict[str, Any]], str, str, int, ClassificationMetrics | None, ClassificationMetrics]:
        """Fit on features already in ``cache`` (no extraction): returns (model,
        history, stop reason, run id, epochs, validation metrics, training metrics).
        ``classifier="auto"`` is resolved here, from these clips' labels;
        ``copies`` (from :meth:`augment`) maps a clip's key to its augmented
        copies' keys, of which the first ``augment_copies`` join its training."""
        self.resolved_config, choice = self.config.resolved(list(train_names) + list(val_names))
        if choice and choice not in self.notes:
            self.notes.append(choice)
        self._copies = copies or {}
        signature = self._signature(cache.fingerprint, train_keys, train_names, val_keys, val_names)
        if self.resolved_config.classifier == "logistic":
            model, history, stop_reason, run_id, epochs = self._fit_logistic(
                cache, labels, train_keys, train_names, val_keys, val_names
            )
        else:
            model, history, stop_reason, run_id, epochs = self._fit_network(
                cache, labels, train_keys, train_names, val_keys, val_names, signature, checkpoint_dir, resume
            )
        validation = self._metrics(cache, model, val_keys, val_names, labels)[0] if val_keys else None
        if self.resolved_config.refit and val_keys:
            # the validation clips chose the epoch count; now learn from them too
            all_keys = list(train_keys) + list(val_keys)
            all_names = np.concatenate([train_names, val_names])
            model = self._refit(cache, labels, all_keys, all_names, model)
            train_keys, train_names = all_keys, all_names
        # bare int8 vectors from this feature print are dequantised as in the cache
        model.feature_scales, model.feature_offsets = cache.scales, cache.offsets
        model.input_space = "float"
        training_metrics = self._metrics(cache, model, train_keys, train_names, labels)[0]
        return model, history, stop_reason, run_id, epochs, validation, training_metrics

    def _refit(
        self, cache: FeatureCache, labels: list[str], keys: list[str], names: np.ndarray, selected: Any
    ) -> Any:
        """Train again on training + validation clips with what validation chose
        (the best epoch count for the network). Deterministic, so a resumed run
        refits to the same model."""
        clips = len(keys)
        keys, names = self._with_copies(keys, names)
        copies = len(keys) - clips
        cfg = self.resolved_config
        est = cfg.estimator()
        if isinstance(est, LogisticRegressionClassifier):
            index = {label: i for i, label in enumerate(labels)}
            y_all = np.array([index[n] for n in names], dtype=np.int64)

            def chunks():
                for x, pos in cache.iter_chunks(keys, cfg.chunk_size):
                    yield x, y_all[pos]

            model = est.fit_chunks(chunks, labels)
            model.metadata["refit"] = {"clips": clips, "augmented_copies": copies}
            return model
        assert isinstance(est, FullyConnectedNetworkClassifier)
        epochs = int(selected.metadata.get("best_epoch") or 1)
        stats = feature_statistics(x for x, _ in cache.iter_chunks(keys, cfg.chunk_size))
        model = est.make_transformer(labels, statistics=stats)
        order_rng = np.random.default_rng(cfg.seed + 1)
        for epoch in range(epochs):
            for x, pos in cache.iter_chunks(keys, cfg.chunk_size, rng=order_rng):
                est.update_arrays(model, x, names[pos])
            emit(self.on_event, "refit", epoch + 1, epochs)
        model.metadata["best_epoch"] = selected.metadata.get("best_epoch")
        model.metadata["refit"] = {"epochs": epochs, "clips": clips, "augmented_copies": copies}
        model.metadata.pop("last_update_loss", None)
        return model

    # -- network -----------------------------------------------------------------
    def _fit_network(
        self,
        cache: FeatureCache,
        labels: list[str],
        train_keys: list[str],
        train_names: np.ndarray,
        val_keys: list[str],
        val_names: np.ndarray,
        signature: str,
        ckpt_dir: Path | None,
        resume: bool,
    ) -> tuple[FullyConnectedNetworkModel, list[dict[str, Any]], str, str, int]:
        cfg = self.resolved_config
        est = cfg.estimator()
        assert isinstance(est, FullyConnectedNetworkClassifier)
        fit_keys, fit_names = self._with_copies(train_keys, train_names)
        state = self._load_checkpoint(ckpt_dir, signature) if resume and ckpt_dir is not None else None
        if resume and state is None:
            self.notes.append("no usable checkpoint found, training from the start")
        if state is not None:
            model, best, order_rng, epoch, history, best_epoch, since_best, run_id, finished, stop_reason = state
            self.notes.append(f"resumed from the checkpoint after epoch {epoch}")
        else:
            stats = feature_statistics(x for x, _ in cache.iter_chunks(fit_keys, cfg.chunk_size))
            model = est.make_transformer(labels, statistics=stats)
            best, order_rng = None, np.random.default_rng(cfg.seed)
            epoch, history, best_epoch, since_best = 0, [], 0, 0
            run_id, finished, stop_reason = uuid.uuid4().hex, False, ""
        while not finished:
            losses, count = 0.0, 0
            for x, pos in cache.iter_chunks(fit_keys, cfg.chunk_size, rng=order_rng):
                est.update_arrays(model, x, fit_names[pos])
                losses += model.metadata["last_update_loss"] * len(pos)
                count += len(pos)
            epoch += 1
            train_m, train_loss = self._metrics(cache, model, train_keys, train_names, labels)
            row: dict[str, Any] = {
                "epoch": epoch,
                "loss": train_loss,
                "accuracy": train_m.accuracy,
                "update_loss": losses / max(count, 1),
            }
            if val_keys:
                val_m, val_loss = self._metrics(cache, model, val_keys, val_names, labels)
                row.update({"validation_loss": val_loss, "validation_accuracy": val_m.accuracy})
                score = (val_m.accuracy, -val_loss)
            else:
                score = (train_m.accuracy, -train_loss)
            history.append(_json_safe(row))
            best_score = _score(history[best_epoch - 1], bool(val_keys)) if best is not None else None
            if best is None or best_score is None or score > best_score:
                best, best_epoch, since_best = model.copy(), epoch, 0
            else:
                since_best += 1
            emit(self.on_event, "train", epoch, cfg.max_epochs, **{k: v for k, v in row.items() if k != "epoch"})
            reached = cfg.target_accuracy is not None and score[0] >= cfg.target_accuracy
            if reached:
                finished, stop_reason = True, f"target accuracy {cfg.target_accuracy} reached"
            elif since_best >= cfg.patience:
                finished, stop_reason = True, f"no improvement for {cfg.patience} epochs"
            elif epoch >= cfg.max_epochs:
                finished, stop_reason = True, f"maximum of {cfg.max_epochs} epochs"
            if ckpt_dir is not None and (finished or epoch % cfg.checkpoint_every == 0):
                self._save_checkpoint(
                    ckpt_dir, signature, model, best, order_rng, epoch, history, best_epoch, since_best,
                    run_id, finished, stop_reason,
                )
        assert best is not None
        best.metadata["best_epoch"] = best_epoch
        return best, history, stop_reason, run_id, epoch

    # -- checkpoints ---------------------------------------------------------------
    def _save_checkpoint(
        self,
        ckpt_dir: Path,
        signature: str,
        model: FullyConnectedNetworkModel,
        best: FullyConnectedNetworkModel | None,
        order_rng: np.random.Generator,
        epoch: int,
        history: list[dict[str, Any]],
        best_epoch: int,
        since_best: int,
        run_id: str,
        finished: bool,
        stop_reason: str,
    ) -> Path:
        meta_m, arrays_m = model.state()
        arrays = {f"model.{k}": v for k, v in arrays_m.items()}
        meta: dict[str, Any] = {
            "signature": signature,
            "epoch": epoch,
            "history": history,
            "best_epoch": best_epoch,
            "since_best": since_best,
            "run_id": run_id,
            "finished": finished,
            "stop_reason": stop_reason,
            "order_rng": _encode_rng(order_rng.bit_generator.state),
            "model": meta_m,
        }
        if best is not None:
            meta_b, arrays_b = best.state()
            meta["best"] = meta_b
            arrays.update({f"best.{k}": v for k, v in arrays_b.items()})
        path = save_state(ckpt_dir / f"checkpoint-{epoch:06d}.cadence", CHECKPOINT_KIND, meta, arrays)
        emit(self.on_event, "checkpoint", epoch, self.resolved_config.max_epochs, path=str(path))
        existing = sorted(ckpt_dir.glob("checkpoint-*.cadence"))
        for old in existing[: max(0, len(existing) - self.resolved_config.keep_checkpoints)]:
            try:
                old.unlink()
            except OSError:
                pass
        return path

    def _load_checkpoint(self, ckpt_dir: Path, signature: str) -> tuple | None:
        if not ckpt_dir.is_dir():
            return None
        remove_stale_temp_files(ckpt_dir)
        for path in sorted(ckpt_dir.glob("checkpoint-*.cadence"), reverse=True):
            try:
                meta, arrays = load_state(path, kind=CHECKPOINT_KIND)
                if meta.get("signature") != signature:
                    raise TrainingError(
                        f"{path}: the data or training settings changed since this checkpoint; "
                        "train without --resume to start over"
                    )
                model_meta = dict(meta["model"], kind=FullyConnectedNetworkModel.kind)
                model = model_from_state(model_meta, _prefixed(arrays, "model."), str(path))
                best = None
                if "best" in meta:
                    best = model_from_state(dict(meta["best"], kind=FullyConnectedNetworkModel.kind), _prefixed(arrays, "best."), str(path))
                order_rng = np.random.default_rng()
                order_rng.bit_generator.state = _decode_rng(meta["order_rng"])
                state = (
                    model, best, order_rng, int(meta["epoch"]), list(meta["history"]), int(meta["best_epoch"]),
                    int(meta["since_best"]), str(meta["run_id"]), bool(meta["finished"]), str(meta["stop_reason"]),
                )
            except (PersistenceError, KeyError, ValueError, TypeError, AttributeError, IndexError, OverflowError) as exc:
                self.notes.append(f"skipped checkpoint {path.name}: {exc}")
                continue
            return state
        return None

    # -- logistic -------------------------------------------------------------------
    def _fit_logistic(
        self,
        cache: FeatureCache,
        labels: list[str],
        train_keys: list[str],
        train_names: np.ndarray,
        val_keys: list[str],
        val_names: np.ndarray,
    ) -> tuple[Any, list[dict[str, Any]], str, str, int]:
        cfg = self.resolved_config
        est = cfg.estimator()
        assert isinstance(est, LogisticRegressionClassifier)
        index = {label: i for i, label in enumerate(labels)}
        fit_keys, fit_names = self._with_copies(train_keys, train_names)
        y_all = np.array([index[n] for n in fit_names], dtype=np.int64)

        def chunks():
            for x, pos in cache.iter_chunks(fit_keys, cfg.chunk_size):
                yield x, y_all[pos]

        model = est.fit_chunks(chunks, labels, on_event=self.on_event)
        train_m, train_loss = self._metrics(cache, model, train_keys, train_names, labels)
        row: dict[str, Any] = {"epoch": 1, "loss": train_loss, "accuracy": train_m.accuracy}
        if val_keys:
            val_m, val_loss = self._metrics(cache, model, val_keys, val_names, labels)
            row.update({"validation_loss": val_loss, "validation_accuracy": val_m.accuracy})
        emit(self.on_event, "train", 1, 1, **{k: v for k, v in row.items() if k != "epoch"})
        return model, [_json_safe(row)], "L-BFGS converged or reached max iterations", uuid.uuid4().hex, 1

    # -- helpers --------------------------------------------------------------------------
    def _metrics(
        self, cache: FeatureCache, model: Any, keys: Sequence[str], names: np.ndarray, labels: list[str]
    ) -> tuple[ClassificationMetrics, float]:
        metrics = ClassificationMetrics(labels)
        index = {label: i for i, label in enumerate(model.labels)}
        loss, n = 0.0, 0
        for x, pos in cache.iter_chunks(keys, self.resolved_config.chunk_size):
            p = model.predict_proba(x)
            truth = names[pos]
            metrics.update(truth.tolist(), [model.labels[i] for i in np.argmax(p, axis=1)])
            idx = np.array([index.get(t, -1) for t in truth])
            picked = np.where(idx >= 0, p[np.arange(len(idx)), np.maximum(idx, 0)], 0.0)
            loss += float(-np.log(np.maximum(picked, 1e-12)).sum())
            n += len(pos)
        return metrics, loss / max(n, 1)

    def _signature(
        self, fingerprint: str, train_keys: list[str], train_names: np.ndarray, val_keys: list[str], val_names: np.ndarray
    ) -> str:
        digest = hashlib.sha256()
        digest.update(json.dumps({"fingerprint": fingerprint, "settings": self.resolved_config.path_settings()}, sort_keys=True).encode())
        for part, keys, names in (("train", train_keys, train_names), ("validation", val_keys, val_names)):
            digest.update(f"|{part}:{len(keys)}|".encode())
            for key, name in zip(keys, names):  # streamed: no copy of the whole key list
                digest.update(f"{key}={name};".encode())
        return digest.hexdigest()

    def _report(
        self, data, out, model, history, validation, training_metrics, cache_report: CacheReport, skipped,
        stop_reason, train_clips, val_clips, epochs, seconds,
    ) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        return _json_safe(
            {
                "data": str(data.source),
                "model": str(out),
                "classifier": self.resolved_config.classifier,
                "classifier_requested": self.config.classifier,
                "labels": model.labels,
                "clips": {"total": len(data.clips), "train": len(train_clips), "validation": len(val_clips)},
                "split": describe_split(train_clips, val_clips),
                "skipped": skipped,
                "warnings": self.warnings,
                "feature_cache": cache_report.to_dict(),
                "epochs": epochs,
                "best_epoch": model.metadata.get("best_epoch"),
                "refit": model.metadata.get("refit"),
                "stop_reason": stop_reason,
                "history": history,
                "validation": validation.to_dict() if validation else None,
                "training_accuracy": training_metrics.accuracy,
                "settings": dataclasses.asdict(self.resolved_config),
                "notes": self.notes,
                "seconds": round(seconds, 3),
            }
        )


def resolve_duplicates(clips: Sequence[Any], hashes: dict[Path, str]) -> tuple[list[Any], list[str]]:
    """Identical audio (same content hash) in several files: under one label it is
    one recording (so a copy never validates its own original); under different
    labels it is label noise, named in a warning and kept under each label (the
    model learns that sound as either; left out, it would not know the sound at
    all, which measured no better on the dev set's ten such pairs)."""
    seen: dict[str, list[Any]] = {}
    for c in clips:
        seen.setdefault(hashes[c.path], []).append(c)
    warnings: list[str] = []
    recording: dict[Path, str] = {}
    for group in seen.values():
        if len(group) < 2:
            continue
        first: dict[str, str] = {}  # per label, the recording of its first copy
        for c in group:
            recording[c.path] = first.setdefault(c.label, c.recording)
        if len(first) > 1:
            names = ", ".join(f"{c.label}/{c.path.name}" for c in group)
            warnings.append(f"identical audio under different labels (check them; the model cannot tell them apart): {names}")
    kept = [dataclasses.replace(c, recording=recording[c.path]) if c.path in recording else c for c in clips]
    return kept, warnings


def _score(row: dict[str, Any], has_val: bool) -> tuple[float, float]:
    if has_val:
        return (float(row["validation_accuracy"]), -float(row["validation_loss"]))
    return (float(row["accuracy"]), -float(row["loss"]))


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def _describe_feature_print(fp: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"class": type(fp).__name__, "fingerprint": fingerprint_of(fp)}
    dim = getattr(fp, "dimension", None)
    if isinstance(dim, int):
        info["dimension"] = dim
    return info


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
