"""The broker dies and comes back 10 times while the real daemon publishes.

`cadence run` (a subprocess) plays a video file as its camera and an audio
file (crying baby and vacuum cleaner, alternating) as its microphone, with a
real trained sound model, against a real mosquitto. The broker is killed with
SIGKILL (half of the times after hanging it with SIGSTOP first, so messages
are in flight without an acknowledgement) and restarted. A subscriber with a
persistent session records every ``sound`` and ``reps`` event. Checked: the
daemon never crashed (same process), every event it sent arrived except those
its bounded offline queue dropped (and it counted exactly those), events
arrive in order, and the retained state is right after the last restart.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf
from daemon_helpers import SHARED, wait_port
from fault_helpers import report
from test_daemon_process import start_daemon, stop

RESTARTS = int(os.environ.get("CADENCE_FAULT_BROKER_RESTARTS", "10"))
DEVICE = "faults"
QUEUE = 3  # the daemon's offline queue: small, so that long outages overflow it


def microphone_file(dev_data, path) -> None:
    """2 s of crying baby, 2 s of vacuum cleaner, … (clips not used for training)."""
    from device.audio.sources import load_audio

    pieces = []
    for i in range(4):
        for label in ("crying_baby", "vacuum_cleaner"):
            clips = sorted((dev_data / label).glob("*.flac"))
            samples = load_audio(clips[[0, 7, 8, 9][i]])
            pieces.append(np.resize(samples, 32000) if len(samples) < 32000 else samples[:32000])
    sf.write(path, np.concatenate(pieces), 16000)


def kill_broker(mosquitto, hang: bool) -> None:
    proc = mosquitto.process
    if hang:  # a wedged broker: connections stay up, nothing is acknowledged
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.7)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    mosquitto.process = None
    wait_port(mosquitto.port, open_=False)


def events(rec, sub: str) -> list[dict]:
    return rec.json(f"cadence/{DEVICE}/{sub}")


@pytest.mark.timeout(240)
def test_broker_killed_and_restarted_while_the_daemon_publishes(mosquitto, recorder_factory, trained_model,
                                                                 dev_data, tmp_path):
    video = SHARED / "videos" / "jumping_jacks_11.mp4"
    if not video.is_file():
        pytest.skip(f"shared video not found at {video}")
    state = tmp_path / "state"
    (state / "models").mkdir(parents=True)
    shutil.copy2(trained_model["model"], state / "models" / "sound.model")
    mic = tmp_path / "mic.wav"
    microphone_file(dev_data, mic)
    config = tmp_path / "cadence.toml"
    config.write_text(
        f'[device]\nid = "{DEVICE}"\n'
        f'[camera]\nsource = "{video}"\nloop = true\ndownsample = 2\nwindow = 45\nstride = 8\n'
        f'[microphone]\ndevice = "{mic}"\nloop = true\n'
        f'[sound]\ncooldown = 0\ndefault_threshold = 0.3\nwindow = 1.5\n'
        f'[storage]\nstate_dir = "{state}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nstats_interval = 1\nkeepalive = 5\n'
        f'reconnect_min = 1\nreconnect_max = 1\nqueue_size = {QUEUE}\n'
    )
    rec = recorder_factory(mosquitto.port, [f"cadence/{DEVICE}/#"], client_id="faults-recorder", clean=False)
    proc = start_daemon(config)
    pid = proc.pid
    outages = []
    try:
        rec.wait_for(lambda: events(rec, "sound") and events(rec, "reps"), timeout=90, what="first sound and reps")
        rng = np.random.default_rng(8)
        for i in range(1, RESTARTS + 1):
            hang = i % 2 == 0
            t0 = time.monotonic()
            kill_broker(mosquitto, hang)
            time.sleep(float(rng.uniform(0.5, 3.0)))  # the longer outages overflow the queue of 3
            mosquitto.start()
            rec.wait_for(lambda i=i: [s for s in events(rec, "stats") if s["mqtt_reconnects"] >= i and s["mqtt_queued"] == 0],
                         timeout=30, what=f"reconnect {i}")
            outages.append((round(time.monotonic() - t0, 1), hang))
            assert proc.poll() is None, f"the daemon died at restart {i}:\n{stop(proc)[-3000:]}"
        # settle: a stats message after the last reconnect, away from any event's timestamp
        time.sleep(2.5)
        stamps = sorted(e["timestamp"] for k in ("sound", "reps") for e in events(rec, k))
        final = next(s for s in reversed(events(rec, "stats")) if s["mqtt_reconnects"] == RESTARTS
                     and not any(abs(t - s["timestamp"]) < 0.005 for t in stamps))
        sent = final["sound_events"] + final["reps_messages"]
        dropped = final["mqtt_dropped"]

        def received() -> int:
            return sum(len({e["timestamp"] for e in events(rec, k) if e["timestamp"] < final["timestamp"]})
                       for k in ("sound", "reps"))

        got = rec.wait_for(lambda: received() == sent - dropped and received(), timeout=10,
                           what=f"{sent - dropped} events ({sent} sent, {dropped} dropped), have {received()}")
        assert proc.pid == pid and proc.poll() is None
        # QoS 1 is at-least-once: duplicates are allowed, reordering is not
        for k in ("sound", "reps"):
            order = list(dict.fromkeys(e["timestamp"] for e in events(rec, k)))
            assert order == sorted(order), f"{k} events out of order: {order}"
        # the retained state, as a newcomer sees it after the last restart
        late = recorder_factory(mosquitto.port, [f"cadence/{DEVICE}/availability", f"cadence/{DEVICE}/state/#"])
        late.wait_for(lambda: late.on(f"cadence/{DEVICE}/availability") and late.json(f"cadence/{DEVICE}/state/model")
                      and late.json(f"cadence/{DEVICE}/state/pipelines") and late.json(f"cadence/{DEVICE}/state/count"),
                      what="retained state")
        assert late.on(f"cadence/{DEVICE}/availability") == [b"online"]
        model = late.json(f"cadence/{DEVICE}/state/model")[-1]
        assert model["status"] == "active" and sorted(model["labels"]) == sorted(("background", "crying_baby", "vacuum_cleaner"))
        pipes = late.json(f"cadence/{DEVICE}/state/pipelines")[-1]
        assert pipes["audio"]["status"] == pipes["vision"]["status"] == "running"
        assert pipes["audio"]["restarts"] == pipes["vision"]["restarts"] == 0
        # the retained count is the newest one, not a stale message re-sent after a reconnect
        newest = rec.json(f"cadence/{DEVICE}/state/count")[-1]
        assert late.json(f"cadence/{DEVICE}/state/count")[-1] == newest
        assert newest["count"] == events(rec, "reps")[-1]["count"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        raise AssertionError(f"{exc}\ndaemon output (tail):\n{stop(proc)[-4000:]}") from None
    finally:
        output = stop(proc)
    assert "Traceback" not in output, output[-3000:]
    n_sound = len({e["timestamp"] for e in events(rec, "sound")})
    n_reps = len({e["timestamp"] for e in events(rec, "reps")})
    report(f"broker restarts: {RESTARTS} (SIGKILL; {sum(h for _, h in outages)} of them after SIGSTOP), "
          f"outages {[o for o, _ in outages]} s; events sent {sent} "
          f"(sound {final['sound_events']}, reps {final['reps_messages']}), received {got} distinct "
          f"(sound {n_sound}, reps {n_reps} by the end), dropped by the offline queue of {QUEUE}: {dropped}; "
          f"daemon pid {pid} unchanged")
