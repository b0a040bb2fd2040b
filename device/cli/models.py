"""``cadence models …``: the pinned pretrained files and the versions of trained models.

    cadence models fetch [NAME …]      fetch and verify the pinned pretrained files
    cadence models status              which are present and verified
    cadence models list [MODEL]        versions of a trained model (current marked *)
    cadence models rollback [MODEL]    make an earlier version current again
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from .options import add_state_dir_option, command_group, state_dir


def _cmd_fetch(args: argparse.Namespace) -> int:
    from .. import pretrained

    pretrained.fetch(args.names or None)
    states = pretrained.status()
    wanted = args.names or list(states)
    print(f"{sum(states.get(n) == 'ok' for n in wanted)} of {len(wanted)} model files present and verified "
          f"in {pretrained.models_dir()}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from .. import pretrained

    states = pretrained.status()
    for name, state in states.items():
        print(f"{name:32s} {state}")
    return 0 if all(s == "ok" for s in states.values()) else 1


def _default_model(args: argparse.Namespace) -> Path:
    return Path(args.model) if args.model else state_dir(args) / "models" / "sound.model"


def run_models_list(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from ..learn.registry import list_versions

    out = out or sys.stdout
    target = _default_model(args)
    paths = sorted(p for p in target.iterdir() if p.is_file() and not p.name.endswith((".json", ".png"))) if target.is_dir() else [target]
    everything = {str(p): list_versions(p) for p in paths}
    if args.json:
        print(json.dumps(everything, indent=2), file=out)
        return 0
    shown = 0
    for path, versions in everything.items():
        if not versions:
            continue
        shown += 1
        print(f"{path}:", file=out)
        for v in versions:
            mark = "*" if v["current"] else " "
            if not v.get("ok"):
                print(f"  {mark} {v['version']}  unreadable: {v.get('error')}", file=out)
                continue
            acc = "-" if v.get("accuracy") is None else f"{v['accuracy']:.3f}"
            labels = ",".join(v.get("labels") or [])
            kind = str(v.get("kind") or "").rsplit(".", 1)[-1].replace("fully_connected_network", "network")
            kind = kind.replace("logistic_regression", "logistic")
            print(f"  {mark} {v['version']}  {kind:8s} created {v.get('created')}  val acc {acc}  labels {labels}", file=out)
    if not shown:
        print(f"cadence: error: no trained model versions at {target}", file=sys.stderr)
        return 1
    return 0


def run_models_rollback(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from ..learn.registry import rollback

    out = out or sys.stdout
    target = rollback(_default_model(args), args.to)
    print(f"{_default_model(args)} is now version {target['version']} (created {target.get('created')})", file=out)
    return 0


def register(subparsers: Any, groups: dict[str, Any]) -> None:
    sub = command_group(subparsers, groups, "models", "pretrained model files and trained models", "ACTION")
    fetch = sub.add_parser("fetch", help="download and verify the pinned pretrained model files")
    fetch.add_argument("names", nargs="*", help="only these files (default: all in the manifest)")
    fetch.set_defaults(handler=_cmd_fetch)
    status = sub.add_parser("status", help="show whether each pretrained model file is present and verified")
    status.set_defaults(handler=_cmd_status)
    ls = sub.add_parser("list", help="list trained model versions (current marked *)")
    ls.add_argument("model", nargs="?", help="model file or folder (default: <state dir>/models/sound.model)")
    ls.add_argument("--json", action="store_true", help="one JSON object: versions per model file")
    add_state_dir_option(ls)
    ls.set_defaults(handler=run_models_list)
    rb = sub.add_parser("rollback", help="make the previous trained model version current again")
    rb.add_argument("model", nargs="?", help="model file (default: <state dir>/models/sound.model)")
    rb.add_argument("--to", metavar="VERSION", help="a version from 'cadence models list' (default: the previous one)")
    add_state_dir_option(rb)
    rb.set_defaults(handler=run_models_rollback)
