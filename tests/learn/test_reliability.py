"""Power cuts (kill -9) and a full disk during training: nothing saved is lost.

Real processes are killed with SIGKILL at random moments while they extract
features, write checkpoints and publish the model; a real tmpfs of a few
hundred KiB stands in for a full SD card (or ENOSPC is injected where mounting
is not allowed).
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from learn_data import make_subset
from simple_print import SimpleFeaturePrint

from device.components import StorageFullError
from device.learn import load_classifier
from device.learn.cache import FeatureCache
from device.learn.dataset import load_dataset
from device.learn.registry import list_versions
from device.learn.training import Trainer, TrainingConfig

# only a guard against a hung child: a loaded 2-core machine makes a training take minutes
HANG = 600

REPO = Path(__file__).resolve().parents[2]
ENTRY = Path(__file__).resolve().parent / "train_entry.py"


def train_cmd(data: Path, out: Path, state: Path, *extra: str) -> list[str]:
    return [
        sys.executable, str(ENTRY), "train", "sound", str(data), "--out", str(out), "--state-dir", str(state),
        "--classifier", "network", "--max-epochs", "8", "--checkpoint-every", "1", "--chunk-size", "16", "--hidden-units", "16",
        "--patience", "100", "--seed", "3", *extra,
    ]


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(extra)
    return e


def model_arrays(path: Path) -> dict[str, np.ndarray]:
    return load_classifier(path).state()[1]


@pytest.mark.timeout(1200)  # three trainings and the kill rounds: slow on a busy machine, never hung
def test_kill9_during_extraction_checkpoints_and_publish(tmp_path, dev_data):
    data = make_subset(dev_data, tmp_path / "data", {"ball_drop": 20, "chair_drag": 20, "crying_baby": 10})
    fp = SimpleFeaturePrint()
    # reference: the same job, never interrupted
    ref_state, ref_out = tmp_path / "ref", tmp_path / "ref" / "sound.model"
    done = subprocess.run(train_cmd(data, ref_out, ref_state), env=env(), capture_output=True, text=True, timeout=HANG)
    assert done.returncode == 0, done.stderr

    state, out = tmp_path / "state", tmp_path / "models" / "sound.model"
    # a previous model is in place before the first power cut
    Trainer(fp, TrainingConfig(classifier="logistic"), state_dir=tmp_path / "other-state").train(load_dataset(data), out)
    slow = env(CADENCE_TEST_SLOW="0.01", CADENCE_TEST_SLOW_FSYNC="0.05", CADENCE_TEST_SHARD_SIZE="8")
    rng = random.Random(1234)
    kills = interrupted_writes = 0
    phases = []
    deadline = time.monotonic() + 60  # generous: a loaded CI machine makes each round slower
    while kills < 6 and time.monotonic() < deadline:
        proc = subprocess.Popen(
            train_cmd(data, out, state, "--resume", "--keep-versions", "20"),
            env=slow,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(1.0, 3.5))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
        progress = proc.stderr.read().decode(errors="replace").strip().splitlines()
        proc.stderr.close()
        phases.append(progress[-1].split("] ", 1)[-1][:40] if progress else "starting")
        # after every cut: a model still loads, and the cache is consistent
        model = load_classifier(out, feature_print=fp)
        assert model.labels == ["ball_drop", "chair_drag", "crying_baby"]
        cache = FeatureCache(state / "feature-cache", fp)
        assert cache.check_consistency() == []
        assert all(v["ok"] for v in list_versions(out))
        interrupted_writes += len(list((state / "feature-cache").rglob(".*.tmp"))) + len(list(out.parent.rglob(".*.tmp")))
        interrupted_writes += len(list((state / "checkpoints").rglob(".*.tmp")))
    assert kills >= 3
    print(f"{kills} kills, {interrupted_writes} writes cut in the middle; last progress before each: {phases}")
    # --resume finishes the job, with the same model as the uninterrupted run
    final = subprocess.run(train_cmd(data, out, state, "--resume", "--keep-versions", "20"), env=env(), capture_output=True, text=True, timeout=HANG)
    assert final.returncode == 0, final.stderr
    got, want = model_arrays(out), model_arrays(ref_out)
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert len(FeatureCache(state / "feature-cache", fp)) == 50
    # the logistic model trained first is still there to roll back to
    assert any(v["kind"].endswith("logistic_regression") for v in list_versions(out))


def fill(path: Path) -> None:
    """Write zeros until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def _tmpfs(path: Path, size_kib: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def test_full_disk_fails_clearly_and_keeps_the_previous_model(tmp_path, dev_data, monkeypatch):
    data = load_dataset(make_subset(dev_data, tmp_path / "data", {"ball_drop": 12, "crying_baby": 8}))
    disk = tmp_path / "disk"
    mounted = _tmpfs(disk, 256)
    try:
        out = disk / "models" / "sound.model"
        cfg = TrainingConfig(classifier="network", max_epochs=2, hidden_unit_counts=(8,), chunk_size=16)
        Trainer(SimpleFeaturePrint(), cfg, state_dir=tmp_path / "state").train(data, out)
        before = out.read_bytes()
        if mounted:
            # fill the tmpfs so that a bigger model does not fit
            fill(disk / "filler")
        else:  # no mount here: make every write to the disk folder fail the same way
            import device.components.persistence as persistence

            real = persistence.tempfile.mkstemp

            def full(*a, dir=None, **kw):
                if dir is not None and str(dir).startswith(str(disk)):
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real(*a, dir=dir, **kw)

            monkeypatch.setattr(persistence.tempfile, "mkstemp", full)
        bigger = TrainingConfig(classifier="network", max_epochs=2, hidden_unit_counts=(256,), chunk_size=16)
        with pytest.raises(StorageFullError, match="storage is full") as failed:
            Trainer(SimpleFeaturePrint(), bigger, state_dir=tmp_path / "state").train(data, out)
        assert out.read_bytes() == before
        assert str(failed.value).endswith("(--resume continues)")
        # as `cadence retrain` trains (resume="auto"), running again is all it takes
        with pytest.raises(StorageFullError, match="storage is full") as failed:
            Trainer(SimpleFeaturePrint(), bigger, state_dir=tmp_path / "state").train(data, out, resume="auto")
        assert "--resume" not in str(failed.value) and "continues from its last checkpoint" in str(failed.value)
        assert out.read_bytes() == before
        load_classifier(out)
        leftovers = [p.name for p in (disk / "models").rglob(".*.tmp")]
        assert leftovers == []
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=False)


def test_full_disk_message_from_the_command_line(tmp_path, dev_data):
    data = make_subset(dev_data, tmp_path / "data", {"ball_drop": 6, "crying_baby": 6})
    disk = tmp_path / "disk"
    if not _tmpfs(disk, 64):
        pytest.skip("cannot mount a tmpfs here (not root); covered by the injected ENOSPC test")
    try:
        fill(disk / "filler")
        r = subprocess.run(train_cmd(data, tmp_path / "m.model", disk / "state"), env=env(), capture_output=True,
                           text=True, timeout=HANG)
        assert r.returncode == 1
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("cadence: error:") and "storage is full" in last and "training stopped" in last
        assert "Traceback" not in r.stderr
    finally:
        subprocess.run(["umount", str(disk)], check=False)
