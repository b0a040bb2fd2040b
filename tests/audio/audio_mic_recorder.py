"""Record from a microphone with read_microphone (run as a script by the tests).

    python audio_mic_recorder.py DEVICE SECONDS OUT.wav [STALL_TIMEOUT]

Prints ``started`` after the first chunk, then one JSON line with the
microphone's counters; exit status 3 and ``lost: …`` on MicrophoneLost.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from device.audio.sources import (  # noqa: E402
    SAMPLE_RATE,
    MicrophoneConfig,
    MicrophoneError,
    MicrophoneLost,
    read_microphone,
)


async def record(device: str, seconds: float, out: Path, stall: float) -> int:
    mic = read_microphone(MicrophoneConfig(device=device, stall_timeout=stall))
    got: list[np.ndarray] = []
    total = 0
    try:
        async for chunk in mic:
            if not got:
                print("started", flush=True)
            got.append(chunk.value)
            total += len(chunk.value)
            if total >= seconds * SAMPLE_RATE:
                break
    except MicrophoneLost as exc:
        print(f"lost: {exc}", flush=True)
        print(json.dumps(mic.stats()), flush=True)
        return 3
    except MicrophoneError as exc:
        print(f"error: {exc}", flush=True)
        return 4
    sf.write(out, np.concatenate(got), SAMPLE_RATE, subtype="FLOAT")
    print(json.dumps(mic.stats()), flush=True)
    return 0


if __name__ == "__main__":
    stall = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0
    sys.exit(asyncio.run(record(sys.argv[1], float(sys.argv[2]), Path(sys.argv[3]), stall)))
