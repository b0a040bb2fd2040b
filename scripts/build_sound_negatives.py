#!/usr/bin/env python3
"""Build the shipped sound negatives ``models/sound-negatives.npz`` from the shared data (issue 18).

    python scripts/build_sound_negatives.py [--data ../shared/data/room-sounds-dev]
        [--out models/sound-negatives.npz] [--cache DIR] [--no-manifest]

Every window of the SNU-B36-50 floor-noise clips of the development data
(``ball_drop``, ``chair_drag``, ``hammer_drop``, ``hammering``,
``vacuum_cleaner``: MIT licence; the ``crying_baby`` and ``background`` clips
may not ship) and of their ``AUTO_AUGMENT_COPIES`` augmented copies, int8,
exactly as the training feature cache holds them (the default feature print
and its augmenter, keyed by the clip's content hash), with each clip's kind
and recording. Training adds clips of the kinds the owner did not teach to
``background`` (``device/learn/negatives.py``). Extraction is seeded
(copies are seeded by the clip's hash) and the container has fixed member
times, so a rebuild is byte-identical; its SHA-256 is written into
``models/manifest.json`` (``"built_by"``: committed, not fetched).
``--cache`` reuses a feature cache folder (else a temporary one).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from device.audio.featureprint import AudioFeaturePrint  # noqa: E402
from device.components.persistence import atomic_write, sha256_file  # noqa: E402
from device.learn.config import AUTO_AUGMENT_COPIES  # noqa: E402
from device.learn.dataset import load_dataset  # noqa: E402
from device.learn.negatives import LICENCE, ShippedNegatives, make_negatives  # noqa: E402

KINDS = ("ball_drop", "chair_drag", "hammer_drop", "hammering", "vacuum_cleaner")  # SNU-B36-50 (MIT) only
NAME = "sound-negatives.npz"
BUILT_BY = "make sound-negatives (scripts/build_sound_negatives.py)"
WHAT = ("shipped sound negatives: feature-print windows (int8, with augmented copies) of the SNU-B36-50 floor "
        "noises (MIT) that training adds to background for kinds the owner did not teach")


def build(data: Path, cache_dir: Path) -> ShippedNegatives:
    fp = AudioFeaturePrint()
    clips = [c for c in load_dataset(data, fp.suffixes).clips if c.label in KINDS and c.path.name.startswith("snu_")]
    meta = {"source": "room-sounds-dev: SNU-B36-50 fold 1 (inter-floor noise in a building)", "licence": LICENCE}
    return make_negatives(fp, clips, cache_dir, AUTO_AUGMENT_COPIES, meta)


def pin(manifest_path: Path, name: str, digest: str) -> None:
    """Record the built file's SHA-256 in the manifest (kept otherwise as it is)."""
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][name] = {"built_by": BUILT_BY, "sha256": digest, "what": WHAT}
    atomic_write(manifest_path, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "room-sounds-dev")
    ap.add_argument("--out", type=Path, default=REPO / "models" / NAME)
    ap.add_argument("--cache", type=Path, default=None, help="feature cache folder to reuse (default: a temporary one)")
    ap.add_argument("--no-manifest", action="store_true", help="do not pin the file in models/manifest.json")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cadence-negatives-") as tmp:
        negatives = build(args.data.resolve(), args.cache or Path(tmp))
    atomic_write(args.out, negatives.to_bytes())
    digest = sha256_file(args.out)
    if not args.no_manifest:
        pin(args.out.parent / "manifest.json", args.out.name, digest)
    print(f"{args.out}: {args.out.stat().st_size} bytes, sha256 {digest}, clips {negatives.meta['kinds']}, "
          f"{len(negatives.values)} windows ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
