"""`cadence retrain exercise` with a running daemon (real broker, real models, real pose
data): the owner's new exercise is added to the shipped ones and the daemon switches to
it; a model that lost one of the active model's exercises is refused unless asked.

Training is the real ``cadence train exercise DATA --out MODEL --state-dir DIR``."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon_helpers import REPO, SHARED, until
from device.components import sha256_file
from device.daemon.config import parse_config
from device.daemon.pipelines import load_exercise_model, shipped_exercise_model
from device.daemon.retrain import REQUEST, RetrainError, retrain
from device.daemon.supervisor import Supervisor
from device.pose.posefile import save_poses
from exercise_helpers import inverted, sequences
from test_supervisor import running

pytestmark = pytest.mark.skipif(not (SHARED / "repcount-dev").exists(), reason=f"shared data not found under {SHARED}")


def cadence(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "device", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)


def record(data: Path, label: str, exercise: str, takes: int = 3) -> None:
    """``takes`` recordings of a new exercise (an upside-down shipped one), as `cadence pose --out` writes them."""
    for i, (_, poses) in enumerate([s for s in sequences() if s[0] == exercise][:takes]):
        save_poses(data / label / f"take{i}.npy", inverted(poses), {"fps": 30.0, "source": f"{exercise} upside down"})


@pytest.mark.timeout(1200)  # three real trainings: slow on a busy machine, never hung
async def test_retrain_exercise_adds_the_owners_exercise_and_never_silently_drops_one(
        mosquitto, recorder_factory, tmp_path):
    data = tmp_path / "exercise-data"  # where `cadence record exercise` puts recordings
    record(data, "inverted_jack", "jumping_jack")
    cfg = parse_config({
        "device": {"id": "rt"}, "camera": {"recognize_exercise": True}, "microphone": {"enabled": False},
        "exercise": {"reload_check_seconds": 0.2}, "storage": {"state_dir": str(tmp_path)},
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "reconnect_min": 1, "reconnect_max": 1},
    })
    model = cfg.exercise_model_path
    rec = recorder_factory(mosquitto.port, ["cadence/rt/#", "homeassistant/sensor/cadence_rt/#"])
    sup = Supervisor(cfg, factories={}, exercise_loader=load_exercise_model, shipped_exercise_model=shipped_exercise_model)

    def state() -> dict:
        return rec.json("cadence/rt/state/exercise_model")[-1]

    async with running(sup):
        shipped = (await until(lambda: rec.json("cadence/rt/state/exercise_model"), what="model", recorder=rec))[-1]
        assert shipped["shipped"] is True
        # taught over SSH: the new exercise is added to the shipped ones, and the daemon switches to it
        assert await asyncio.to_thread(retrain, cfg, "exercise", foreground=True, timeout=120) == 0
        # retrain saw the daemon's new state on its own connection; this recorder may get it a moment later
        taught = (await until(lambda: [s for s in rec.json("cadence/rt/state/exercise_model")
                                       if s.get("sha256") == sha256_file(model)], what="the taught model's state",
                              recorder=rec))[-1]
        assert taught["shipped"] is False and taught["sha256"] == sha256_file(model)
        assert "inverted_jack" in taught["labels"] and set(shipped["labels"]) <= set(taught["labels"])
        await until(lambda: rec.json("homeassistant/sensor/cadence_rt/reps_inverted_jack/config"),
                    what="the new exercise's count in Home Assistant", recorder=rec)
        # its recordings went missing, another exercise is taught: that model would lose inverted_jack
        shutil.rmtree(data / "inverted_jack")
        record(data, "inverted_squat", "squat")
        with pytest.raises(RetrainError) as refused:
            await asyncio.to_thread(retrain, cfg, "exercise", foreground=True, timeout=120)
        message = str(refused.value)
        assert "inverted_jack" in message and "--allow-label-loss" in message and "\n" not in message
        assert sha256_file(model) == taught["sha256"] and state()["sha256"] == taught["sha256"]  # still active
        # told to: published, and the daemon switches; Home Assistant loses that count
        assert await asyncio.to_thread(retrain, cfg, "exercise", foreground=True, timeout=120,
                                       allow_label_loss=True) == 0
        await until(lambda: "inverted_squat" in state()["labels"], what="the new model's state", recorder=rec)
        assert "inverted_jack" not in state()["labels"]
        await until(lambda: rec.on("homeassistant/sensor/cadence_rt/reps_inverted_jack/config")[-1:] == [b""],
                    what="the lost exercise's count removed", recorder=rec)
    versions = [v for v in (model.parent / "exercise.model.versions").iterdir() if v.is_file()]
    assert any(sha256_file(v) == taught["sha256"] for v in versions)  # the previous model kept for rollback


def test_retrain_exercise_without_data_says_how_to_make_some(tmp_path):
    config = tmp_path / "cadence.toml"
    config.write_text(f'[device]\nid = "rt"\n[storage]\nstate_dir = "{tmp_path}"\n')
    done = cadence("retrain", "exercise", "--foreground", "--config", str(config))
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("cadence: error:")
    assert str(tmp_path / "exercise-data") in error[0] and "cadence record exercise" in error[0]
    # the systemd unit's run trains what `cadence retrain` asked for
    cfg = parse_config({"storage": {"state_dir": str(tmp_path)}})
    (tmp_path / REQUEST).write_text('{"what": "exercise", "data": "%s"}' % (tmp_path / "nowhere"))
    with pytest.raises(RetrainError, match="nowhere: no training data .*cadence record exercise"):
        retrain(cfg, None, foreground=True, wait=False)
    assert not (tmp_path / REQUEST).exists()  # taken once
