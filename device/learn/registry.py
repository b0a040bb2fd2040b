"""Trained model versions: publish atomically, keep the previous ones, roll back.

A model lives at the path the daemon reads (e.g. ``state/models/sound.model``).
Every published version is also kept beside it in ``<name>.versions/``::

    models/sound.model                                  the current model
    models/sound.model.versions/0001-20261128T090000Z-9f8e7d6c.model
    models/sound.model.versions/0002-20261129T130501Z-1a2b3c4d.model

Publishing writes the version file, then replaces the current file — both
atomically — so a power cut leaves either the old or the new model in place,
never a broken one. A model already at the path that is not among the
versions (copied there by hand) is archived first, so it can be rolled back to;
a file there that is no readable model is set aside beside it (``<name>.unreadable``),
never deleted, and a path that is not a regular file (a device, a pipe) is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import Any

from device.components import CadenceError, PersistenceError, atomic_write, decode_state, encode_state, load_state

from .model import classifier_kinds, restore


class RegistryError(CadenceError):
    """No version to roll back to, an unknown version was named, or the model path is no file."""


def check_target(model_path: str | os.PathLike[str]) -> str | None:
    """Before any work: refuse a model path that is not a regular file; say what
    becomes of a file there that is no readable model (it is set aside, not lost)."""
    model_path = Path(model_path)
    if model_path.is_dir():
        raise RegistryError(f"{model_path}: is a folder; give the model file's path (a file in it, e.g. "
                            f"{model_path / 'my.model'})")
    if (model_path.exists() or model_path.is_symlink()) and not model_path.is_file():
        raise RegistryError(f"{model_path}: exists and is not a regular file (a device, a pipe or a broken link); "
                            "refusing to replace it with a model — choose another path")
    if model_path.is_file():
        try:
            load_state(model_path)
        except PersistenceError as exc:
            return (f"{model_path} is no readable model ({str(exc).splitlines()[0]}); it will be kept as "
                    f"{_aside_name(model_path)}")
    return None


def _aside_name(model_path: Path) -> Path:
    """``<name>.unreadable``, or ``<name>.unreadable-2`` … when that is taken."""
    aside, n = model_path.with_name(f"{model_path.name}.unreadable"), 1
    while aside.exists() or aside.is_symlink():
        n += 1
        aside = model_path.with_name(f"{model_path.name}.unreadable-{n}")
    return aside


def versions_dir(model_path: str | os.PathLike[str]) -> Path:
    model_path = Path(model_path)
    return model_path.parent / f"{model_path.name}.versions"


# training's report and curve of each version (``<version>.report.json``, ``<version>.curve.png``), so that
# the ones beside the model are always the current version's, also after a rollback
REPORTS = ".reports"


def _report_files(model_path: Path, version: str) -> list[tuple[Path, Path]]:
    """(beside the model, kept for ``version``) for the report and the curve."""
    from .report import report_paths

    store = versions_dir(model_path) / REPORTS
    return [(beside, store / f"{version}{beside.name[len(model_path.name):]}") for beside in report_paths(model_path)]


def keep_reports(model_path: str | os.PathLike[str]) -> None:
    """Keep the report and curve beside the model with its current version (a rollback shows them again)."""
    model_path = Path(model_path)
    current = _version_of(model_path, _sha(model_path)) if model_path.is_file() else None
    if current is not None:  # by hash: list_versions would decode every kept model again
        _store_reports(model_path, current.stem, replace=True)


def _store_reports(model_path: Path, version: str, *, replace: bool) -> None:
    for beside, kept in _report_files(model_path, version):
        if beside.is_file() and (replace or not kept.exists()):
            kept.parent.mkdir(exist_ok=True)
            atomic_write(kept, beside.read_bytes())


def _stamp(created: str | None) -> str:
    try:
        when = dt.datetime.fromisoformat(str(created))
    except (TypeError, ValueError):
        when = dt.datetime.now(dt.timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _version_name(model_path: Path, data: bytes, created: str | None) -> str:
    """``<sequence>-<created UTC>-<sha256[:8]><suffix>``; the sequence orders versions."""
    suffix = model_path.suffix or ".model"
    sequence = 1
    vdir = versions_dir(model_path)
    if vdir.is_dir():
        for f in vdir.iterdir():
            head = f.name.split("-", 1)[0]
            if head.isdigit():
                sequence = max(sequence, int(head) + 1)
    return f"{sequence:04d}-{_stamp(created)}-{hashlib.sha256(data).hexdigest()[:8]}{suffix}"


def publish(model: Any, model_path: str | os.PathLike[str], *, keep: int = 3) -> Path:
    """Write ``model`` as the current model, keeping up to ``keep`` versions."""
    model_path = Path(model_path)
    check_target(model_path)
    meta, arrays = model.state()
    data = encode_state(model.kind, meta, arrays)
    vdir = versions_dir(model_path)
    try:
        vdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # read-only or full storage: one clear line, the current model stays
        raise PersistenceError(f"{vdir}: cannot create the model versions folder ({exc.strerror or exc}); "
                               "the current model is kept") from exc
    remove_stale_temp_files(vdir)
    remove_stale_temp_files(model_path.parent, prefix=f".{model_path.name}.")
    run_id = (model.metadata.get("training") or {}).get("run_id")
    _archive_current(model_path)
    if run_id:
        # a version left by an interrupted publication of this same run is replaced
        for info in list_versions(model_path):
            if info.get("run_id") == run_id and not info["current"]:
                Path(info["path"]).unlink(missing_ok=True)
                for _, kept in _report_files(model_path, info["version"]):
                    kept.unlink(missing_ok=True)
    version = vdir / _version_name(model_path, data, model.metadata.get("created"))
    atomic_write(version, data)
    atomic_write(model_path, data)
    _prune(model_path, keep)
    return model_path


def remove_stale_temp_files(folder: Path, prefix: str = ".") -> None:
    """Temp files left by a write that a power cut interrupted (never renamed)."""
    if folder.is_dir():
        for f in folder.iterdir():
            if f.name.startswith(prefix) and f.name.endswith(".tmp") and f.is_file():
                f.unlink(missing_ok=True)


def _archive_current(model_path: Path) -> None:
    if not model_path.is_file():
        return
    try:
        meta, _ = load_state(model_path)  # size-checked before it is read
    except PersistenceError:
        # no readable model (a damaged one, or a file given as --out by mistake): set aside, never lost
        os.replace(model_path, _aside_name(model_path))
        return
    data = model_path.read_bytes()
    if _version_of(model_path, hashlib.sha256(data).hexdigest()) is not None:
        return
    created = (meta.get("metadata") or {}).get("created")
    atomic_write(versions_dir(model_path) / _version_name(model_path, data, created), data)


def _version_of(model_path: Path, digest: str) -> Path | None:
    """The kept version whose bytes have ``digest`` (compared by hash only: no model is decoded)."""
    vdir = versions_dir(model_path)
    if not vdir.is_dir():
        return None
    return next((f for f in sorted(vdir.iterdir()) if f.is_file() and not f.name.startswith(".") and _sha(f) == digest),
                None)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def list_versions(model_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Versions of a model, oldest first, with what each records."""
    model_path = Path(model_path)
    current = _sha(model_path) if model_path.is_file() else None
    out = []
    vdir = versions_dir(model_path)
    if not vdir.is_dir():
        return out
    for f in sorted(vdir.iterdir()):
        if not f.is_file() or f.name.startswith("."):
            continue
        info: dict[str, Any] = {"path": str(f), "version": f.stem, "current": False}
        try:
            meta, arrays = load_state(f)
            # as the daemon would load it: a version it refuses is not ok
            model = restore(meta, arrays, str(f)) if meta.get("kind") in classifier_kinds() else None
            md = meta.get("metadata") or {}
            val = (md.get("metrics") or {}).get("validation") or {}
            info.update(
                {
                    "created": md.get("created"),
                    "kind": meta.get("kind"),
                    # the taught labels: not the shipped negatives' class, which the model never answers
                    "labels": model.taught_labels if model is not None else meta.get("labels"),
                    "accuracy": val.get("accuracy"),
                    "fingerprint": md.get("feature_print_fingerprint"),
                    "features": _features_class(md),
                    "run_id": (md.get("training") or {}).get("run_id"),
                    "ok": True,
                }
            )
        except PersistenceError as exc:
            info.update({"ok": False, "error": str(exc)})
        info["current"] = current is not None and _sha(f) == current
        out.append(info)
    return out


