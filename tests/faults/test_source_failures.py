"""Camera and microphone failing and coming back under the real daemon.

`cadence run` (a subprocess, as under systemd: ``NOTIFY_SOCKET`` and
``WATCHDOG_USEC`` set) reads a real MJPEG-over-HTTP stream as its camera and a
private PulseAudio server's null-sink monitor as its microphone (PortAudio's
``pulse`` device). The stream server first drops its connection mid-stream,
then goes away with its port, and the sound server is killed with SIGKILL.
Checked: each pipeline is restarted with growing delays while the other keeps
running; ``WATCHDOG=1`` keeps coming while one source still flows, stops
while none does, and comes back with the sources; the daemon never exits.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time

import psutil
import pytest
from daemon_helpers import SHARED
from fault_helpers import report
from mjpeg_server import MjpegServer, jpeg_frames
from pulse_server import wait_for_pulse
from test_daemon_process import start_daemon, stop

DEVICE = "src"
PING = 0.5  # seconds between watchdog pings (WatchdogSec = 1 s)


class NotifyListener:
    """The systemd side of sd_notify: a datagram socket recording (time, message)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while self.running:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def pings(self, start: float, end: float) -> int:
        return sum(1 for t, m in list(self.messages) if m == "WATCHDOG=1" and start <= t <= end)

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


def restart_pulse(env: dict[str, str], argv: list[str]) -> subprocess.Popen:
    server_env = {k: v for k, v in env.items() if k != "PULSE_SERVER"}
    server = subprocess.Popen(argv, env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_pulse(env, what="the restarted pulseaudio")
    return server


@pytest.mark.timeout(150)
def test_camera_and_microphone_fail_and_come_back(mosquitto, recorder_factory, pulse, tmp_path):
    video = SHARED / "videos" / "jumping_jacks_11.mp4"
    if not video.is_file():
        pytest.skip(f"shared video not found at {video}")
    env, pulse_server = pulse
    pulse_argv = psutil.Process(pulse_server.pid).cmdline()
    jpegs = jpeg_frames(str(video), 50)
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    camera = MjpegServer(jpegs, frames=60, fps=25).__enter__()  # drops the connection after 60 frames
    port = camera.httpd.server_address[1]
    config = tmp_path / "cadence.toml"
    config.write_text(
        f'[device]\nid = "{DEVICE}"\n'
        f'[camera]\nsource = "{camera.url}"\ndownsample = 2\n'
        f'[microphone]\ndevice = "pulse"\n'
        f'[storage]\nstate_dir = "{tmp_path}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nstats_interval = 1\n'
    )
    rec = recorder_factory(mosquitto.port, [f"cadence/{DEVICE}/#"])
    proc = start_daemon(config, PULSE_SERVER=env["PULSE_SERVER"], PULSE_RUNTIME_PATH=env["PULSE_RUNTIME_PATH"],
                        HOME=env["HOME"], NOTIFY_SOCKET=listener.sock.getsockname(),
                        WATCHDOG_USEC=str(int(2 * PING * 1e6)), PYTHONFAULTHANDLER="1")
    restarted: subprocess.Popen | None = None
    phases: dict[str, int] = {}

    def pipelines() -> list[dict]:
        return rec.json(f"cadence/{DEVICE}/state/pipelines")

    def status(name: str) -> str:
        return (pipelines()[-1:] or [{}])[-1].get(name, {}).get("status", "")

    try:
        rec.wait_for(lambda: status("audio") == "running", timeout=60, what="microphone running")
        # 1. the stream drops its connection mid-stream: the camera source raises, the pipeline restarts
        rec.wait_for(lambda: any(p.get("vision", {}).get("restarts", 0) >= 1 for p in pipelines()), timeout=30,
                     what="vision restart after the stream dropped")
        camera.frames = None  # from now on the stream goes on for as long as it is read
        rec.wait_for(lambda: status("vision") == "running", timeout=30, what="vision running again")
        # 2. the stream URL goes away altogether (port closed): reopening fails, with growing delays
        camera.__exit__(None, None, None)
        t_camera_gone = time.monotonic()
        time.sleep(3.5)
        assert status("audio") == "running"
        phases["pings with only the microphone flowing"] = listener.pings(t_camera_gone + 0.5, time.monotonic())
        # 3. the sound server dies too: nothing flows, the watchdog is not pinged
        pulse_server.send_signal(signal.SIGKILL)
        pulse_server.wait(5)
        t_all_gone = time.monotonic()
        rec.wait_for(lambda: "restarting" in status("audio"), timeout=15, what="microphone lost")
        time.sleep(max(0.0, t_all_gone + 6 - time.monotonic()))
        # the microphone stalls for ≤ 2 s before it counts as lost, then a grace of two intervals
        phases["pings with nothing flowing"] = listener.pings(t_all_gone + 2 + 2 * 2 * PING + 0.2, time.monotonic())
        # 4. both come back (same URL, same sound server socket): pipelines resume, and the pings
        restarted = restart_pulse(env, pulse_argv)
        camera = MjpegServer(jpegs, frames=None, fps=25, port=port).__enter__()
        t_back = time.monotonic()
        rec.wait_for(lambda: status("audio") == "running" and status("vision") == "running", timeout=40,
                     what="both sources running again")
        t_running = time.monotonic()
        time.sleep(2)
        phases["pings after recovery"] = listener.pings(t_running, time.monotonic())
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(20) == 0
        except subprocess.TimeoutExpired:  # where is it stuck? faulthandler dumps every thread on SIGABRT
            proc.send_signal(signal.SIGABRT)
            proc.wait(10)
            raise
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        raise AssertionError(f"{exc}\ndaemon output (tail):\n{stop(proc)[-8000:]}") from None
    finally:
        output = stop(proc)
        camera.__exit__(None, None, None)
        listener.close()
        if restarted is not None:
            restarted.terminate()
            restarted.wait(10)
    assert "Traceback" not in output, output[-3000:]
    delays = {name: [float(d) for d in re.findall(rf"pipeline {name} failed \(.*?\); restarting in ([\d.]+)s", output)]
              for name in ("vision", "audio")}
    assert phases["pings with only the microphone flowing"] >= 4, (phases, output[-3000:])
    assert phases["pings with nothing flowing"] == 0, (phases, output[-3000:])
    assert phases["pings after recovery"] >= 2, (phases, output[-3000:])
    # the stream dropped once (1 s), then failed to reopen with doubling delays
    assert len(delays["vision"]) >= 3 and delays["vision"][1:] == sorted(delays["vision"][1:]), delays
    assert delays["vision"][2] == 2 * delays["vision"][1], delays
    assert len(delays["audio"]) >= 2 and delays["audio"] == sorted(delays["audio"]) and delays["audio"][-1] > delays["audio"][0], delays
    report(f"source failures: vision restarts {len(delays['vision'])} (delays {delays['vision']} s), "
          f"audio restarts {len(delays['audio'])} (delays {delays['audio']} s); watchdog pings: "
          f"{phases}; back {t_running - t_back:.1f} s after the sources returned; daemon never exited")
