"""The microphone path for real: PulseAudio with a null sink as the sound card.

A private PulseAudio server (own socket, started and stopped here) gets a null
sink; a known dev clip is played into it with ``paplay`` while
``read_microphone`` records the sink's monitor through PortAudio's ``pulse``
device (ALSA pulse plugin from libasound2-plugins). The recording must
correlate with the file; killing the server must raise MicrophoneLost.
Recording runs in a subprocess so that PortAudio starts with this server's
address in its environment.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import correlate

HERE = Path(__file__).resolve().parent
RECORDER = HERE / "audio_mic_recorder.py"


def start_recorder(env, device, seconds, out, stall=2.0):
    proc = subprocess.Popen(
        [sys.executable, str(RECORDER), device, str(seconds), str(out), str(stall)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline().strip()
    return proc, line


def test_recording_through_pulseaudio_matches_the_played_file(pulse, tmp_path, dev_data):
    env, _ = pulse
    # the loudest of a few vacuum-cleaner clips: a long, broadband known signal
    candidates = sorted((dev_data / "vacuum_cleaner").glob("*.flac"))[:6]
    known = max(candidates, key=lambda p: float(np.sqrt(np.mean(sf.read(p)[0] ** 2))))
    reference, rate = sf.read(known, dtype="float32")
    assert rate == 16000
    out = tmp_path / "recorded.wav"
    proc, first = start_recorder(env, "pulse", len(reference) / rate + 1.5, out)
    assert first == "started", first + proc.stderr.read()
    player = subprocess.run(["paplay", "-d", "cadence_null", str(known)], env=env, capture_output=True, timeout=30)
    assert player.returncode == 0, player.stderr
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout + stderr
    stats = json.loads(stdout.strip().splitlines()[-1])
    assert stats["device"] == "pulse" and stats["native_rate"] > 0 and stats["dropped_chunks"] == 0
    assert stats["input_overflows"] >= 0 and stats["callbacks"] > 0
    recorded, rec_rate = sf.read(out, dtype="float32")
    assert rec_rate == 16000 and recorded.ndim == 1
    # find the played clip inside the recording and compare waveforms
    xcorr = correlate(recorded, reference, mode="valid", method="fft")
    lag = int(np.argmax(np.abs(xcorr)))
    segment = recorded[lag : lag + len(reference)]
    similarity = float(np.dot(segment, reference) / (np.linalg.norm(segment) * np.linalg.norm(reference) + 1e-12))
    assert abs(similarity) > 0.8, f"recording correlates only {similarity:.3f} with the played file"
    # before the clip the monitor was silent: the recording is the clip, not noise
    if lag > 1600:
        assert np.sqrt(np.mean(recorded[:lag] ** 2)) < 0.1 * np.sqrt(np.mean(reference**2))


def test_a_vanished_sound_server_raises_microphone_lost(pulse, tmp_path):
    env, server = pulse
    proc, first = start_recorder(env, "pulse", 30, tmp_path / "never.wav", stall=1.0)
    assert first == "started", first + proc.stderr.read()
    time.sleep(0.5)
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=5)
    t0 = time.monotonic()
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 3, stdout + stderr
    assert stdout.startswith("lost: audio input 'pulse'"), stdout
    assert time.monotonic() - t0 < 10


def test_unknown_device_is_a_clear_error(pulse, tmp_path):
    env, _ = pulse
    proc, first = start_recorder(env, "no-such-microphone", 1, tmp_path / "x.wav")
    proc.communicate(timeout=30)
    assert proc.returncode == 4
    assert first.startswith("error: no audio input device named 'no-such-microphone'") and "pulse" in first