def _prune(model_path: Path, keep: int) -> None:
    versions = list_versions(model_path)
    extra = len(versions) - max(keep, 1)
    for info in versions:
        if extra <= 0:
            break
        if not info["current"]:
            Path(info["path"]).unlink(missing_ok=True)
            for _, kept in _report_files(model_path, info["version"]):
                kept.unlink(missing_ok=True)
            extra -= 1


def rollback(model_path: str | os.PathLike[str], to: str | None = None) -> dict[str, Any]:
    """Make an earlier version current (default: the one before the current); a current model that is
    no version (copied there by hand) is kept as the newest version first, never lost. The report and
    curve beside the model become the target's (as kept by :func:`keep_reports`), or go when it has none."""
    model_path = Path(model_path)
    every = list_versions(model_path)
    versions = [v for v in every if v.get("ok")]
    if to is not None:
        matches = [v for v in every if v["version"] == to or Path(v["path"]).name == to]
        matches = matches or [v for v in every if to and v["version"].startswith(to)]
        if not matches:
            raise RegistryError(f"{model_path}: no version {to!r} (see 'cadence models list {model_path}')")
        if len(matches) > 1:  # not a guess: the owner names one version
            raise RegistryError(f"{model_path}: {to!r} names more than one version "
                                f"({', '.join(v['version'] for v in matches)}); give more of its name")
        target = matches[-1]
        if not target.get("ok"):
            raise RegistryError(f"{model_path}: version {target['version']} cannot be read ({target.get('error')}); "
                                "the current model is kept")
    elif not versions:
        raise RegistryError(f"{model_path}: no saved versions to roll back to")
    else:
        current = [i for i, v in enumerate(versions) if v["current"]]
        if current:
            if current[0] == 0:
                raise RegistryError(f"{model_path}: the current model is the oldest kept version; nothing to roll back to")
            target = versions[current[0] - 1]
        else:
            target = versions[-1]
    _check_same_kind(model_path, target, every)
    data = Path(target["path"]).read_bytes()
    decode_state(data, source=target["path"])  # verify before switching: nothing is changed before this
    for v in every:  # a version trained before reports were kept keeps the one beside the model now
        if v["current"]:
            _store_reports(model_path, v["version"], replace=False)
    _archive_current(model_path)  # a model copied there by hand is kept as a version before it is replaced
    atomic_write(model_path, data)
    for beside, kept in _report_files(model_path, target["version"]):  # never the replaced model's report
        if kept.is_file():
            atomic_write(beside, kept.read_bytes())
        else:
            beside.unlink(missing_ok=True)
    target = dict(target, current=True)
    return target


def _features_class(metadata: dict[str, Any]) -> str | None:
    """The featurizer a model was trained on (``AudioFeaturePrint``, ``ExerciseFeatures``), if recorded."""
    kind = (metadata.get("feature_print") or {}).get("class")
    return str(kind) if kind else None


def _check_same_kind(model_path: Path, target: dict[str, Any], every: list[dict[str, Any]]) -> None:
    """A version of another kind than the slot's (an exercise model among a sound model's versions) is not
    rolled back to: the slot's daemon would refuse it at its next load. The slot's kinds are the current
    model's and the other versions' — so a stray model copied over the slot can still be rolled back from."""
    kinds = {v.get("features") for v in every if v is not target and v.get("ok")}
    try:
        kinds.add(_features_class(load_state(model_path)[0].get("metadata") or {}))
    except (OSError, PersistenceError):
        pass  # no readable current model: the versions say what the slot holds
    kinds.discard(None)
    wanted = target.get("features")
    if wanted and kinds and wanted not in kinds:
        raise RegistryError(f"{model_path}: version {target['version']} is a model for {wanted} features, "
                            f"this slot's for {', '.join(sorted(kinds))} (a model of another kind); "
                            "the current model is kept")
