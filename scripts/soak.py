#!/usr/bin/env python3
"""Soak test: the real daemon for a long time, watching for leaks and stalls.

    .venv/bin/python scripts/soak.py [--minutes 20] [--interval 5] [--out DIR] [--plot PNG]

Trains a small sound model (``cadence train sound`` on a few dev clips),
starts a real mosquitto (the daemon's own :class:`EmbeddedBroker` code, on a
free loopback port), and runs ``cadence run`` as a separate process with a
looping video file as its camera (paced like a camera, so frames are dropped
when pose inference is busy) and a looping audio file of held-out clips as
its microphone. Meanwhile it subscribes to the device's topics, counting
``reps``, ``sound`` and ``stats`` messages, and samples the daemon process
(RSS, open file descriptors, threads, CPU) plus the queue figures of its
``stats`` messages every ``--interval`` seconds.

It writes ``samples.csv``, ``summary.json``, ``daemon.log`` and a PNG of RSS
and CPU over time to ``--out``, prints a summary table, and exits 1 if any
check failed:

- RSS above ``--max-rss-mb`` (target: 200 MB with both pipelines);
- RSS growth after warm-up: a robust (Theil–Sen) slope over the samples
  after the warm-up (the second half by default) above
  ``--max-rss-slope`` MB/hour *and* a fitted rise over that span above
  ``--rss-noise-mb`` (allocator noise: heaps and arenas move by a few MB
  without leaking, so short runs need a floor);
- growth of open file descriptors or threads after warm-up;
- a stall: no ``reps``/``sound``/``stats`` message (or no new frames/audio
  in ``stats``) for longer than its limit, or none in the first
  ``--start-grace`` seconds;
- events dropped from the offline queue, a queue that does not drain,
  the daemon dying, not stopping cleanly on SIGTERM, or a traceback in its log.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / ".." / "shared" / "data"
DEVICE_ID = "soak"
LABELS = ("crying_baby", "vacuum_cleaner", "background")
KINDS = ("reps", "sound", "stats")
CSV_FIELDS = (
    "t", "rss_mb", "fds", "threads", "cpu_percent", "reps", "sound", "stats", "frames", "fps",
    "frames_dropped", "audio_chunks", "audio_overflows", "mqtt_queued", "mqtt_dropped", "load1",
)


# --------------------------------------------------------------------------- inputs


def prepare(data: Path, work: Path, *, video: str, per_label: int = 6) -> tuple[Path, Path, Path]:
    """Train a small sound model and build the microphone file; returns (video, audio, state dir).

    Clip 0 and the last clip of each label are kept out of training and
    become the microphone's input (30 s, looped).
    """
    import numpy as np
    import soundfile as sf

    video_path = data / "videos" / video
    sounds = data / "room-sounds-dev"
    if not video_path.is_file() or not sounds.is_dir():
        raise SystemExit(f"soak: shared data not found ({video_path}, {sounds})")
    clips = {label: sorted((sounds / label).glob("*.flac")) for label in LABELS}
    train = work / "training-data"
    for label, files in clips.items():
        (train / label).mkdir(parents=True, exist_ok=True)
        for f in files[1 : per_label + 1]:
            link = train / label / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
    state = work / "state"
    model = state / "models" / "sound.model"
    result = subprocess.run(
        [sys.executable, "-m", "device", "train", "sound", str(train), "--out", str(model),
         "--state-dir", str(state), "--seed", "0", "--quiet"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600,
    )
    if result.returncode != 0:
        raise SystemExit(f"soak: training the sound model failed: {(result.stderr or result.stdout).strip()[-500:]}")
    held_out = [clips[label][i] for i in (0, -1) for label in ("crying_baby", "background", "vacuum_cleaner")]
    parts = []
    for f in held_out:
        samples, rate = sf.read(f, dtype="float32", always_2d=True)
        if rate != 16000:
            raise SystemExit(f"soak: {f} is {rate} Hz, expected 16 kHz")
        parts.append(samples.mean(axis=1))
    audio = work / "microphone.wav"
    sf.write(audio, np.concatenate(parts), 16000, subtype="PCM_16")
    return video_path, audio, state


def write_config(work: Path, *, video: Path, audio: Path, state: Path, port: int, stats_interval: float) -> Path:
    config = work / "cadence.toml"
    config.write_text(
        f'[device]\nid = "{DEVICE_ID}"\n'
        f'[camera]\nsource = "{video}"\nloop = true\n'
        f'[microphone]\ndevice = "{audio}"\nloop = true\n'
        f'[storage]\nstate_dir = "{state}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nstats_interval = {stats_interval}\n'
    )
    return config


# --------------------------------------------------------------------------- watching


class Arrivals:
    """Counts the device's messages by kind and keeps their arrival times and the latest stats."""

    def __init__(self, port: int, t0: float) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.t0 = t0
        self.times: dict[str, list[float]] = {kind: [] for kind in (*KINDS, "error", "availability")}
        self.errors: list[str] = []
        self.stats: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"soak-{os.getpid()}")
        self.client.on_connect = lambda c, *a: c.subscribe(f"cadence/{DEVICE_ID}/#", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise SystemExit("soak: could not subscribe to the broker")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        kind = msg.topic.split("/", 2)[-1]
        if kind not in self.times:
            return
        with self.lock:
            self.times[kind].append(time.monotonic() - self.t0)
            if kind == "stats":
                self.stats = json.loads(msg.payload)
            elif kind == "error" and len(self.errors) < 20:
                self.errors.append(msg.payload.decode(errors="replace")[:300])

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {kind: len(times) for kind, times in self.times.items()}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def sample(proc: Any, arrivals: Arrivals, t: float) -> dict[str, Any]:
    with proc.oneshot():
        rss = proc.memory_info().rss / 2**20
        fds = proc.num_fds()
        threads = proc.num_threads()
        cpu = proc.cpu_percent(None)
    counts = arrivals.counts()
    with arrivals.lock:
        stats = dict(arrivals.stats)
    return {
        "t": round(t, 2), "rss_mb": round(rss, 2), "fds": fds, "threads": threads, "cpu_percent": round(cpu, 1),
        **{kind: counts[kind] for kind in KINDS},
        **{key: stats.get(key) for key in ("frames", "fps", "frames_dropped", "audio_chunks", "audio_overflows",
                                           "mqtt_queued", "mqtt_dropped")},
        "load1": round(os.getloadavg()[0], 2),
    }


# --------------------------------------------------------------------------- analysis


def longest_flat(rows: list[dict[str, Any]], key: str, end: float) -> float:
    """Longest time (s) that ``key`` did not increase once it first appeared (from sampled rows)."""
    since, last, worst = None, None, 0.0
    for row in rows:
        value = row.get(key)
        if value is None:
            continue
        if last is None or value > last:
            since, last = row["t"], value
        worst = max(worst, row["t"] - since)
    return worst if since is not None else end


def analyse(rows: list[dict[str, Any]], times: dict[str, list[float]], duration: float, limits: dict[str, float]) -> dict[str, Any]:
    """Figures and failures from the samples and message arrival times (seconds since the daemon started)."""
    from scipy.stats import theilslopes

    failures: list[str] = []
    if len(rows) < 4:
        return {"samples": len(rows), "failures": [f"only {len(rows)} samples"], "passed": False}
    warm_from = limits["warmup_fraction"] * duration
    warm = [r for r in rows if r["t"] >= warm_from] or rows[-2:]
    early = [r for r in rows if r["t"] < warm_from] or rows[:1]
    rss = [r["rss_mb"] for r in rows]
    t_warm = [r["t"] for r in warm]
    slope = theilslopes([r["rss_mb"] for r in warm], t_warm)[0] if len(warm) >= 2 else 0.0
    slope_h = slope * 3600
    rise = slope * (t_warm[-1] - t_warm[0])
    out: dict[str, Any] = {
        "samples": len(rows),
        "duration_s": round(duration, 1),
        "warmup_s": round(warm_from, 1),
        "rss_start_mb": rss[0],
        "rss_after_warmup_mb": warm[0]["rss_mb"],
        "rss_end_mb": rss[-1],
        "rss_max_mb": max(rss),
        "rss_slope_mb_per_hour": round(slope_h, 2),
        "rss_fitted_rise_mb": round(rise, 2),
    }
    if out["rss_max_mb"] > limits["max_rss_mb"]:
        failures.append(f"RSS reached {out['rss_max_mb']:.1f} MB (limit {limits['max_rss_mb']:g} MB)")
    if slope_h > limits["max_rss_slope"] and rise > limits["rss_noise_mb"]:
        failures.append(f"RSS grows after warm-up: {slope_h:.1f} MB/hour ({rise:.1f} MB over "
                        f"{t_warm[-1] - t_warm[0]:.0f} s; limit {limits['max_rss_slope']:g} MB/hour "
                        f"beyond {limits['rss_noise_mb']:g} MB of noise)")
    for key, limit in (("fds", limits["max_fd_growth"]), ("threads", limits["max_thread_growth"])):
        before, after = max(r[key] for r in early), max(r[key] for r in warm)
        out[f"{key}_warmup_max"], out[f"{key}_after_max"], out[f"{key}_end"] = before, after, rows[-1][key]
        if after - before > limit:
            failures.append(f"{key} grew after warm-up: {before} -> {after} (limit +{limit:g})")
    cpu = [r["cpu_percent"] for r in rows[1:]]
    out["cpu_mean_percent"] = round(sum(cpu) / len(cpu), 1) if cpu else None
    out["cpu_max_percent"] = max(cpu) if cpu else None
    loads = [r["load1"] for r in rows]
    out["load1_mean"] = round(sum(loads) / len(loads), 2)
    # stalls: the first message within the start grace, then no gap over the kind's limit
    for kind in KINDS:
        arrived = times.get(kind, [])
        out[f"{kind}_messages"] = len(arrived)
        if not arrived:
            failures.append(f"no {kind} message in {duration:.0f} s")
            continue
        gaps = [b - a for a, b in zip(arrived, arrived[1:])] + [max(0.0, duration - arrived[-1])]
        out[f"{kind}_first_s"] = round(arrived[0], 1)
        out[f"{kind}_max_gap_s"] = round(max(gaps), 1)
        if arrived[0] > limits["start_grace"]:
            failures.append(f"first {kind} message only after {arrived[0]:.0f} s (limit {limits['start_grace']:g} s)")
        if max(gaps) > limits[f"max_{kind}_gap"]:
            failures.append(f"{kind} stalled: no message for {max(gaps):.0f} s (limit {limits[f'max_{kind}_gap']:g} s)")
    for key, what in (("frames", "frames analysed"), ("audio_chunks", "audio chunks")):
        flat = longest_flat(rows, key, duration)
        out[f"{key}_longest_flat_s"] = round(flat, 1)
        if flat > limits["max_input_gap"]:
            failures.append(f"{what} stalled: no increase for {flat:.0f} s (limit {limits['max_input_gap']:g} s)")
    last = rows[-1]
    for key in ("frames", "frames_dropped", "audio_chunks", "audio_overflows", "mqtt_dropped"):
        out[key] = last.get(key)
    fps = [r["fps"] for r in warm if r.get("fps") is not None]
    out["fps_mean_after_warmup"] = round(sum(fps) / len(fps), 2) if fps else None
    queued = [r["mqtt_queued"] for r in warm if r.get("mqtt_queued") is not None]
    out["mqtt_queued_max"] = max(queued) if queued else None
    if out["mqtt_dropped"]:
        failures.append(f"{out['mqtt_dropped']} events dropped from the MQTT queue")
    if queued and max(queued) > limits["max_mqtt_queue"]:
        failures.append(f"MQTT queue held {max(queued)} events while connected (limit {limits['max_mqtt_queue']:g})")
    out["failures"] = failures
    out["passed"] = not failures
    return out


# --------------------------------------------------------------------------- output


def plot(rows: list[dict[str, Any]], summary: dict[str, Any], path: Path, max_rss: float) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("soak: matplotlib not installed (pip install 'cadence[plot]'): no plot", file=sys.stderr)
        return False
    minutes = [r["t"] / 60 for r in rows]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 4.2), sharex=True, dpi=90)
    ax1.plot(minutes, [r["rss_mb"] for r in rows], lw=1.2, label="RSS")
    warm = summary.get("warmup_s", 0) / 60
    if "rss_slope_mb_per_hour" in summary:
        end = minutes[-1]
        start_rss = summary["rss_end_mb"] - summary["rss_slope_mb_per_hour"] / 60 * (end - warm)
        ax1.plot([warm, end], [start_rss, summary["rss_end_mb"]], "--", lw=1,
                 label=f"fit after warm-up: {summary['rss_slope_mb_per_hour']:+.1f} MB/h")
    ax1.axhline(max_rss, color="red", lw=0.8, ls=":", label=f"limit {max_rss:g} MB")
    ax1.set_ylim(0, max(max_rss, summary.get("rss_max_mb", 0)) * 1.1)
    ax1.set_ylabel("RSS (MB)")
    ax1.legend(loc="lower right", fontsize=7)
    ax2.plot(minutes, [r["cpu_percent"] for r in rows], lw=0.8, color="tab:orange")
    ax2.set_ylabel("CPU (% of a core)")
    ax2.set_xlabel("minutes since the daemon started")
    for ax in (ax1, ax2):
        ax.axvline(warm, color="grey", lw=0.6)
        ax.grid(alpha=0.3)
    ax1.set_title("cadence run: looping video + audio files, real mosquitto", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def print_summary(s: dict[str, Any]) -> None:
    rows = [
        ("samples / duration", f"{s['samples']} / {s.get('duration_s', 0) / 60:.1f} min (warm-up {s.get('warmup_s', 0):.0f} s)"),
        ("RSS start / after warm-up / max / end",
         f"{s.get('rss_start_mb')} / {s.get('rss_after_warmup_mb')} / {s.get('rss_max_mb')} / {s.get('rss_end_mb')} MB"),
        ("RSS slope after warm-up", f"{s.get('rss_slope_mb_per_hour')} MB/h (fitted rise {s.get('rss_fitted_rise_mb')} MB)"),
        ("fds warm-up max / after / end", f"{s.get('fds_warmup_max')} / {s.get('fds_after_max')} / {s.get('fds_end')}"),
        ("threads warm-up max / after / end",
         f"{s.get('threads_warmup_max')} / {s.get('threads_after_max')} / {s.get('threads_end')}"),
        ("CPU mean / max (% of a core)", f"{s.get('cpu_mean_percent')} / {s.get('cpu_max_percent')} (load avg {s.get('load1_mean')})"),
        ("frames analysed / dropped", f"{s.get('frames')} / {s.get('frames_dropped')} (fps after warm-up {s.get('fps_mean_after_warmup')})"),
        ("audio chunks / overflows", f"{s.get('audio_chunks')} / {s.get('audio_overflows')}"),
        ("MQTT queued max / dropped", f"{s.get('mqtt_queued_max')} / {s.get('mqtt_dropped')}"),
    ]
    for kind in KINDS:
        rows.append((f"{kind} messages (first / max gap)",
                     f"{s.get(f'{kind}_messages')} ({s.get(f'{kind}_first_s')} s / {s.get(f'{kind}_max_gap_s')} s)"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    for failure in s["failures"]:
        print(f"FAIL: {failure}")
    print("soak: PASSED" if s["passed"] else "soak: FAILED")


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    import psutil

    from device.daemon.broker import EmbeddedBroker, find_mosquitto
    from device.daemon.children import die_with_parent

    if find_mosquitto() is None:
        raise SystemExit("soak: mosquitto is not installed (apt install mosquitto)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cadence-soak-") as tmp:
        work = Path(tmp)
        video, audio, state = prepare(Path(args.data), work, video=args.video)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        broker = EmbeddedBroker(port)
        asyncio.run(broker.start())
        config = write_config(work, video=video, audio=audio, state=state, port=port, stats_interval=args.stats_interval)
        log_path = out / "daemon.log"
        duration = args.minutes * 60
        failures: list[str] = []
        rows: list[dict[str, Any]] = []
        daemon = None
        arrivals = None
        try:
            t0 = time.monotonic()
            arrivals = Arrivals(port, t0)
            with open(log_path, "wb") as log:
                daemon = subprocess.Popen(
                    [sys.executable, "-m", "device", "run", "--config", str(config)],
                    cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent(),  # a killed soak (CI timeout) must not leave the daemon running
                )
            proc = psutil.Process(daemon.pid)
            proc.cpu_percent(None)
            print(f"soak: daemon pid {daemon.pid}, {args.minutes:g} min, sampling every {args.interval:g} s; "
                  f"camera {video.name} (looped), microphone {audio.name} (looped), mosquitto on 127.0.0.1:{port}",
                  flush=True)
            with open(out / "samples.csv", "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
                writer.writeheader()
                tick = t0
                next_report = t0 + 60
                while True:
                    tick += args.interval
                    if tick > t0 + duration:
                        break
                    time.sleep(max(0.0, tick - time.monotonic()))
                    if daemon.poll() is not None:
                        failures.append(f"daemon exited with status {daemon.returncode} after {time.monotonic() - t0:.0f} s")
                        break
                    row = sample(proc, arrivals, time.monotonic() - t0)
                    rows.append(row)
                    writer.writerow(row)
                    f.flush()
                    if time.monotonic() >= next_report:
                        next_report += 60
                        print(f"  {row['t'] / 60:5.1f} min  RSS {row['rss_mb']:6.1f} MB  fds {row['fds']:3d}  "
                              f"threads {row['threads']:3d}  CPU {row['cpu_percent']:5.1f}%  reps {row['reps']}  "
                              f"sound {row['sound']}  stats {row['stats']}  dropped frames {row['frames_dropped']}",
                              flush=True)
            elapsed = time.monotonic() - t0
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                try:
                    status = daemon.wait(30)
                except subprocess.TimeoutExpired:
                    status = None
                    failures.append("daemon did not stop within 30 s of SIGTERM")
                if status not in (0, None):
                    failures.append(f"daemon exited with status {status} on SIGTERM")
            times = {kind: list(v) for kind, v in arrivals.times.items()}
            errors = list(arrivals.errors)
        finally:
            if daemon is not None and daemon.poll() is None:
                daemon.kill()
                daemon.wait()
            if arrivals is not None:
                arrivals.close()
            broker.stop_sync()
    limits = {key: getattr(args, key) for key in (
        "warmup_fraction", "max_rss_mb", "max_rss_slope", "rss_noise_mb", "max_fd_growth", "max_thread_growth",
        "start_grace", "max_reps_gap", "max_sound_gap", "max_stats_gap", "max_input_gap", "max_mqtt_queue")}
    summary = analyse(rows, times, min(elapsed, duration), limits)
    log_text = log_path.read_text(errors="replace")
    if "Traceback" in log_text:
        failures.append(f"traceback in the daemon log ({log_path})")
    summary["error_messages"] = errors
    summary["daemon_log_warnings"] = sum(" WARNING " in line for line in log_text.splitlines())
    summary["failures"] = failures + summary["failures"]
    summary["passed"] = not summary["failures"]
    summary["limits"] = limits
    summary["video"], summary["interval_s"] = args.video, args.interval
    plot_path = Path(args.plot) if args.plot else out / "soak.png"
    if rows and plot(rows, summary, plot_path, args.max_rss_mb):
        summary["plot"] = str(plot_path)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="how long the daemon runs")
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "cadence-soak"),
                    help="folder for samples.csv, summary.json, daemon.log, soak.png (default: %(default)s)")
    ap.add_argument("--plot", default=None, help="PNG of RSS and CPU over time (default OUT/soak.png)")
    ap.add_argument("--data", default=str(DATA), help="the shared data folder (videos/, room-sounds-dev/)")
    ap.add_argument("--video", default="jumping_jacks_12.mp4", help="clip under DATA/videos used as the camera")
    ap.add_argument("--stats-interval", type=float, default=5.0, help="the daemon's mqtt.stats_interval")
    g = ap.add_argument_group("thresholds")
    g.add_argument("--warmup-fraction", type=float, default=0.5, help="share of the run before growth is judged")
    g.add_argument("--max-rss-mb", type=float, default=200.0)
    g.add_argument("--max-rss-slope", type=float, default=10.0, help="MB/hour after warm-up")
    g.add_argument("--rss-noise-mb", type=float, default=3.0, help="fitted RSS rise after warm-up never judged a leak")
    g.add_argument("--max-fd-growth", type=float, default=2)
    g.add_argument("--max-thread-growth", type=float, default=2)
    g.add_argument("--start-grace", type=float, default=60.0, help="seconds to the first message of each kind")
    g.add_argument("--max-reps-gap", type=float, default=60.0, help="seconds")
    g.add_argument("--max-sound-gap", type=float, default=90.0, help="seconds (the microphone file loops every 30 s)")
    g.add_argument("--max-stats-gap", type=float, default=None, help="seconds (default 3 stats intervals + 5)")
    g.add_argument("--max-input-gap", type=float, default=30.0, help="seconds without new frames or audio in stats")
    g.add_argument("--max-mqtt-queue", type=float, default=10, help="events waiting in the offline queue")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.max_stats_gap is None:
        args.max_stats_gap = 3 * args.stats_interval + 5
    if args.minutes <= 0 or args.interval <= 0:
        print("soak: --minutes and --interval must be > 0", file=sys.stderr)
        return 2
    # SIGTERM (a CI timeout, `kill`) ends the run through the clean-up below:
    # the daemon and the broker must not outlive the soak
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("soak: terminated"))
    summary = run(args)
    print_summary(summary)
    print(f"soak: samples, summary, daemon log and plot in {args.out}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
