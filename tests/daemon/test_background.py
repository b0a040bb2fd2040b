"""The daemon keeps its room's background for the next retrain ([sound] keep_background):
real room recordings played as the microphone through the real audio pipeline."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon_helpers import SHARED, until
from device.audio.events import SoundEvent
from device.components import ModelSlot, TemporalFeature
from device.daemon.background import AUTO_PREFIX, BackgroundFolder, BackgroundKeeper
from device.daemon.config import ConfigError, load_config, parse_config
from device.daemon.pipelines import audio_pipeline
from device.daemon.runner import PipelineContext
from device.learn.dataset import recording_id

SOUNDS = SHARED / "room-sounds-dev"
ROOM = SOUNDS / "background" / "background_1-79113-A.flac"  # a steady room, 5 s
CRY = SOUNDS / "crying_baby" / "crying_baby_1-211527-C.flac"  # much louder than the room
RATE = 16000

pytestmark = pytest.mark.skipif(not ROOM.exists() or not CRY.exists(), reason=f"shared data not found under {SOUNDS}")


def room_file(tmp_path: Path, seconds: int, *, cry_at: float | None = None) -> tuple[Path, np.ndarray]:
    """``seconds`` of the room (its recording played again and again), a baby crying
    for 1.5 s from ``cry_at``; the file and its samples."""
    room, _ = sf.read(ROOM, dtype="float32")
    samples = np.tile(room, -(-seconds * RATE // len(room)))[: seconds * RATE]
    if cry_at is not None:
        cry, _ = sf.read(CRY, dtype="float32")
        a = int(cry_at * RATE)
        samples[a:a + int(1.5 * RATE)] = cry[: int(1.5 * RATE)]
    path = tmp_path / "room.wav"
    sf.write(path, samples, RATE)
    return path, samples


def sections(tmp_path: Path, microphone: Path, *, loop: bool = False, **sound) -> dict:
    """The configuration: the file as the microphone (analysed as fast as it goes), consent given."""
    return {
        "storage": {"state_dir": str(tmp_path / "state")},
        "camera": {"enabled": False},
        "microphone": {"device": str(microphone), "realtime": False, "loop": loop},
        "sound": {"keep_background": True, "keep_background_every": 60, **sound},
    }


def context(tmp_path: Path, microphone: Path, model=None, **settings) -> PipelineContext:
    return PipelineContext("audio", parse_config(sections(tmp_path, microphone, **settings)), model=ModelSlot(model))


def folder(tmp_path: Path) -> Path:
    return tmp_path / "state" / "training-data" / "background"


def kept(tmp_path: Path) -> list[Path]:
    return sorted(folder(tmp_path).glob(f"{AUTO_PREFIX}_*.wav"))


async def run(ctx: PipelineContext) -> list:
    return [out async for out in audio_pipeline(ctx)]


async def test_quiet_room_is_kept_as_16k_wav_and_a_loud_sound_is_not(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cadence.daemon")
    # a baby cries in the first 5 s: not background; the next 5 s of the room are kept, then the spacing waits
    microphone, samples = room_file(tmp_path, 40, cry_at=2.0)
    ctx = context(tmp_path, microphone)
    await run(ctx)
    [clip] = kept(tmp_path)
    info = sf.info(clip)
    assert (info.samplerate, info.channels, info.format, info.frames) == (RATE, 1, "WAV", 5 * RATE)
    audio, _ = sf.read(clip, dtype="float32")
    assert np.allclose(audio, samples[5 * RATE:10 * RATE], atol=1e-3)  # the room after the cry, as the pipeline heard it
    assert ctx.counters["background_kept"] == 1
    assert sum("kept " in r.message and r.levelno == logging.INFO for r in caplog.records) == 1
    assert recording_id(clip) == clip.stem.rsplit("_", 1)[0]  # each kept clip is a recording of its own


async def test_the_cap_removes_the_oldest_kept_clips_only(tmp_path):
    microphone, _ = room_file(tmp_path, 30)
    background = folder(tmp_path)
    background.mkdir(parents=True)
    owner = [background / "my_room.flac", background / "background_20200101-120000_1.wav"]
    owner[0].write_bytes(ROOM.read_bytes())
    sf.write(owner[1], np.zeros(RATE, dtype=np.float32), RATE)
    old = background / f"{AUTO_PREFIX}_20200101-000000_1.wav"  # kept by an earlier run, long ago
    sf.write(old, np.zeros(RATE, dtype=np.float32), RATE)
    for path in [*owner, old]:
        os.utime(path, (1.5e9, 1.5e9))
    # the file played again and again (each pass a new segment): a clip at most every 60 s of audio
    ctx = context(tmp_path, microphone, loop=True, keep_background_max=2)
    task = asyncio.create_task(run(ctx))
    try:
        await until(lambda: ctx.counters.get("background_kept", 0) >= 3 or task.done(), timeout=120,
                    what="three clips kept")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert ctx.counters["background_kept"] >= 3
    clips = kept(tmp_path)
    assert len(clips) == 2 and old not in clips
    assert all(path.exists() for path in owner)  # the owner's files are never removed


async def test_the_daemon_counts_kept_clips_in_its_stats(mosquitto, recorder_factory, tmp_path):
    from device.daemon.supervisor import Supervisor
    from test_supervisor import config_for, running

    microphone, _ = room_file(tmp_path, 20)
    rec = recorder_factory(mosquitto.port, ["cadence/sup/stats"])
    config = config_for(mosquitto.port, tmp_path, **sections(tmp_path, microphone))
    async with running(Supervisor(config, factories={"audio": audio_pipeline})):
        await until(lambda: any(s["audio_background_kept"] == 1 for s in rec.json("cadence/sup/stats")),
                    what="stats saying one clip was kept", recorder=rec)
    assert len(kept(tmp_path)) == 1


class Hears:
    """A stand-in sound model that hears ``label`` in the windows starting before ``until`` (s)."""

    def __init__(self, label: str, until: float = float("inf")) -> None:
        self.label, self.until = label, until
        self.labels = sorted({label, "background"})

    def __call__(self, feature) -> dict[str, float]:
        return {self.label: 0.9, "background": 0.1} if feature.start < self.until else {"background": 1.0}


@pytest.mark.parametrize(("heard", "until", "clips"), [
    ("knock", float("inf"), 0),  # a knock that goes on: an event every max_duration, every window heard
    ("knock", 30.0, 1),  # once it stops, the room is kept
    ("background", float("inf"), 2),  # heard as the room: kept at 0 s and 60 s later
])
async def test_no_clip_with_a_sound_event_is_kept(tmp_path, heard, until, clips):
    microphone, _ = room_file(tmp_path, 90)
    ctx = context(tmp_path, microphone, model=Hears(heard, until))
    events = await run(ctx)
    assert bool(events) == (heard != "background")  # the room is quiet: only what the model heard spoils it
    assert len(kept(tmp_path)) == clips


def feed_room(keeper: BackgroundKeeper, segment: str = "mic") -> None:
    """5 s of the room in 0.1 s chunks: one whole clip."""
    room, _ = sf.read(ROOM, dtype="float32")
    for i in range(50):
        keeper.on_audio(TemporalFeature(room[i * 1600:(i + 1) * 1600], i * 0.1, segment))


def windows(keeper: BackgroundKeeper, ends, segment: str = "mic") -> None:
    for end in ends:
        keeper.on_feature(TemporalFeature(None, float(end), segment))


@pytest.mark.parametrize("event", [False, True])
async def test_a_clip_waits_for_every_event_that_could_overlap_it(tmp_path, event):
    """A sound that goes on is reported max_duration after it began: until the detector
    is past that, the clip waits; the event, when it comes, spoils it."""
    keeper = BackgroundKeeper(BackgroundFolder(tmp_path, 5), min_db=-70.0, max_duration=10.0, every=60.0)
    feed_room(keeper)
    windows(keeper, np.arange(3.0, 15.0, 1.5))  # the detector is past 13.5 s: a run from 4.9 s may still come
    assert keeper.waiting
    if event:
        keeper.on_event(TemporalFeature(SoundEvent("knock", 0.9, 4.5, 14.5), 15.0, "mic"))
        assert not keeper.waiting
    windows(keeper, [15.0, 16.5])  # now it is past 15 s (the clip's end + max_duration): settled
    assert not keeper.waiting
    await keeper.finish()
    assert len(list(tmp_path.glob("*.wav"))) == keeper.kept == (0 if event else 1)


@pytest.mark.parametrize("event", [False, True])
async def test_a_new_segment_settles_the_clip_after_the_old_ones_last_event(tmp_path, event):
    keeper = BackgroundKeeper(BackgroundFolder(tmp_path, 5), min_db=-70.0, max_duration=10.0, every=60.0)
    feed_room(keeper, "pass 1")
    windows(keeper, [3.0, 4.5, 5.0], "pass 1")  # the segment ended after 5 s
    windows(keeper, [3.0], "pass 2")  # the detector flushes pass 1 when this window reaches it...
    assert keeper.waiting
    if event:  # ... and says the run it had open
        keeper.on_event(TemporalFeature(SoundEvent("knock", 0.9, 3.5, 5.0), 5.0, "pass 1"))
    windows(keeper, [4.5], "pass 2")
    assert not keeper.waiting
    await keeper.finish()
    assert len(list(tmp_path.glob("*.wav"))) == keeper.kept == (0 if event else 1)


async def test_without_consent_nothing_is_written(tmp_path):
    microphone, _ = room_file(tmp_path, 90)
    ctx = context(tmp_path, microphone, keep_background=False)
    await run(ctx)
    assert not (tmp_path / "state" / "training-data").exists()
    assert "background_kept" not in ctx.counters


async def test_a_write_that_fails_is_one_log_line_and_listening_goes_on(tmp_path, caplog):
    """Two clips could not be written: one warning (not one every `keep_background_every` while the
    storage stays unusable), the second failure at debug level."""
    caplog.set_level(logging.DEBUG, logger="cadence.daemon")
    microphone, _ = room_file(tmp_path, 90)
    folder(tmp_path).parent.mkdir(parents=True)
    folder(tmp_path).write_text("not a folder")  # storage that cannot take the clip
    ctx = context(tmp_path, microphone)
    await run(ctx)  # the pipeline ran to the file's end
    failures = [r for r in caplog.records if "could not keep a background clip" in r.message]
    assert len(failures) == 2 and all("\n" not in r.getMessage() for r in failures)
    assert [r.levelno for r in failures] == [logging.WARNING, logging.DEBUG]
    assert ctx.counters["inputs"] >= 899 and "background_kept" not in ctx.counters


@pytest.mark.parametrize(("text", "key", "fragment"), [
    ("keep_background = \"yes\"\n", "sound.keep_background", "must be true or false"),
    ("keep_background_max = 0\n", "sound.keep_background_max", "must be from 1 to 10000 (got 0)"),
    ("keep_background_every = 10\n", "sound.keep_background_every", "sound.keep_background_every: must be from 60 to 86400 (got 10)"),
    ("keep_background_evry = 600\n", "sound.keep_background_evry", "unknown key"),
])
def test_settings_errors_are_one_line_naming_the_key(tmp_path, text, key, fragment):
    path = tmp_path / "cadence.toml"
    path.write_text("[sound]\n" + text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ") and key in message and fragment in message, message


def test_off_by_default():
    sound = parse_config({}).sound
    assert (sound.keep_background, sound.keep_background_max, sound.keep_background_every) == (False, 50, 600.0)


def test_the_cap_never_touches_files_that_only_look_like_kept_clips(tmp_path, caplog):
    # the owner's own file with the daemon's prefix, a link and a folder named exactly like a kept
    # clip: none of them was written by the daemon (was: all three counted as kept clips, the file
    # and the link removed by the cap, the folder a warning at every clip)
    caplog.set_level(logging.INFO, logger="cadence.daemon")
    background = tmp_path / "background"
    background.mkdir()
    target = tmp_path / "the owner's kitchen.wav"
    sf.write(target, np.zeros(RATE, dtype=np.float32), RATE)
    mine = background / f"{AUTO_PREFIX}_kitchen.wav"
    sf.write(mine, np.zeros(RATE, dtype=np.float32), RATE)
    link = background / f"{AUTO_PREFIX}_20200101-000000_1.wav"
    link.symlink_to(target)
    folder_named_like_a_clip = background / f"{AUTO_PREFIX}_20200101-000000_2.wav"
    folder_named_like_a_clip.mkdir()
    for path in (target, mine, folder_named_like_a_clip):
        os.utime(path, (1.5e9, 1.5e9))
    clock = iter([1.6e9, 1.6e9 + 600, 1.6e9 + 1200])
    kept_here = BackgroundFolder(background, 1, clock=lambda: next(clock))
    assert kept_here.clips() == []
    first, count = kept_here.keep(np.zeros(RATE, dtype=np.float32))
    os.utime(first, (1.6e9, 1.6e9))
    second, count = kept_here.keep(np.zeros(RATE, dtype=np.float32))
    assert count == 1 and kept_here.clips() == [second] and not first.exists()
    assert mine.exists() and link.is_symlink() and target.exists() and folder_named_like_a_clip.is_dir()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_folder_that_cannot_be_read_does_not_stop_the_listening(tmp_path, caplog, monkeypatch):
    # a failing SD card (EIO) under the training data: the sound events go on, the keeper says so
    # in a line (was: the audio pipeline failed at its start and was restarted again and again)
    import errno

    caplog.set_level(logging.INFO, logger="cadence.daemon")
    microphone, _ = room_file(tmp_path, 90)
    folder(tmp_path).mkdir(parents=True)
    scandir = os.scandir

    def failing(path="."):
        if Path(path) == folder(tmp_path):
            raise OSError(errno.EIO, "Input/output error", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", failing)
    ctx = context(tmp_path, microphone)
    await run(ctx)
    monkeypatch.undo()
    assert ctx.counters["inputs"] >= 899 and "background_kept" not in ctx.counters
    assert kept(tmp_path) == []  # nothing written while the cap could not be held
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lines and all("\n" not in line and "Input/output error" in line for line in lines), lines


def test_no_clip_is_kept_when_the_storage_is_nearly_full(tmp_path, monkeypatch):
    """A model's save and a retrain come first: below the reserve nothing is written (one clear reason)."""
    import collections
    import errno

    from device.daemon import background

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(background.shutil, "disk_usage", lambda path: usage(2**34, 2**34 - 100 * 2**20, 100 * 2**20))
    target = BackgroundFolder(tmp_path / "not yet made" / "background", 5)
    with pytest.raises(OSError) as caught:
        target.keep(np.zeros(RATE, dtype=np.float32))
    assert caught.value.errno == errno.ENOSPC and "only 100 MB free" in str(caught.value)
    assert not (tmp_path / "not yet made").exists()
    monkeypatch.setattr(background.shutil, "disk_usage", lambda path: usage(2**34, 0, background.MIN_FREE_BYTES))
    path, count = target.keep(np.zeros(RATE, dtype=np.float32))
    assert path.exists() and count == 1


def test_a_failing_storage_is_warned_again_after_a_clip_was_kept(tmp_path, caplog):
    """Warned once per run of failures: a kept clip ends the run, the next failure is warned again."""
    import concurrent.futures

    caplog.set_level(logging.DEBUG, logger="cadence.daemon")
    keeper = BackgroundKeeper(BackgroundFolder(tmp_path, 5), min_db=-70.0, max_duration=10.0, every=60.0)
    clip = type("Clip", (), {"why": "quiet"})()

    def done(result=None, error=None):
        future = concurrent.futures.Future()
        future.set_exception(error) if error else future.set_result(result)
        return future

    full = OSError(28, "only 100 MB free on its storage")
    for future in (done(error=full), done(error=full), done((tmp_path / "a.wav", 1)), done(error=full)):
        keeper._written(clip, future)
    levels = [r.levelno for r in caplog.records if "could not keep a background clip" in r.message]
    assert levels == [logging.WARNING, logging.DEBUG, logging.WARNING]
    assert keeper.kept == 1 and keeper.failing
