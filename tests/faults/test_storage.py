"""Full and read-only storage for training output, feature cache, registry and
the daemon's state folder, on real tmpfs mounts (skipped where mounting is not
allowed). Checked: one clear line naming the path and the problem, nothing
saved before is lost, and the daemon keeps running while its state folder is
read-only or full. (A full model folder during training is covered by
tests/learn/test_reliability.py.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from fault_helpers import REPO, cadence_env, link_subset, report, train_cmd
from test_daemon_process import start_daemon, stop

counts: dict[str, int] = {"full": 0, "read-only": 0, "checks": 0}


@contextlib.contextmanager
def tmpfs(path: Path, size_kib: int):
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (and mount); storage faults not injected here")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)
    counts["read-only" if mode == "ro" else "checks"] += mode == "ro"


def fill_up(folder: Path) -> None:
    """Take every free block of the file system (dd stops at ENOSPC)."""
    subprocess.run(["dd", "if=/dev/zero", f"of={folder / 'ballast'}", "bs=4k"], capture_output=True)
    assert shutil.disk_usage(folder).free < 8192
    counts["full"] += 1


def digest_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "ballast"}


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("cadence: error: "), result.stderr
    for fragment in fragments:
        assert fragment.lower() in last.lower(), (fragment, last)
    counts["checks"] += 1
    return last


def train(data: Path, out: Path, state: Path) -> subprocess.CompletedProcess:
    return subprocess.run(train_cmd(data, out, state, "--quiet"), cwd=REPO, env=cadence_env(),
                          capture_output=True, text=True, timeout=180)


@pytest.mark.timeout(240)
def test_training_with_full_and_read_only_storage(trained_model, dev_data, tmp_path):
    from device.audio.featureprint import AudioFeaturePrint
    from device.learn import load_classifier
    from device.learn.cache import FeatureCache
    from device.learn.registry import list_versions

    more = link_subset(dev_data, tmp_path / "more", 2, skip=10)  # clips the cache has not seen
    for label in more.iterdir():  # plus those it has
        for clip in (trained_model["data"] / label.name).iterdir():
            (label / clip.name).symlink_to(clip.resolve())
    fp = AudioFeaturePrint()  # what the daemon checks a model against (pipelines.load_sound_model)
    with tmpfs(tmp_path / "disk", 4096) as disk:
        state = disk / "state"
        shutil.copytree(trained_model["state"], state, symlinks=True)
        model = state / "models" / "sound.model"
        with FeatureCache(state / "feature-cache", fp) as cache:
            cached = len(cache)  # the trained clips (15) and the shipped negatives it was trained with
        assert cached >= 15
        saved = digest_tree(state)
        lines = []
        # 1. the feature cache's storage is full: new features cannot be cached
        fill_up(disk)
        lines.append(one_line_error(train(more, model, state), "storage is full"))
        assert digest_tree(state) == saved
        with FeatureCache(state / "feature-cache", fp) as cache:
            assert cache.check_consistency() == [] and len(cache) == cached
        (disk / "ballast").unlink()
        # 2. read-only storage: cache, checkpoints and model folder cannot be written
        remount(disk, "ro")
        lines.append(one_line_error(train(trained_model["data"], model, state), "read-only", str(state)))
        remount(disk, "rw")
        assert digest_tree(state) == saved
        # 3. only the model folder is read-only (the cache is elsewhere, and fine)
        with tmpfs(tmp_path / "models-ro", 1024) as models:
            shutil.copy2(trained_model["model"], models / "sound.model")
            before = (models / "sound.model").read_bytes()
            remount(models, "ro")
            lines.append(one_line_error(train(trained_model["data"], models / "sound.model", state), "read-only",
                                        str(models)))
            assert (models / "sound.model").read_bytes() == before
        load_classifier(model, feature_print=fp)
        assert all(v["ok"] for v in list_versions(model))
    report("storage (training): " + " | ".join(lines))


@pytest.mark.timeout(120)
def test_daemon_state_folder_read_only_and_full(mosquitto, recorder_factory, trained_model, dev_data, tmp_path):
    with tmpfs(tmp_path / "state", 1024) as state:
        (state / "models").mkdir()
        shutil.copy2(trained_model["model"], state / "models" / "sound.model")
        mic = sorted((dev_data / "crying_baby").glob("*.flac"))[0]
        config = tmp_path / "cadence.toml"
        config.write_text(
            f'[device]\nid = "ro"\n[camera]\nenabled = false\n[microphone]\ndevice = "{mic}"\nloop = true\n'
            f'[storage]\nstate_dir = "{state}"\n[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
        )
        rec = recorder_factory(mosquitto.port, ["cadence/ro/#"])
        proc = start_daemon(config)
        saved_file = state / "daemon-state.json"
        try:
            rec.wait_for(lambda: rec.json("cadence/ro/state/model") and rec.json("cadence/ro/state/model")[-1]["status"] == "active",
                         timeout=60, what="model active")
            def reset() -> None:  # answered with a new retained count; writes daemon-state.json
                n = len(rec.json("cadence/ro/state/count"))
                rec.publish("cadence/ro/cmd/reset_count", "{}")
                rec.wait_for(lambda: len(rec.json("cadence/ro/state/count")) > n, what="reset answered")

            reset()
            rec.wait_for(saved_file.exists, what="state file written")
            saved = saved_file.read_bytes()
            json.loads(saved)
            # the state folder goes read-only under the running daemon
            remount(state, "ro")
            reset()
            proc.send_signal(signal.SIGHUP)  # reload: config and model read again
            rec.wait_for(lambda: len(rec.json("cadence/ro/state/model")) >= 2, what="model reloaded")
            # back to writable, then full
            remount(state, "rw")
            fill_up(state)
            reset()
            assert proc.poll() is None
            assert rec.json("cadence/ro/state/model")[-1]["status"] == "active"
            pipes = rec.json("cadence/ro/state/pipelines")[-1]
            assert pipes["audio"]["status"] == "running" and pipes["audio"]["restarts"] == 0
            proc.send_signal(signal.SIGTERM)  # the last state write fails too: still a clean stop
            assert proc.wait(20) == 0
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            raise AssertionError(f"{exc}\ndaemon output (tail):\n{stop(proc)[-4000:]}") from None
        finally:
            output = stop(proc)
        assert saved_file.read_bytes() == saved  # the last good state file is intact
        assert (state / "models" / "sound.model").read_bytes() == trained_model["model"].read_bytes()
        # an SD card the kernel remounted read-only: the daemon still starts, with its model
        remount(state, "ro")
        n = len(rec.json("cadence/ro/state/model"))
        proc = start_daemon(config)
        try:
            rec.wait_for(lambda: len(rec.json("cadence/ro/state/model")) > n
                         and rec.json("cadence/ro/state/model")[-1]["status"] == "active", timeout=60,
                         what="model active on read-only storage")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            raise AssertionError(f"{exc}\ndaemon output (tail):\n{stop(proc)[-4000:]}") from None
        finally:
            output += stop(proc)
        assert saved_file.read_bytes() == saved
    assert "Traceback" not in output, output
    warnings = [ln for ln in output.splitlines() if "could not write daemon state" in ln]
    assert any(f"{saved_file}: could not write: Read-only file system" in ln for ln in warnings), output[-3000:]
    assert any(f"{saved_file}: storage is full" in ln for ln in warnings), output[-3000:]
    counts["checks"] += 1
    report(f"storage (daemon): {len(warnings)} state writes refused, daemon kept running, and started again "
           f"on the read-only state folder; messages: "
          f"{' | '.join(sorted({w.split(': ', 1)[-1] for w in warnings}))}; "
          f"fault counts so far: {counts}")
