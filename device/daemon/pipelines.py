"""The real pipelines the supervisor runs (factories taking a PipelineContext).

vision: camera or video file → Downsampler → pose extractor (worker thread;
frames dropped, not queued, when it falls behind) → PoseSelector →
SlidingWindow → HumanBodyActionCounter → :class:`RepUpdate`.

audio: microphone or audio file → AudioFeaturePrint → the active sound model
(hot-swapped by the supervisor) → sound events → :class:`SoundEvent`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_sound_model(path: Path) -> Any:
    """Load a trained sound classifier, refusing one made for another feature print."""
    from ..learn import load_classifier

    return load_classifier(path)
