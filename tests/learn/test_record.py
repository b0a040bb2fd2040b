"""``cadence record`` through a real sound server: PulseAudio with a null sink.

A private PulseAudio server (its own socket) is started; a known clip is played
into its null sink with ``paplay`` while ``cadence record`` records the sink's
monitor through PortAudio's ``pulse`` device.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]


def record(env, data: Path, label: str, play: Path | None, count: int, *extra: str) -> subprocess.CompletedProcess:
    """Run ``cadence record`` while ``play`` loops into the null sink."""
    env = dict(env, PYTHONPATH=str(REPO))
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            p = subprocess.Popen(["paplay", "-d", "cadence_null", str(play)], env=env)
            while p.poll() is None:
                if stop.wait(0.05):
                    p.terminate()
                    p.wait()
                    return

    player = threading.Thread(target=loop, daemon=True)
    if play is not None:
        player.start()
    try:
        return subprocess.run(
            [sys.executable, "-m", "device", "record", "sound", label, "--seconds", "1", "--count", str(count), "--data",
             str(data), "--device", "pulse", "--countdown", "0", *extra],
            env=env, capture_output=True, text=True, timeout=60,
        )
    finally:
        stop.set()
        if play is not None:
            player.join(timeout=30)


def test_record_writes_labelled_clips_from_the_microphone(pulse, tmp_path, dev_data):
    loud = max(sorted((dev_data / "vacuum_cleaner").glob("*.flac"))[:5], key=lambda p: float(np.abs(sf.read(p)[0]).mean()))
    data = tmp_path / "data"
    r = record(pulse[0], data, "vacuum", loud, 2)
    assert r.returncode == 0, r.stderr
    files = sorted((data / "vacuum").glob("*.wav"))
    assert len(files) == 2
    for f in files:
        info = sf.info(f)
        assert info.samplerate == 16000 and info.channels == 1
        assert abs(info.duration - 1.0) < 0.01
    played = min(np.sqrt(np.mean(sf.read(f)[0] ** 2)) for f in files)
    # the same recording with nothing playing is (digital) silence
    r = record(pulse[0], data, "silence", None, 1)
    assert r.returncode == 0, r.stderr
    quiet = np.sqrt(np.mean(sf.read(sorted((data / "silence").glob("*.wav"))[0])[0] ** 2))
    assert played > 1e-3 and quiet < played / 20
    # a session's clips form one recording, so they never straddle the validation split
    from device.learn.dataset import load_dataset

    clips = load_dataset(data).clips
    assert len({c.recording for c in clips if c.label == "vacuum"}) == 1


def test_record_rejects_bad_arguments(tmp_path):
    from device.cli import main

    for bad in ("../x", "_other", "a\nb", "", ".hidden"):
        assert main(["record", "sound", bad, "--data", str(tmp_path)]) == 1, bad
    assert main(["record", "sound", "knock", "--seconds", "0", "--data", str(tmp_path)]) == 1
    assert main(["record", "exercise", "x/y", "--data", str(tmp_path)]) == 1
    assert main(["record", "exercise", "squat", "--seconds", "1", "--data", str(tmp_path)]) == 1


def test_record_from_a_file_says_to_copy_it(tmp_path, capsys):
    # the daemon's [microphone] device may be a file; `record --device FILE` said "no audio input devices"
    from device.cli import main

    clip = tmp_path / "knock.wav"
    clip.write_bytes(b"RIFF")
    assert main(["record", "sound", "knock", "--device", str(clip), "--data", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err.strip()
    assert "record takes a microphone, not a file" in err and str(tmp_path / "data" / "knock") in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "data").exists()


def test_record_into_a_folder_that_cannot_be_made_is_one_line(pulse, tmp_path):
    # `--data` naming a file (or read-only storage): making DATA/LABEL/ raised NotADirectoryError, a traceback
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    r = record(pulse[0], taken, "knock", None, 1)
    assert r.returncode == 1
    err = r.stderr.strip()
    assert err.startswith("cadence: error:") and "\n" not in err and str(taken) in err, err
    assert taken.read_text() == "not a folder"


def test_quiet_clips_are_the_room_and_loud_or_gated_ones_are_not():
    from device.learn.quiet import QuietClips

    rng = np.random.default_rng(0)
    room = lambda: (10 ** (-50 / 20) * rng.standard_normal(16000 * 2)).astype(np.float32)  # noqa: E731 - -50 dBFS
    judge = QuietClips(min_db=-70.0)
    assert all(judge.judge(room())[0] for _ in range(3))
    knock = room()
    knock[8000:8800] += 0.5  # a loud blow in the second half-second block
    keep, why = judge.judge(knock)
    assert not keep and "above the room" in why
    assert judge.judge(room())[0]  # the room's level was not pulled up by the knock
    hush = QuietClips(min_db=-70.0)
    keep, why = hush.judge((1e-5 * rng.standard_normal(16000)).astype(np.float32))  # -100 dBFS
    assert not keep and "volume gate" in why


def test_record_background_auto_keeps_quiet_clips(pulse, tmp_path):
    """`record sound background --auto` through a real sound server: a steady quiet room is kept."""
    hum = tmp_path / "room.wav"
    sf.write(hum, (10 ** (-40 / 20) * np.random.default_rng(1).standard_normal(16000 * 30)).astype(np.float32), 16000)
    r = record(pulse[0], tmp_path / "data", "background", hum, 2, "--auto", "--minutes", "0.5")
    assert r.returncode == 0, r.stderr + r.stdout
    files = sorted((tmp_path / "data" / "background").glob("*.wav"))
    assert len(files) == 2 and "kept" in r.stdout


def test_record_auto_is_for_background_only(tmp_path, capsys):
    from device.cli import main

    assert main(["record", "sound", "knock", "--auto", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "background" in err and "\n" not in err
