#!/usr/bin/env python3
"""Write the audio feature print's int8 calibration (a shipped file): ``make calibration``.

For every clip of the data folder (default ``../shared/data/room-sounds-dev``)
the default :class:`~device.audio.featureprint.AudioFeaturePrint`'s raw
statistics are computed; per dimension the 0.5–99.5 % range, widened by half
its span on each side, maps onto -127 … 127. The table is written to
``device/audio/featureprint_calibration.json``, keyed by the feature print's
``config_key()`` (entries of earlier defaults are dropped).

Changing the calibration changes the feature print's fingerprint: feature
caches and trained sound models of the old one are refused (retrain), so
rerun it only when the feature print itself changes (the shipped table: feature
print version 3, from the corrected development set of December 2026).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.audio.featureprint import CALIBRATION_FILE, AudioFeaturePrint  # noqa: E402
from device.audio.sources import AUDIO_EXTENSIONS, load_audio  # noqa: E402


def calibrate(data: Path, out: Path) -> None:
    fp = AudioFeaturePrint()
    files = sorted(p for p in data.glob("*/*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise SystemExit(f"no audio clips in {data}/<label>/")
    raw = np.stack([fp.raw_features(load_audio(p)) for p in files])
    centres, scales = fp.calibrate(raw)
    table = json.loads(out.read_text()) if out.exists() else {}
    table.setdefault("about", "Per-dimension quantisation of AudioFeaturePrint: int8 = round((x - centre) / scale). "
                     "Written by scripts/calibrate_featureprint.py (make calibration) from room-sounds-dev "
                     "(0.5-99.5 % range, widened by half its span on each side). Keyed by the feature print's config_key().")
    table["calibrations"] = {
        fp.config_key(): {
            "config": fp.config(),
            "clips": len(files),
            "centres": [round(float(v), 4) for v in centres],
            "scales": [round(float(v), 6) for v in scales],
        }
    }
    out.write_text(json.dumps(table, indent=1) + "\n")
    print(f"calibrated {fp.dimension} dimensions on {len(files)} clips -> {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "room-sounds-dev")
    parser.add_argument("--out", type=Path, default=CALIBRATION_FILE)
    args = parser.parse_args()
    calibrate(args.data.resolve(), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
