"""Training checkpoints: a network run's state between epochs, written atomically, read back on resume.

A checkpoint (``checkpoint-<epoch>.cadence`` under ``<state>/checkpoints/<key of the output path>``)
holds the model — which carries its optimizer state —, the best model so far, the epoch, the
history and the chunk-order generator, so that a run resumed after a power cut ends with the same
model as an uninterrupted one. Unreadable checkpoints are skipped with a note; one of other data or
settings is refused (``--resume`` would otherwise mix two trainings).
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from device.components import PersistenceError, load_state, save_state

from .config import TrainingError
from .model import decode_rng, encode_rng, restore
from .registry import remove_stale_temp_files

CHECKPOINT_KIND = "cadence.training_checkpoint"


@dataclasses.dataclass
class Progress:
    """The state of a network run between epochs: what a checkpoint holds."""

    model: Any
    best: Any
    order_rng: np.random.Generator
    epoch: int = 0
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best_epoch: int = 0
    since_best: int = 0
    run_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    finished: bool = False
    stop_reason: str = ""


def checkpoint_dir_for(state_dir: Path, out: Path) -> Path:
    key = hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:16]
    return Path(state_dir) / "checkpoints" / key


def write_checkpoint(ckpt_dir: Path, signature: str, progress: Progress, keep: int) -> Path:
    """Write ``progress`` atomically as ``checkpoint-<epoch>.cadence``, keeping the newest ``keep``."""
    meta_m, arrays_m = progress.model.state()
    arrays = {f"model.{k}": v for k, v in arrays_m.items()}
    meta: dict[str, Any] = {
        "signature": signature,
        "order_rng": encode_rng(progress.order_rng),
        "model": meta_m | {"kind": progress.model.kind},
        **{k: getattr(progress, k) for k in ("epoch", "history", "best_epoch", "since_best", "run_id", "finished", "stop_reason")},
    }
    if progress.best is not None:
        meta_b, arrays_b = progress.best.state()
        meta["best"] = meta_b | {"kind": progress.best.kind}
        arrays.update({f"best.{k}": v for k, v in arrays_b.items()})
    path = save_state(ckpt_dir / f"checkpoint-{progress.epoch:06d}.cadence", CHECKPOINT_KIND, meta, arrays)
    existing = sorted(ckpt_dir.glob("checkpoint-*.cadence"))
    for old in existing[: max(0, len(existing) - keep)]:
        try:
            old.unlink()
        except OSError:
            pass
    return path


def read_checkpoint(ckpt_dir: Path, signature: str, notes: list[str]) -> Progress | None:
    """The newest readable checkpoint for ``signature`` (unreadable ones are skipped
    with a note); a checkpoint of other data or settings is a :class:`TrainingError`."""
    if not ckpt_dir.is_dir():
        return None
    remove_stale_temp_files(ckpt_dir)
    for path in sorted(ckpt_dir.glob("checkpoint-*.cadence"), reverse=True):
        try:
            meta, arrays = load_state(path, kind=CHECKPOINT_KIND)
            if meta.get("signature") != signature:
                raise TrainingError(
                    f"{path}: the data or training settings changed since this checkpoint (or this Cadence "
                    "trains on other clips: the shipped examples are new; --no-shipped-examples trains as "
                    "before); train without --resume to start over"
                )
            best = restore(meta["best"], _prefixed(arrays, "best."), str(path)) if "best" in meta else None
            return Progress(
                restore(meta["model"], _prefixed(arrays, "model."), str(path)), best, decode_rng(meta["order_rng"]),
                int(meta["epoch"]), list(meta["history"]), int(meta["best_epoch"]), int(meta["since_best"]),
                str(meta["run_id"]), bool(meta["finished"]), str(meta["stop_reason"]),
            )
        except (PersistenceError, KeyError, ValueError, TypeError, AttributeError, IndexError, OverflowError) as exc:
            notes.append(f"skipped checkpoint {path.name}: {exc}")
    return None


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def clear_checkpoints(ckpt_dir: Path) -> None:
    """Remove a previous run's checkpoints before a run that starts from the beginning: checkpoints are kept
    by epoch, so an older run's later epochs would otherwise outrank (and prune) the new run's own."""
    if not ckpt_dir.is_dir():
        return
    for old in ckpt_dir.glob("checkpoint-*.cadence"):
        try:
            old.unlink()
        except OSError:  # the new run's own checkpoints replace it in time
            pass
