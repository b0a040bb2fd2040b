"""Raspberry Pi board profiles: which landmark model, threads, resolution and frame skipping.

Why: a Pi core is several times slower than a desktop core (a Zero 2 W's
slower still), so the settings that keep up on the developer's machine fall
behind on the board and the counter then sees stale, bursty frames. A profile
picks, per board, the cheaper landmark model variant (built by
``scripts/build_pose_variants.py``, pinned in ``models/manifest.json``), the
TFLite thread count, the camera resolution and frame rate, and the frame
skipping (``downsample``) so the daemon keeps up.

Wiring (``[camera] profile = "auto" | "zero2w" | "pi4" | "pi5" | "generic"``)::

    profile = resolve_profile(config.camera.profile)        # "auto": reads /proc/device-tree/model
    camera = {**defaults, **profile.overrides(), **values_the_user_set}   # keys = [camera] fields
    model, note = landmark_model(profile)                   # None (+ a note): the float model
    extractor = HumanBodyPoseExtractor(**({"landmark_model": model} if model else {}), num_threads=...)

``overrides()`` holds only what the profile sets (``generic`` sets nothing:
the config's own values, whose defaults live in ``device/daemon/config.py``).
A value the user writes in ``[camera]`` should win over the profile: apply
the overrides only to fields the user left unset.

The expected frames per second are ESTIMATES, not measured on hardware: see
``docs/aarch64.md`` for the method (x86 cost per model measured by
``scripts/build_pose_variants.py --measure`` times per-core speed ratios).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .components.errors import CadenceError

DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
INT8_LANDMARK_MODEL = "pose_landmark_full_int8.tflite"
# a variant is usable when its mean landmark distance to the float model, over the
# shared videos' frames, is at most this many torso lengths (shoulder-hip centres)
FIDELITY_LIMIT = 0.05


class BoardProfileError(CadenceError, ValueError):
    """An unknown board profile name."""


@dataclasses.dataclass(frozen=True)
class BoardProfile:
    """Settings for one board; ``None`` leaves the configured value alone.

    Fields named like ``[camera]`` config fields: ``threads`` (TFLite threads),
    ``resolution`` (width, height asked of the camera), ``fps`` (camera rate),
    ``downsample`` (keep every n-th frame: the pose model runs at fps/downsample).
    ``landmark_model`` is a file name from ``models/manifest.json`` (``None``: the
    extractor's default, the float model).
    ``expected_fps`` is the estimated pose rate the board sustains with these
    settings (not measured on hardware); ``pose_rate`` is what they ask for.
    """

    name: str
    boards: str
    landmark_model: str | None = None
    threads: int | None = None
    resolution: tuple[int, int] | None = None
    fps: float | None = None
    downsample: int | None = None
    expected_fps: float | None = None

    def overrides(self) -> dict[str, Any]:
        """The ``[camera]`` values this profile sets (``landmark_model`` excluded)."""
        fields = ("threads", "resolution", "fps", "downsample")
        return {f: getattr(self, f) for f in fields if getattr(self, f) is not None}

    @property
    def pose_rate(self) -> float | None:
        """Frames per second the pose model is asked to process."""
        return None if self.fps is None else self.fps / (self.downsample or 1)


# Threads: 3 of the 4 cores, one left for audio, MQTT and the OS. expected_fps: the estimate
# for the int8 variant with 3 threads printed by `scripts/build_pose_variants.py --measure`
# (docs/aarch64.md: x86 cost per frame x per-core speed ratio; NOT measured on a board).
# Each profile asks for a pose rate (fps / downsample) at or below that estimate.
PROFILES: dict[str, BoardProfile] = {
    "zero2w": BoardProfile(
        name="zero2w", boards="Raspberry Pi Zero 2 W, Pi 3 (Cortex-A53)",
        landmark_model=INT8_LANDMARK_MODEL, threads=3, resolution=(320, 240), fps=15.0, downsample=5,
        expected_fps=3.3,
    ),
    "pi4": BoardProfile(
        name="pi4", boards="Raspberry Pi 4, Pi 400, CM4 (Cortex-A72)",
        landmark_model=INT8_LANDMARK_MODEL, threads=3, resolution=(640, 480), fps=15.0, downsample=2,
        expected_fps=8.3,
    ),
    "pi5": BoardProfile(
        name="pi5", boards="Raspberry Pi 5, Pi 500, CM5 (Cortex-A76)",
        landmark_model=INT8_LANDMARK_MODEL, threads=3, resolution=(640, 480), fps=30.0, downsample=2,
        expected_fps=20.8,
    ),
    "generic": BoardProfile(name="generic", boards="anything else: the configured values as they are"),
}
PROFILE_NAMES = ("auto", *PROFILES)

# device-tree model prefixes -> profile (first match wins; Pi 3 shares the Zero 2 W's cores)
_BOARD_PREFIXES = (
    ("Raspberry Pi 5", "pi5"), ("Raspberry Pi 500", "pi5"), ("Raspberry Pi Compute Module 5", "pi5"),
    ("Raspberry Pi 4", "pi4"), ("Raspberry Pi 400", "pi4"), ("Raspberry Pi Compute Module 4", "pi4"),
    ("Raspberry Pi Zero 2", "zero2w"), ("Raspberry Pi 3", "zero2w"), ("Raspberry Pi Compute Module 3", "zero2w"),
)


def detect_board(path: Path | str = DEVICE_TREE_MODEL) -> str | None:
    """The profile name for this board from its device-tree model string, or ``None``.

    ``None`` for a machine without a device tree (x86) or a board with no
    profile (e.g. the 32-bit-only Pi Zero / Zero W, Pi 1 and 2).
    """
    try:
        model = Path(path).read_bytes().split(b"\0", 1)[0].decode("utf-8", "replace").strip()
    except OSError:
        return None
    # "Raspberry Pi 5" must not catch "Raspberry Pi 500": longest prefix first
    for prefix, profile in sorted(_BOARD_PREFIXES, key=lambda p: -len(p[0])):
        if model.startswith(prefix):
            return profile
    return None


def resolve_profile(name: str = "auto", *, model_path: Path | str = DEVICE_TREE_MODEL) -> BoardProfile:
    """The profile called ``name``; ``"auto"`` picks it from the board (``generic`` if unknown)."""
    if name == "auto":
        return PROFILES[detect_board(model_path) or "generic"]
    try:
        return PROFILES[name]
    except KeyError:
        raise BoardProfileError(f"unknown board profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}") from None


def landmark_model(profile: BoardProfile, directory: Path | None = None) -> tuple[str | None, str | None]:
    """The landmark model file to load for ``profile`` (``None``: the extractor's default, the
    float model) and, when the profile's variant cannot be used, a one-line note why.

    A variant is built, not fetched (``make pose-variants``): when it is
    missing or altered the float model is used, so a board without the
    variant still counts (more slowly).
    """
    from . import pretrained

    if profile.landmark_model is None:
        return None, None
    try:
        pretrained.model_path(profile.landmark_model, directory=directory)
    except pretrained.ModelFileError as exc:
        return None, f"board profile {profile.name}: using the float landmark model ({exc})"
    return profile.landmark_model, None
