"""The training loop: extract windows once, fit on the cache, stop early, checkpoint, resume.

:class:`Trainer` runs the whole job for a data set and an output path, over
any :class:`~device.components.Featurizer` (the sound feature print today,
the pose exercise features next):

1. the :class:`~device.learn.cache.FeatureCache` extracts the windows of the
   clips it has not seen (a clip's examples are the windows of the
   featurizer's stream over the file: what the device classifies live);
2. clips are split into training and validation by recording, stratified by
   label (a clip's windows stay together);
3. the estimator is fitted through the component protocol only: an
   :class:`~device.components.UpdatableEstimator` (the network) starts
   untrained and each epoch ``update`` s it on shuffled chunks of windows (at
   most ``chunk_size`` in memory), then training and validation are measured
   and an ``Event("train", …)`` is reported; any other
   :class:`~device.components.Estimator` (logistic regression) is ``fit``
   once, reading the chunks as often as it needs;
4. the network stops when validation accuracy reaches ``target_accuracy`` or
   has not improved for ``patience`` epochs, keeping the best epoch's model;
5. every ``checkpoint_every`` epochs a checkpoint (the model, which carries
   its optimizer state, the best model so far, epoch, history, chunk-order
   generator) is written atomically, the last ``keep_checkpoints`` kept;
   ``resume=True`` continues from the newest valid one (corrupt ones are
   skipped) and ends with the same model as an uninterrupted run;
   ``resume="auto"`` (what ``cadence retrain`` uses) does so when the
   interrupted run was of the same data and settings, else starts over;
6. a featurizer with a ``model_metadata(chunks)`` hook (the exercise
   features; sound has none) is given the final training windows, chunk by
   chunk, and what it returns joins the model's metadata (the exercise open
   set);
7. the final model is published through :mod:`device.learn.registry`
   (previous version kept for rollback).

Metrics: the loss is per window; accuracy is per clip, a clip's label being
the highest mean window probability over its windows
(:class:`~device.learn.model.ClipVote`, as ``cadence evaluate`` classifies a
file). Early stopping uses these clip figures.

``classifier="auto"`` (the default) picks logistic regression with
``AUTO_AUGMENT_COPIES`` augmented copies per training clip (made by the
featurizer's ``augmenter()`` if it has one — sound's is
:class:`AudioAugmenter` — extracted once into the feature cache; validation
and the reported metrics use the original clips only) while the median label
has fewer than ``auto_network_min_clips`` clips (clips, not windows), and the
network without copies from there on. Trained on windows, logistic
regression with copies was level with or better than the network at every
size the dev set allows (10, 30 and ~70 clips per label; docs/training.md,
"Choosing a classifier"), so the threshold (100) lies beyond what was
measured: the network is kept for large data sets, where copies cost most
and epochs with checkpoints matter.
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
from typing import Any, Literal

import numpy as np

from device.components import (
    CadenceError,
    ClassificationMetrics,
    Estimator,
    EventHandler,
    Featurizer,
    StorageFullError,
    UpdatableEstimator,
    emit,
)

from ..storage import default_state_dir
from .cache import CacheReport, FeatureCache, copy_key
from .config import AUTO_AUGMENT_COPIES, CLASSIFIERS, TrainingConfig, TrainingError
from .inputs import label_indices
from .labels import labels_problem
from .model import ClassifierModel, ClipVote, json_safe, now
from .dataset import Dataset, describe_split, split_by_recording, validation_coverage
from .negatives import choose_negatives, negatives_note, read_negatives
from .openset import BACKGROUND, NEGATIVES, NEGATIVES_THRESHOLD, OTHER, RESERVED_PREFIX, fit_reject_option, reserved
from .registry import check_target, publish
from .checkpoint import Progress, checkpoint_dir_for, clear_checkpoints, read_checkpoint, write_checkpoint

# True: continue from the newest checkpoint (one of other data or settings is refused);
# "auto": continue when there is one of the same data and settings, else start over
Resume = bool | Literal["auto"]



@dataclasses.dataclass
class Split:
    """Which cached clips train and which validate, with their labels and recordings."""

    labels: list[str]
    train_keys: list[str]
    train_names: np.ndarray
    val_keys: list[str]
    val_names: np.ndarray
    # each clip's recording (the reject option's held-out folds keep a recording together); empty: one per clip
    train_groups: list[str] = dataclasses.field(default_factory=list)
    val_groups: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, train: Sequence[Any], validation: Sequence[Any], hashes: dict[Path, str]) -> "Split":
        """From clips (with ``path``, ``label`` and ``group``) and their content hashes."""
        return cls(
            sorted({c.label for c in [*train, *validation]}),
            [hashes[c.path] for c in train], np.array([c.label for c in train]),
            [hashes[c.path] for c in validation], np.array([c.label for c in validation]),
            [c.group for c in train], [c.group for c in validation],
        )

    def groups(self, part: str) -> list[str]:
        keys, groups = (self.train_keys, self.train_groups) if part == "train" else (self.val_keys, self.val_groups)
        return list(groups) if len(groups) == len(keys) else list(keys)


@dataclasses.dataclass
class Fitted:
    """What :meth:`Trainer.fit_cached` returns."""

    model: ClassifierModel
    history: list[dict[str, Any]]
    stop_reason: str
    run_id: str
    epochs: int
    validation: ClassificationMetrics | None
    training: ClassificationMetrics
    reject: dict[str, Any] | None = None  # the reject option's fit report (None: not fitted)


@dataclasses.dataclass
class TrainingResult:
    model: Any
    model_path: Path
    history: list[dict[str, Any]]
    validation: ClassificationMetrics | None
    report: dict[str, Any]


class Trainer:
    """Runs extraction, training, checkpointing and publishing for one model path."""

    def __init__(
        self,
        featurizer: Featurizer,
        config: TrainingConfig | None = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        on_event: EventHandler | None = None,
        shard_size: int | None = None,
        keep_versions: int = 3,
        jobs: int = 1,
    ) -> None:
        self.featurizer = featurizer
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
        # content hashes never used as shipped negatives (an evaluation's held-out clips)
        self.exclude_negatives: set[str] = set()
        self.negatives: dict[str, Any] | None = None  # what the shipped negatives did in the last fit

    # -- public ----------------------------------------------------------------
    def train(self, data: Dataset, out: str | os.PathLike[str], *, resume: Resume = False) -> TrainingResult:
        """Extract, fit and publish; a full disk stops the run with the model untouched."""
        out = Path(out)
        try:
            return self._train(data, out, resume)
        except StorageFullError as exc:
            previous = f"{out} was not changed" if out.exists() else "no model was written"
            # `cadence retrain` trains with resume="auto": running it again continues by itself
            again = "run again: it continues from its last checkpoint" if resume == "auto" else \
                "run again (--resume continues)"
            raise StorageFullError(f"{exc} — training stopped and {previous}; free some space and {again}") from exc

    def _train(self, data: Dataset, out: Path, resume: Resume) -> TrainingResult:
        started = time.perf_counter()
        self.config.validate()  # it may have been changed since __init__
        self.notes = []
        aside = check_target(out)  # a path that cannot take a model is refused before any work
        if aside:
            self.notes.append(aside)
        taken = sorted({c.label for c in data.clips if reserved(c.label)})
        if taken:  # before any extraction: said at once
            raise TrainingError(
                f"label {taken[0]!r}: labels starting with '{RESERVED_PREFIX}' are the model's own "
                f"('{OTHER}' means not a taught sound); rename that folder"
            )
        problem = labels_problem(sorted({c.label for c in data.clips}))
        if problem:
            raise TrainingError(f"{problem}; rename that folder")
        ckpt_dir = checkpoint_dir_for(self.state_dir, out)
        with FeatureCache(self.state_dir / "feature-cache", self.featurizer, shard_size=self.shard_size) as cache:
            cache_report, hashes = cache.update(data.clips, on_event=self.on_event, jobs=self.jobs)
            self.notes += cache_report.notes
            skipped = list(data.problems) + cache_report.skipped
            usable, self.warnings = resolve_duplicates([c for c in data.clips if c.path in hashes], hashes)
            lost = sorted({c.label for c in data.clips} - {c.label for c in usable})
            if lost and not self.config.allow_label_loss:
                # the why, here: nothing is printed above when training stops (retrain shows this line alone)
                lost_paths = tuple(f"{c.path}:" for c in data.clips if c.label in lost)
                why = [s for s in skipped if s.startswith(lost_paths)]
                said = (f"{why[0]}{f'; {len(why) - 1} more skipped' if len(why) > 1 else ''}" if why
                        else "see the skipped files above")
                raise TrainingError(
                    f"no usable clip of {', '.join(lost)} ({said}); the model would not know "
                    f"{'it' if len(lost) == 1 else 'them'} — add clips it can read, or train without "
                    f"{'it' if len(lost) == 1 else 'them'} with --allow-label-loss"
                )
            if lost:
                self.warnings.append(f"left out, no usable clip: {', '.join(lost)} (--allow-label-loss)")
            train_clips, val_clips = split_by_recording(usable, self.config.validation_split, self.config.seed)
            split = Split.of(train_clips, val_clips, hashes)
            if len(split.labels) < 2:
                raise TrainingError(f"need clips of at least two labels, have {split.labels or 'none'} usable")
            if not split.train_keys:
                raise TrainingError("no clips left for training after the validation split")
            warning, note = validation_coverage(usable, val_clips)
            self.warnings += [warning] if warning else []
            self.notes += [note] if note else []
            # copies of the validation clips too: the final refit trains on them
            to_copy = usable if self.config.refit else train_clips
            copies, augment_report = self.augment(cache, to_copy, [c.label for c in usable], hashes)
            self.warnings += augment_report.skipped  # a failed copy: its clip still trains
            fitted = self.fit_cached(cache, split, checkpoint_dir=ckpt_dir, resume=resume, copies=copies)
        model = fitted.model
        report = self._report(data, out, fitted, cache_report, skipped, train_clips, val_clips, time.perf_counter() - started)
        report["augmentation"] = augment_report.to_dict() | {"copies_per_clip": self.resolved_config.augment_copies}
        report["reject_option"] = fitted.reject
        report["shipped_negatives"] = self.negatives
        model.metadata.update(
            {
                "feature_print_fingerprint": cache.fingerprint,
                "feature_print": {
                    "class": type(self.featurizer).__name__, "fingerprint": cache.fingerprint, "dimension": cache.dimension,
                },
                "labels": model.taught_labels,
                "reject_option": fitted.reject,
                "metrics": {
                    "validation": fitted.validation.to_dict() if fitted.validation else None,
                    "training": {"accuracy": fitted.training.accuracy, "count": fitted.training.count},
                },
                "training": {
                    "run_id": fitted.run_id,
                    "epochs": fitted.epochs,
                    "stop_reason": fitted.stop_reason,
                    "config": json_safe(dataclasses.asdict(self.resolved_config)),
                    "clips": {"train": len(split.train_keys), "validation": len(split.val_keys)},
                    "data": str(data.source),
                },
                "created": now(),
            }
        )
        path = publish(model, out, keep=self.keep_versions)
        report["model"] = str(path)
        report["created"] = model.metadata["created"]
        emit(self.on_event, "publish", 1, 1, path=str(path))
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        return TrainingResult(model, path, fitted.history, fitted.validation, report)

    def augment(
        self, cache: FeatureCache, clips: Sequence[Any], names: Sequence[str], hashes: dict[Path, str]
    ) -> tuple[dict[str, list[str]], CacheReport]:
        """Cache the augmented copies ``clips`` get under this config for these
        ``names`` (none for many clips per label); returns each clip key's copies."""
        config, _ = self.config.resolved(names)
        augmenter = self._augmenter()
        if not config.augment_copies or augmenter is None:
            return {}, CacheReport()
        report, copies = cache.augment(
            [(c, hashes[c.path]) for c in clips], augmenter, config.augment_copies,
            on_event=self.on_event, jobs=self.jobs,
        )
        return copies, report

    def _augmenter(self) -> Any:
        """The featurizer's augmenter (``featurizer.augmenter()``: sound has one), or None."""
        make = getattr(self.featurizer, "augmenter", None)
        return make() if callable(make) else None

    def _copy_rows(self, keys: Sequence[str]) -> list[tuple[int, str]]:
        """(position in ``keys`` of the source clip, copy key) of the augmented copies that train."""
        n = int(self.resolved_config.augment_copies or 0)
        return [(i, k) for i, key in enumerate(keys) for k in self._copies.get(key, [])[:n]]

    def _with_copies(self, keys: Sequence[str], names: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Training keys and labels followed by those of their augmented copies."""
        extra = self._copy_rows(keys)
        if not extra:
            return list(keys), names
        return list(keys) + [k for _, k in extra], np.concatenate([names, names[[i for i, _ in extra]]])

    def _fit_reject(
        self, cache: FeatureCache, labels: list[str], keys: list[str], names: np.ndarray, groups: list[str]
    ) -> tuple[Any, dict[str, Any]]:
        """The reject option, fitted on the windows the classifier trained on (above the gate, with copies)."""
        extra = self._copy_rows(keys)
        all_keys = list(keys) + [k for _, k in extra]
        source = [i for i, _ in extra]
        cfg = self.resolved_config
        return fit_reject_option(
            lambda: cache.iter_chunks(all_keys, max(cfg.chunk_size, 1024), min_level=cfg.min_level_db),
            labels, np.concatenate([names, names[source]]) if extra else names,
            list(groups) + [groups[i] for i in source], [False] * len(keys) + [True] * len(extra),
            cfg.reject_settings(), clips=list(keys) + [keys[i] for i in source],
            on_step=lambda i, n: emit(self.on_event, "reject", i, n),
        )

    def fit_cached(
        self,
        cache: FeatureCache,
        split: Split,
        *,
        checkpoint_dir: Path | None = None,
        resume: Resume = False,
        copies: dict[str, list[str]] | None = None,
    ) -> Fitted:
        """Fit on windows already in ``cache`` (no extraction). ``classifier="auto"``
        is resolved here, from these clips' labels; ``copies`` (from :meth:`augment`)
        maps a clip's key to its augmented copies' keys, of which the first
        ``augment_copies`` join its training."""
        self.resolved_config, choice = self.config.resolved(list(split.train_names) + list(split.val_names))
        if choice and choice not in self.notes:
            self.notes.append(choice)
        self._copies = dict(copies or {})
        self.negatives = None
        self._example_keys: set[str] = set()
        if getattr(self.featurizer, "shipped_negatives", None):
            if self.resolved_config.shipped_negatives is not False:
                split = self._with_negatives(cache, split, self.featurizer.shipped_negatives)
        estimator = self.resolved_config.estimator()
        if isinstance(estimator, UpdatableEstimator):
            signature = self._signature(cache.fingerprint, split)
            model, history, stop_reason, run_id, epochs = self._fit_epochs(
                cache, estimator, split, signature, checkpoint_dir, resume
            )
        else:
            model, history, stop_reason, run_id, epochs = self._fit_once(cache, estimator, split)
        validation = self._metrics(cache, model, split.val_keys, split.val_names, split.labels)[0] if split.val_keys else None
        train_keys, train_names, groups = split.train_keys, split.train_names, split.groups("train")
        if self.resolved_config.refit and split.val_keys:
            # the validation clips chose the epoch count; now learn from them too
            train_keys = list(split.train_keys) + list(split.val_keys)
            train_names = np.concatenate([split.train_names, split.val_names])
            groups = groups + split.groups("validation")
            model = self._refit(cache, estimator, split.labels, train_keys, train_names, model)
        model.feature_scales = cache.scales  # int8 windows of this featurizer are dequantised as in the cache
        if NEGATIVES in model.labels:
            model.metadata["negatives_threshold"] = NEGATIVES_THRESHOLD
        model.metadata.update(self._featurizer_metadata(cache, train_keys, train_names))
        training = self._metrics(cache, model, train_keys, train_names, split.labels)[0]
        reject = None
        if self.resolved_config.reject:
            if self._example_keys:
                # the thresholds say how far the owner's new recordings land: fitted with the shipped examples
                # (other rooms) they rejected 7 of 100 more of a taught sound where the owner's room is new
                # (docs/audio.md "Shipped recordings as examples")
                keep = [i for i, k in enumerate(train_keys) if k not in self._example_keys]
                if len(groups) == len(train_keys):
                    groups = [groups[i] for i in keep]
                train_keys, train_names = [train_keys[i] for i in keep], train_names[keep]
            model.reject_option, reject = self._fit_reject(cache, model.labels, list(train_keys), train_names, groups)
            if reject.get("note") and reject["note"] not in self.notes:
                self.notes.append(f"reject option: {reject['note']}")
        return Fitted(model, history, stop_reason, run_id, epochs, validation, training, reject)

    def _with_negatives(self, cache: FeatureCache, split: Split, name: str) -> Split:
        """``split`` with the featurizer's shipped negatives (:mod:`device.learn.negatives`) added to
        its training part (their windows stored in ``cache``) as ``background`` when they are at most
        ``merge_negatives_share`` of the owner's clips, else as their own class ``_negatives``, which
        the model answers ``background`` above its threshold (:class:`~device.learn.model.ClassifierModel`);
        ``self.negatives``
        says which kinds were used, named like an owner label, or claimed by the owner's data.
        ``name``: the featurizer's negatives file."""
        if BACKGROUND not in split.labels:
            self.notes.append(f"shipped negatives not used: they are silent as '{BACKGROUND}', which these clips do not teach")
            return split
        try:
            negatives = read_negatives(name)
        except CadenceError as exc:
            self.warnings.append(f"shipped negatives not used: {str(exc).splitlines()[0]}")
            return split
        if negatives.fingerprint != cache.fingerprint:
            self.notes.append("shipped negatives not used: made with another feature print")
            return split
        cfg = self.resolved_config
        keys = list(split.train_keys) + list(split.val_keys)
        names = np.concatenate([split.train_names, split.val_names])
        owner = {label: cache.read([k for k, n in zip(keys, names) if n == label], min_level=cfg.min_level_db)
                 for label in split.labels if label != BACKGROUND}
        unusable = set(keys) | self.exclude_negatives
        # a kind named like an owner label is that label's sound: its recordings join the owner's examples
        examples = [c for c in negatives.clips if c["kind"] in split.labels and c["key"] not in unusable] \
            if cfg.shipped_examples else []
        # the negatives are balanced against the labels as trained, examples included
        counted = np.concatenate([names, np.array([c["kind"] for c in examples], dtype=names.dtype)]) if examples else names
        chosen, used, named, claimed = choose_negatives(negatives, owner, split.labels, counted, unusable,
                                                        cfg.min_level_db, cfg.seed)
        augmenter = self._augmenter()
        shipped = range(int(negatives.meta.get("copies") or 0)) if augmenter is not None else range(0)
        copies = {c["key"]: [k for k in (copy_key(c["key"], augmenter.key, i) for i in shipped) if k in negatives.entries]
                  for c in chosen + examples}
        cache.store([(k, *negatives.rows(k)) for c in chosen + examples for k in [c["key"], *copies[c["key"]]]])
        self._copies.update(copies)
        gated = len(chosen) > cfg.merge_negatives_share * (len(keys) + len(examples))
        # the kinds that lent recordings (a kind whose every clip the owner's data holds lends none)
        given = {kind: n for kind in named if (n := sum(c["kind"] == kind for c in examples))}
        self.negatives = {
            "file": str(name), "source": negatives.meta.get("source"), "licence": negatives.meta.get("licence"),
            "used": used, "named_like_a_label": named, "claimed": claimed, "clips": len(chosen),
            "as": NEGATIVES if gated else BACKGROUND, "examples": given,
        }
        self.notes.append(negatives_note(used, named, claimed, len(chosen) / max(len(keys) + len(examples), 1),
                                         cfg.merge_negatives_share, given))
        self._example_keys = {c["key"] for c in examples}
        if not chosen and not examples:
            return split
        label = NEGATIVES if gated else BACKGROUND
        added = [(c, label) for c in chosen] + [(c, c["kind"]) for c in examples]
        groups = list(split.train_groups) + [f"shipped/{c['kind']}/{c['recording']}" for c, _ in added] \
            if len(split.train_groups) == len(split.train_keys) else []
        return dataclasses.replace(
            split, labels=sorted({*split.labels, *(lab for _, lab in added)}),
            train_keys=list(split.train_keys) + [c["key"] for c, _ in added],
            train_names=np.concatenate([split.train_names, np.array([lab for _, lab in added], dtype=split.train_names.dtype)]),
            train_groups=groups,
        )

    def _featurizer_metadata(self, cache: FeatureCache, keys: Sequence[str], names: np.ndarray) -> dict[str, Any]:
        """What the featurizer adds to the model from the windows it finally trained on:
        ``featurizer.model_metadata(chunks)`` (the exercise features: the open set), given
        ``(float windows as the cache gives them, their labels)`` chunk by chunk; nothing
        when the featurizer has no such hook (sound)."""
        hook = getattr(self.featurizer, "model_metadata", None)
        if not callable(hook):
            return {}
        keys, names = self._with_copies(keys, names)
        cfg = self.resolved_config
        chunks = (
            (x, names[owner])
            for x, owner in cache.iter_chunks(keys, max(cfg.chunk_size, 1024), min_level=cfg.min_level_db)
        )
        return dict(hook(chunks) or {})

    def _examples(self, cache: FeatureCache, labels: list[str], keys: Sequence[str], names: np.ndarray) -> Any:
        keys, names = self._with_copies(keys, names)
        return cache.examples(keys, names, labels, self.resolved_config.chunk_size, min_level=self.resolved_config.min_level_db)

    def _refit(
        self, cache: FeatureCache, estimator: Estimator[Any, Any], labels: list[str], keys: list[str],
        names: np.ndarray, selected: Any,
    ) -> Any:
        """Train again on training + validation clips with what validation chose
        (the best epoch count for the network). Deterministic, so a resumed run
        refits to the same model."""
        copies = len(self._with_copies(keys, names)[0]) - len(keys)
        examples = self._examples(cache, labels, keys, names)
        if not isinstance(estimator, UpdatableEstimator):
            model = estimator.fit(examples)
            model.metadata["refit"] = {"clips": len(keys), "augmented_copies": copies}
            return model
        epochs = int(selected.metadata.get("best_epoch") or 1)
        model = estimator.start(examples)
        order_rng = np.random.default_rng(self.resolved_config.seed + 1)
        for epoch in range(epochs):
            for x, y in examples.shuffled(order_rng):
                estimator.update(model, x, y)
            emit(self.on_event, "refit", epoch + 1, epochs)
        model.metadata["best_epoch"] = selected.metadata.get("best_epoch")
        model.metadata["refit"] = {"epochs": epochs, "clips": len(keys), "augmented_copies": copies}
        return model

    def _fit_epochs(
        self, cache: FeatureCache, estimator: UpdatableEstimator[Any, Any], split: Split, signature: str,
        ckpt_dir: Path | None, resume: Resume,
    ) -> tuple[Any, list[dict[str, Any]], str, str, int]:
        """Epochs of ``update`` with early stopping and checkpoints."""
        cfg = self.resolved_config
        examples = self._examples(cache, split.labels, split.train_keys, split.train_names)
        state = None
        if resume and ckpt_dir is not None:
            try:
                state = read_checkpoint(ckpt_dir, signature, self.notes)
            except TrainingError:
                if resume != "auto":
                    raise
                self.notes.append("the interrupted training was of other data or settings: training from the start")
        if resume is True and state is None:
            self.notes.append("no usable checkpoint found, training from the start")
        if state is not None:
            self.notes.append(f"resumed from the checkpoint after epoch {state.epoch}")
        else:
            if ckpt_dir is not None:
                clear_checkpoints(ckpt_dir)
            state = Progress(estimator.start(examples), None, np.random.default_rng(cfg.seed))
        has_val = bool(split.val_keys)
        while not state.finished:
            losses, count = 0.0, 0
            for x, y in examples.shuffled(state.order_rng):
                estimator.update(state.model, x, y)
                losses += state.model.last_loss * len(y)
                count += len(y)
            state.epoch += 1
            train_m, train_loss = self._metrics(cache, state.model, split.train_keys, split.train_names, split.labels)
            row: dict[str, Any] = {
                "epoch": state.epoch, "loss": train_loss, "accuracy": train_m.accuracy, "update_loss": losses / max(count, 1),
            }
            if has_val:
                val_m, val_loss = self._metrics(cache, state.model, split.val_keys, split.val_names, split.labels)
                row.update({"validation_loss": val_loss, "validation_accuracy": val_m.accuracy})
            state.history.append(json_safe(row))
            score = _score(state.history[-1], has_val)
            if state.best is None or score > _score(state.history[state.best_epoch - 1], has_val):
                state.best, state.best_epoch, state.since_best = state.model.copy(), state.epoch, 0
            else:
                state.since_best += 1
            emit(self.on_event, "train", state.epoch, cfg.max_epochs, **{k: v for k, v in row.items() if k != "epoch"})
            if cfg.target_accuracy is not None and score[0] >= cfg.target_accuracy:
                state.finished, state.stop_reason = True, f"target accuracy {cfg.target_accuracy} reached"
            elif state.since_best >= cfg.patience:
                state.finished, state.stop_reason = True, f"no improvement for {cfg.patience} epochs"
            elif state.epoch >= cfg.max_epochs:
                state.finished, state.stop_reason = True, f"maximum of {cfg.max_epochs} epochs"
            if ckpt_dir is not None and (state.finished or state.epoch % cfg.checkpoint_every == 0):
                path = write_checkpoint(ckpt_dir, signature, state, cfg.keep_checkpoints)
                emit(self.on_event, "checkpoint", state.epoch, cfg.max_epochs, path=str(path))
        best = state.best
        best.metadata["best_epoch"] = state.best_epoch
        return best, state.history, state.stop_reason, state.run_id, state.epoch

    def _fit_once(
        self, cache: FeatureCache, estimator: Estimator[Any, Any], split: Split
    ) -> tuple[Any, list[dict[str, Any]], str, str, int]:
        """An estimator without epochs (logistic regression): one ``fit`` over all chunks."""
        model = estimator.fit(self._examples(cache, split.labels, split.train_keys, split.train_names), on_event=self.on_event)
        train_m, train_loss = self._metrics(cache, model, split.train_keys, split.train_names, split.labels)
        row: dict[str, Any] = {"epoch": 1, "loss": train_loss, "accuracy": train_m.accuracy}
        if split.val_keys:
            val_m, val_loss = self._metrics(cache, model, split.val_keys, split.val_names, split.labels)
            row.update({"validation_loss": val_loss, "validation_accuracy": val_m.accuracy})
        emit(self.on_event, "train", 1, 1, **{k: v for k, v in row.items() if k != "epoch"})
        return model, [json_safe(row)], "fitted in one run (L-BFGS converged or reached its iteration limit)", uuid.uuid4().hex, 1

    # -- helpers --------------------------------------------------------------------------
    def _metrics(
        self, cache: FeatureCache, model: Any, keys: Sequence[str], names: np.ndarray, labels: list[str]
    ) -> tuple[ClassificationMetrics, float]:
        """Clip accuracy (highest mean window probability of what the model answers: the shipped
        negatives' class gated as :meth:`ClassifierModel.predict_open` gates it, and counted as the
        ``background`` it stands for) and mean window loss (the classifier's own outputs) over ``keys``."""
        taught = model.taught_labels
        gated = len(taught) != len(model.labels)
        vote = ClipVote(taught, len(keys))
        loss, n = 0.0, 0
        for x, owner in cache.iter_chunks(keys, self.resolved_config.chunk_size, min_level=self.resolved_config.min_level_db):
            p = model.predict_proba(x)
            vote.add(model.predict_open(x, reject=False, proba=p) if gated else p, owner)
            picked = p[np.arange(len(owner)), label_indices(model.labels, names[owner])]
            loss += float(-np.log(np.maximum(picked, 1e-12)).sum())
            n += len(owner)
        metrics = ClassificationMetrics([label for label in labels if label != NEGATIVES])
        if len(keys):
            metrics.update([BACKGROUND if t == NEGATIVES else str(t) for t in names], vote.predicted())
        return metrics, loss / max(n, 1)

    def _signature(self, fingerprint: str, split: Split) -> str:
        digest = hashlib.sha256()
        settings = self.resolved_config.path_settings()
        augmenter = self._augmenter()
        if settings["augment_copies"] and augmenter is not None:
            settings["augmenter"] = augmenter.key  # other copies are other training data
        digest.update(json.dumps({"fingerprint": fingerprint, "settings": settings}, sort_keys=True).encode())
        for part, keys, names in (("train", split.train_keys, split.train_names), ("validation", split.val_keys, split.val_names)):
            digest.update(f"|{part}:{len(keys)}|".encode())
            for key, name in zip(keys, names):  # streamed: no copy of the whole key list
                digest.update(f"{key}={name};".encode())
        return digest.hexdigest()

    def _report(
        self, data: Dataset, out: Path, fitted: Fitted, cache_report: CacheReport, skipped: list[str],
        train_clips: Sequence[Any], val_clips: Sequence[Any], seconds: float,
    ) -> dict[str, Any]:
        return json_safe(
            {
                "data": str(data.source),
                "model": str(out),
                "classifier": self.resolved_config.classifier,
                "classifier_requested": self.config.classifier,
                "labels": fitted.model.taught_labels,
                "clips": {"total": len(data.clips), "train": len(train_clips), "validation": len(val_clips)},
                "split": describe_split(train_clips, val_clips),
                "skipped": skipped,
                "warnings": self.warnings,
                "feature_cache": cache_report.to_dict(),
                "epochs": fitted.epochs,
                "best_epoch": fitted.model.metadata.get("best_epoch"),
                "refit": fitted.model.metadata.get("refit"),
                "stop_reason": fitted.stop_reason,
                "history": fitted.history,
                "validation": fitted.validation.to_dict() if fitted.validation else None,
                "training_accuracy": fitted.training.accuracy,
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
            warnings.append(f"identical files under different labels (check them; the model cannot tell them apart): {names}")
    kept = [dataclasses.replace(c, recording=recording[c.path]) if c.path in recording else c for c in clips]
    return kept, warnings


def _score(row: dict[str, Any], has_val: bool) -> tuple[float, float]:
    if has_val:
        return (float(row["validation_accuracy"]), -float(row["validation_loss"]))
    return (float(row["accuracy"]), -float(row["loss"]))
