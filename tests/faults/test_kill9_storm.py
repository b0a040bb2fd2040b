"""kill -9 at random moments, 50 times, across training and the daemon.

`cadence train sound --resume` (the real feature print, a small network,
checkpoints every epoch) and `cadence run` (an audio file as its microphone,
hot-reloading the model the trainer publishes, a real mosquitto) run side by
side; one of them, chosen at random, is killed with SIGKILL at a random
moment and started again. After every kill: the current model loads with the
daemon's own loader, every kept version in the registry loads, the feature
cache is consistent, every checkpoint loads, and the daemon's state file (if
any) is valid JSON. At the end a last `--resume` run completes and a fresh
daemon starts with the current model. ``CADENCE_FAULT_KILLS`` sets the number
of kills (default 50).
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fault_helpers import REPO, cadence_env, link_subset, report, train_cmd
from test_daemon_process import start_daemon, stop

KILLS = int(os.environ.get("CADENCE_FAULT_KILLS", "50"))
DEVICE = "storm"


def trainer_stage(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    if not lines:
        return "starting"
    last = lines[-1]
    for key, stage in (("extracting", "extracting features"), ("final training", "final training"),
                       ("epoch", "training epochs or final refit"), ("model written", "after publishing")):
        if key in last:
            return stage
    return "other"


def daemon_stage(output: str) -> str:
    if "cadence running" in output:
        return "running, after a hot reload" if output.count(" loaded (") > 1 else "running"
    return "model loaded, starting" if " loaded (" in output else "starting"


@pytest.mark.timeout(420)
def test_kill9_storm_training_and_daemon(mosquitto, recorder_factory, trained_model, dev_data, tmp_path):
    from device.components import load_state, sha256_file
    from device.audio.featureprint import AudioFeaturePrint
    from device.learn import load_classifier
    from device.learn.cache import FeatureCache
    from device.learn.registry import list_versions
    from device.learn.checkpoint import CHECKPOINT_KIND

    data = link_subset(dev_data, tmp_path / "data", 8, skip=2)
    state = tmp_path / "state"
    model = state / "models" / "sound.model"
    model.parent.mkdir(parents=True)
    shutil.copy2(trained_model["model"], model)  # a model is in place before the first power cut
    mic = sorted((dev_data / "crying_baby").glob("*.flac"))[0]
    config = tmp_path / "cadence.toml"
    config.write_text(
        f'[device]\nid = "{DEVICE}"\n[camera]\nenabled = false\n'
        f'[microphone]\ndevice = "{mic}"\nloop = true\n'
        f'[sound]\nreload_check_seconds = 0.2\n'
        f'[storage]\nstate_dir = "{state}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
    )
    fp = AudioFeaturePrint()  # what the daemon checks a model against (pipelines.load_sound_model)
    labels = sorted(("background", "crying_baby", "vacuum_cleaner"))
    logs = tmp_path / "logs"
    logs.mkdir()
    rng = random.Random(int(os.environ.get("CADENCE_FAULT_SEED", "50")))
    trainer: subprocess.Popen | None = None
    trainer_log = logs / "train-0.log"
    daemon = None
    runs = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    cut_writes = finished = 0

    def start_trainer() -> subprocess.Popen:
        nonlocal trainer_log
        runs["train"] += 1
        trainer_log = logs / f"train-{runs['train']}.log"
        with open(trainer_log, "w") as err:
            return subprocess.Popen(train_cmd(data, model, state, "--resume", "--keep-versions", "3"), cwd=REPO,
                                    env=cadence_env(), stdout=subprocess.DEVNULL, stderr=err)

    def check(after: str) -> None:
        nonlocal cut_writes
        loaded = load_classifier(model, feature_print=fp)  # what the daemon does at start
        assert sorted(loaded.taught_labels) == labels, after
        saved = state / "daemon-state.json"
        if saved.exists():
            json.loads(saved.read_text())
        if not after.startswith("train"):
            return  # the trainer is still running: its files are its own until it dies
        versions = list_versions(model)
        assert all(v["ok"] for v in versions), (after, versions)  # none yet: a model copied in by hand
        with FeatureCache(state / "feature-cache", fp) as cache:
            assert cache.check_consistency() == [], after
        for ckpt in (state / "checkpoints").rglob("checkpoint-*.cadence"):
            load_state(ckpt, kind=CHECKPOINT_KIND)
        cut_writes += sum(1 for p in state.rglob(".*.tmp"))

    t_start = time.monotonic()
    try:
        kills = 0
        while kills < KILLS:
            if trainer is None or trainer.poll() is not None:
                if trainer is not None:
                    assert trainer.returncode == 0, trainer_log.read_text()[-2000:]
                    finished += 1
                trainer = start_trainer()
            if daemon is None:
                runs["daemon"] += 1
                daemon = start_daemon(config)
            time.sleep(rng.uniform(0.3, 4.0))
            if rng.random() < 0.5:
                if trainer.poll() is not None:
                    continue  # it finished first: start another run
                os.kill(trainer.pid, signal.SIGKILL)
                trainer.wait(10)
                stages[f"train: {trainer_stage(trainer_log)}"] += 1
                trainer = None
                victim = "train"
            else:
                assert daemon.poll() is None, stop(daemon)[-3000:]
                daemon.send_signal(signal.SIGKILL)
                output = stop(daemon)
                assert "Traceback" not in output, output[-3000:]
                stages[f"daemon: {daemon_stage(output)}"] += 1
                daemon = None
                victim = "daemon"
            kills += 1
            check(f"{victim} kill {kills}")
        storm_seconds = time.monotonic() - t_start
        if trainer is not None:
            if trainer.poll() is None:
                trainer.wait(120)
            else:
                finished += trainer.returncode == 0
            assert trainer.returncode == 0, trainer_log.read_text()[-2000:]
        if daemon is not None:
            stop(daemon)
        # the job completes with --resume after the storm
        done = subprocess.run(train_cmd(data, model, state, "--resume", "--keep-versions", "3", "--quiet"), cwd=REPO,
                              env=cadence_env(), capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        check("train: final run")
        shipped = json.loads(Path(f"{model}.report.json").read_text())["shipped_negatives"]
        # the owner's clips, and the shipped clips used (negatives, and examples of labels named like a shipped kind)
        used = shipped["clips"] + sum(shipped["examples"].values()) if shipped else 0
        with FeatureCache(state / "feature-cache", fp) as cache:
            assert len(cache) == sum(1 for _ in data.rglob("*.flac")) + used
        # a fresh daemon starts with the current, valid model
        rec = recorder_factory(mosquitto.port, [f"cadence/{DEVICE}/state/model"])
        daemon = start_daemon(config)
        digest = sha256_file(model)
        state_model = rec.wait_for(lambda: [m for m in rec.json(f"cadence/{DEVICE}/state/model")
                                            if m.get("sha256") == digest and m.get("status") == "active"],
                                   timeout=60, what="fresh daemon with the current model")
        assert sorted(state_model[-1]["labels"]) == labels
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0
    finally:
        for proc in (trainer, daemon):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if daemon is not None:
            stop(daemon)
    versions = list_versions(model)
    report(f"kill -9 storm: {kills} kills in {storm_seconds:.0f} s ({runs['train']} training runs, "
          f"{finished} finished on their own; {runs['daemon']} daemon starts); where: {dict(sorted(stages.items()))}; "
          f"temporary files of writes cut short (cleaned up later): {cut_writes}; after every kill the model, "
          f"{len(versions)} kept versions, the cache and the checkpoints loaded; the final --resume run and a "
          f"fresh daemon start succeeded")
