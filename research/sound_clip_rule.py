#!/usr/bin/env python3
"""Which label a whole clip gets: the windows' vote, or the events the device reports (issue 18 accuracy).

A clip's label (``cadence classify``'s "clip", ``cadence evaluate sound``'s
accuracy) is the highest mean window probability over its windows
(``ClipVote``), while what the device *reports* are events. With the reject
option a taught clip can fire its own event and still be labelled ``_other``
(most of its windows far from the label's centre: hammering), or carry no event
and be labelled a sound (a background clip voted ``crying_baby``). Rules:

* ``vote`` — the product: the highest mean window probability;
* ``events`` — the label the clip's events name most often, else the vote;
* ``reported`` — the label its events name most often, else "nothing to report".

Runs ``scripts/eval_sound.py`` (same arguments) with its clip label
(``Runner.clip_label``) replaced; everything else is the product path.

    nice -n 10 python research/sound_clip_rule.py --rule events -- --quantiles 0.90 --family closed --regimes all,10

Result (2026-12-07 night, closed family, clip grouping, seeds 0-400, reject 0.90; accuracy with all
clips / 10 per label): vote 0.978 / 0.892, events 0.980 / 0.892, reported 0.969 / 0.871 — the rule
moves one clip in 445; the clips the vote gets wrong are mostly wrong in their events too. Not
changed.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import eval_sound as es  # noqa: E402

from device.learn.openset import BACKGROUND  # noqa: E402

RULE = "vote"


def answer(vote: str | None, events: list[str]) -> str | None:
    """The clip's label under ``RULE`` (``eval_sound.Runner.clip_label``'s place)."""
    if RULE == "vote" or (RULE == "events" and not events):
        return vote
    if not events:
        return BACKGROUND
    return collections.Counter(events).most_common(1)[0][0]


def main() -> int:
    global RULE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rule", choices=("vote", "events", "reported"), default="events")
    args, rest = parser.parse_known_args()
    RULE = args.rule
    es.Runner.clip_label = staticmethod(answer)
    sys.argv = [sys.argv[0]] + [a for a in rest if a != "--"]
    return es.main()


if __name__ == "__main__":
    raise SystemExit(main())
