"""``cadence`` command line: thin — parse, call the library, print.

Each area registers its own commands from a module with a
``register(subparsers, groups)`` function (see ``COMMAND_MODULES``);
``groups`` holds shared command groups such as ``groups["models"]`` so that
several areas can add sub-commands under one word. Every failure a user can
cause ends in one line ``cadence: error: …`` and exit status 2 (usage) or 1;
with stderr closed (``2>&-``) that line and the progress go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..components import CadenceError

COMMAND_MODULES = (
    "device.cli.models",  # cadence models fetch|status|list|rollback
    "device.cli.pose",  # cadence pose …, cadence count …
    "device.cli.sound",  # cadence classify / evaluate sound …
    "device.cli.learn",  # cadence train sound / record sound …
    "device.cli.exercise",  # cadence train exercise / record exercise …
    "device.cli.daemon",  # cadence run / config / retrain …
)


def _cmd_demo(args: argparse.Namespace) -> int:
    """A small pipeline over a synthetic stream, to show the pieces work."""
    for name in ("seconds", "window", "stride"):
        if getattr(args, name) < 1:
            raise CadenceError(f"--{name} must be at least 1, got {getattr(args, name)}")
    from ..components import Downsampler, FunctionTransformer, SlidingWindow, collect, from_iterable

    def peak_to_peak(window: list[float]) -> float:
        return max(window) - min(window)

    pipeline = Downsampler(2) | SlidingWindow(length=args.window, stride=args.stride) | FunctionTransformer(peak_to_peak)
    samples = [math.sin(2 * math.pi * 0.5 * i / 30) * (1 + i / 300) for i in range(args.seconds * 30)]

    async def go() -> list[Any]:
        return await collect(pipeline(from_iterable(samples, rate=30.0)))

    results = asyncio.run(go())
    print(f"pipeline: {pipeline!r}")
    for item in results:
        if args.json:
            print(json.dumps({"timestamp": round(item.timestamp, 3), "peak_to_peak": round(item.value, 4)}))
        else:
            print(f"t={item.timestamp:6.2f}s  peak-to-peak {item.value:6.3f}")
    print(f"{len(results)} windows from {len(samples)} samples")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cadence",
        description="Cadence: camera and microphone in, repetition counts and sound events out (MQTT).",
    )
    parser.add_argument("--version", action="version", version=f"cadence {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = subparsers.add_parser(
        "demo", help="run a small demo pipeline on a synthetic stream",
        description="Downsampler | SlidingWindow | a function, over a synthetic 30 Hz signal: "
        "shows how components compose with | and what a stream looks like.")
    demo.add_argument("--seconds", type=int, default=6, help="seconds of synthetic signal (default: 6)")
    demo.add_argument("--window", type=int, default=30, help="items per window (default: 30)")
    demo.add_argument("--stride", type=int, default=15, help="items between windows (default: 15)")
    demo.add_argument("--json", action="store_true", help="one JSON object per window")
    demo.set_defaults(handler=_cmd_demo)

    groups: dict[str, Any] = {"root": subparsers}
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that area is not built yet
            raise
        module.register(subparsers, groups)
    return parser


def keep_stderr_open() -> None:
    """With fd 2 closed (``cadence … 2>&-``) Python has no ``sys.stderr``: progress and the
    one-line error then failed with a traceback nobody saw (exit 1, silently). Messages go to
    stdout instead (if it is open), and fd 2 is held on ``/dev/null`` so that no file opened
    later takes its number and receives what C libraries write to "stderr"."""
    if sys.stderr is not None:
        return
    try:
        os.fstat(2)
    except OSError:
        null = os.open(os.devnull, os.O_WRONLY)
        if null != 2:
            os.dup2(null, 2)
            os.close(null)
    sys.stderr = sys.stdout if sys.stdout is not None else open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


def main(argv: Sequence[str] | None = None) -> int:
    keep_stderr_open()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except CadenceError as exc:
        print(f"cadence: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cadence: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
