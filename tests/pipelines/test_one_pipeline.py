"""One pipeline per sense: the daemon (with file sources), the CLI and the library
factory give the same outputs for a real video and a real recording.

- video: the sequence of counts of `cadence count --json`, of the daemon's vision
  pipeline and of `repetition_pipeline` are identical, and so are the settled counts;
- audio: the feature-print windows of a file are byte-identical however the stream
  is cut into chunks, and the sound events of `cadence classify --json`, of the
  daemon's audio pipeline and of `sound_pipeline` are identical.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from device.cli import main
from device.components import ModelSlot, collect
from device.daemon.config import parse_config

VIDEO = "videos/jumping_jacks_11.mp4"


def daemon_context(name: str, config: Any) -> Any:
    """The context the daemon's runner gives a pipeline (no broker, no supervisor loop)."""
    from device.daemon.model_holder import ModelHolder
    from device.daemon.pipelines import load_sound_model
    from device.daemon.runner import PipelineContext

    return PipelineContext(name, config, model=ModelHolder(config.sound_model_path, load_sound_model))


async def _daemon_outputs(factory: Any, ctx: Any) -> list[Any]:
    return [out async for out in factory(ctx)]


def test_video_counts_are_the_same_in_daemon_cli_and_library(shared: Path, tmp_path: Path, capsys) -> None:
    from device.daemon.pipelines import vision_pipeline
    from device.pose import PoseSettings, repetition_pipeline
    from device.video import read_video

    path = shared / VIDEO
    video = read_video(path)
    library = asyncio.run(collect(repetition_pipeline(PoseSettings(), video.fps)(video)))
    states = [(round(i.timestamp, 3), round(i.value.count, 3)) for i in library if not i.value.final]
    (final,) = [i.value for i in library if i.value.final]
    assert len(states) > 10 and final.count == 11  # the clip's annotated count

    assert main(["count", str(path), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    cli = [(round(d["time"], 3), round(d["count"], 3)) for d in lines if not d.get("final")]
    assert cli == states
    assert lines[-1]["final"] and lines[-1]["count"] == final.count

    config = parse_config({
        "storage": {"state_dir": str(tmp_path)},
        "camera": {"source": str(path), "realtime": False},
        "microphone": {"enabled": False},
    })
    updates = asyncio.run(_daemon_outputs(vision_pipeline, daemon_context("vision", config)))
    daemon = [(round(u.media_time, 3), round(u.count, 3)) for u in updates]
    assert daemon[:-1] == states
    # the settled count never goes below what was already published
    assert daemon[-1][1] == max(final.count, states[-1][1])


@pytest.fixture(scope="module")
def recording(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Quiet room, a baby crying, quiet, a vacuum cleaner, quiet: a 30-second real recording."""
    rate = 16000
    dev = shared / "room-sounds-dev"
    rng = np.random.default_rng(7)
    parts = [1e-4 * rng.standard_normal(4 * rate)]
    for label in ("crying_baby", "vacuum_cleaner"):
        clip, clip_rate = sf.read(sorted((dev / label).glob("*.flac"))[-1], dtype="float32")
        assert clip_rate == rate
        parts += [clip, 1e-4 * rng.standard_normal(5 * rate)]
    path = tmp_path_factory.mktemp("recording") / "room.flac"
    sf.write(path, np.concatenate(parts).astype(np.float32), rate, subtype="PCM_16")
    return path


def test_feature_windows_are_byte_identical_however_the_stream_is_cut(recording: Path) -> None:
    from device.audio.featureprint import AudioFeaturePrint
    from device.audio.sources import read_audio

    fp = AudioFeaturePrint()

    def windows(chunk: float) -> list[tuple[float, float, bytes]]:
        items = asyncio.run(collect(fp(read_audio(recording, chunk_duration=chunk))))
        return [(i.value.start, i.value.end, i.value.values.tobytes()) for i in items]

    daemon_chunks = windows(0.1)  # what a microphone (and the daemon's file source) delivers
    assert len(daemon_chunks) >= 15
    assert windows(0.37) == daemon_chunks
    assert windows(60.0) == daemon_chunks  # the whole file as one chunk


def test_sound_events_are_the_same_in_daemon_cli_and_library(recording: Path, sound_model: Path, tmp_path: Path,
                                                             capsys) -> None:
    from device.audio import SoundSettings
    from device.audio.pipeline import sound_pipeline
    from device.audio.sources import read_audio
    from device.daemon.pipelines import audio_pipeline, load_sound_model

    model = load_sound_model(sound_model)
    windows: list[Any] = []
    library = [i.value for i in asyncio.run(collect(
        sound_pipeline(SoundSettings(), ModelSlot(model), on_window=windows.append)(read_audio(recording))))]
    assert {e.label for e in library} >= {"crying_baby", "vacuum_cleaner"}, library

    assert main(["classify", str(recording), "--model", str(sound_model), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [e for e in out["events"]] == [e.to_dict() for e in library]
    assert [w["probabilities"] for w in out["windows"]] == [w.value.to_dict()["probabilities"] for w in windows]

    config = parse_config({
        "storage": {"state_dir": str(tmp_path)},
        "camera": {"enabled": False},
        "microphone": {"device": str(recording), "realtime": False},
        "sound": {"model": str(sound_model)},
    })
    ctx = daemon_context("audio", config)
    asyncio.run(ctx.model.check(force=True))
    daemon = asyncio.run(_daemon_outputs(audio_pipeline, ctx))
    assert daemon == library
