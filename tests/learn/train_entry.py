"""Run ``cadence train …`` with the small test feature print (used by the kill -9 tests).

Usage: python train_entry.py train sound DATA --out MODEL [options]
Environment: CADENCE_TEST_SLOW=seconds sleeps in every feature extraction, and
CADENCE_TEST_SLOW_FSYNC=seconds before every fsync (so inside every atomic write
of a shard, index, checkpoint or model), so that a kill lands in the middle of
the work.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simple_print import SimpleFeaturePrint  # noqa: E402

from device.cli import build_parser  # noqa: E402
from device.components import CadenceError  # noqa: E402
from device.cli.learn import run_train  # noqa: E402


class SlowPrint(SimpleFeaturePrint):
    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def file_windows(self, path):
        time.sleep(self.delay)
        return super().file_windows(path)


def main() -> int:
    if os.environ.get("CADENCE_TEST_SHARD_SIZE"):
        import device.learn.cache

        device.learn.cache.DEFAULT_SHARD_SIZE = int(os.environ["CADENCE_TEST_SHARD_SIZE"])
    slow_fsync = float(os.environ.get("CADENCE_TEST_SLOW_FSYNC", "0"))
    if slow_fsync:
        real_fsync = os.fsync

        def fsync(fd):
            time.sleep(slow_fsync)
            return real_fsync(fd)

        os.fsync = fsync
    args = build_parser().parse_args(sys.argv[1:])
    delay = float(os.environ.get("CADENCE_TEST_SLOW", "0"))
    fp = SlowPrint(delay) if delay else SimpleFeaturePrint()
    try:
        return run_train(args, feature_print=fp)
    except CadenceError as exc:
        print(f"cadence: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
