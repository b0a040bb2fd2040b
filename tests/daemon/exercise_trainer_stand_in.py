"""A stand-in for ``cadence train exercise DATA --out MODEL --state-dir DIR`` (the lead's trainer,
not on this branch yet), with the same interface and outcome: the shipped exercises plus those of
``DATA/<label>/*.npy`` (pose arrays as ``cadence pose --out`` writes them), one model file at ``--out``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from exercise_helpers import shipped_like, train_exercise_model  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["exercise"])
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path)
    args = parser.parse_args()
    owner = [(folder.name, np.load(f)) for folder in sorted(args.data.iterdir()) if folder.is_dir()
             for f in sorted(folder.glob("*.npy"))]
    if not owner:
        print(f"cadence: error: {args.data}: no examples", file=sys.stderr)
        return 1
    labels = train_exercise_model(shipped_like() + owner, args.out)
    print(f"trained {args.out}: {', '.join(labels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
