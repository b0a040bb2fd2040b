"""`cadence retrain sound` on real clips and real training: a model that lost a label the
active one detects is not published unless asked, and a daemon that never switches is a
failure, not a success."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from daemon_helpers import REPO, SHARED
from device.components import sha256_file
from device.daemon.retrain import model_labels

SOUNDS = SHARED / "room-sounds-dev"
LABELS = ("crying_baby", "hammering", "background")


def cadence(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "device", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=900)


@pytest.mark.skipif(not SOUNDS.exists(), reason=f"shared data not found under {SHARED}")
def test_retrain_never_silently_drops_a_label(mosquitto, tmp_path):
    data, state = tmp_path / "data", tmp_path / "state"
    for label in LABELS:
        (data / label).mkdir(parents=True)
        for clip in sorted((SOUNDS / label).glob("*.flac"))[:2]:
            (data / label / clip.name).symlink_to(clip)
    model = state / "models" / "sound.model"
    trained = cadence("train", "sound", str(data), "--out", str(model), "--state-dir", str(state), "--augment", "0",
                      "--quiet")
    assert trained.returncode == 0, trained.stderr
    assert sorted(model_labels(model)) == sorted(LABELS)
    config = tmp_path / "cadence.toml"
    config.write_text(f'[device]\nid = "rt"\n[camera]\nenabled = false\n[microphone]\nenabled = false\n'
                      f'[storage]\nstate_dir = "{state}"\n[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n')
    # every crying_baby clip is gone (say, all of them were in a format training skips)
    for clip in (data / "crying_baby").iterdir():
        clip.unlink()
    (data / "crying_baby").rmdir()
    before = sha256_file(model)
    refused = cadence("retrain", "sound", "--foreground", "--config", str(config), "--data", str(data))
    assert refused.returncode == 1
    error = refused.stderr.strip().splitlines()[-1]  # (training's progress comes before it)
    assert error.startswith("cadence: error:") and "crying_baby" in error and "--allow-label-loss" in error
    assert sha256_file(model) == before  # the active model (and its alerts) stays
    # told to: published, loudly; but no daemon confirms the switch, and that is no success either
    allowed = cadence("retrain", "sound", "--foreground", "--config", str(config), "--data", str(data),
                      "--allow-label-loss", "--timeout", "2")
    assert "no longer detects crying_baby" in allowed.stdout, allowed.stdout + allowed.stderr
    assert sha256_file(model) != before and sorted(model_labels(model)) == ["background", "hammering"]
    assert allowed.returncode == 1 and "did not report switching" in allowed.stderr
    versions = [v for v in (model.parent / "sound.model.versions").iterdir() if v.is_file()]
    assert any(sha256_file(v) == before for v in versions)  # the previous model is kept for rollback


def test_failed_training_is_one_line_with_its_cause(tmp_path):
    # the trainer's own error (here: one label only) and that nothing changed, in one line
    data = tmp_path / "state" / "training-data" / "crying_baby"
    data.mkdir(parents=True)
    for clip in sorted((SOUNDS / "crying_baby").glob("*.flac"))[:2]:
        (data / clip.name).symlink_to(clip)
    config = tmp_path / "cadence.toml"
    config.write_text(f'[device]\nid = "rt"\n[storage]\nstate_dir = "{tmp_path / "state"}"\n')
    failed = cadence("retrain", "sound", "--foreground", "--config", str(config))
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, failed.stderr
    assert errors[0].startswith("cadence: error:") and "at least two labels" in errors[0]
    assert errors[0].endswith("the previous model is still active")
    assert not (tmp_path / "state" / "models" / "sound.model").exists()


def test_the_trainers_output_is_passed_on_whole(capfd):
    # a line the pipe delivers in pieces (here one byte at a time) keeps its characters; the error
    # line alone is taken out
    from device.daemon.retrain import _run_trainer

    child = ("import os, time\n"
             "for b in 'prog … ≥ 50%\\ncadence: error: nö data\\n'.encode():\n"
             "    os.write(2, bytes([b])); time.sleep(0.002)\n")
    code, said = _run_trainer([sys.executable, "-c", child])
    assert code == 0 and said == "nö data"
    assert capfd.readouterr().err == "prog … ≥ 50%\n"


def test_a_killed_trainer_is_said_so(tmp_path, monkeypatch):
    import signal

    from device.daemon import retrain

    monkeypatch.setattr(retrain, "_run_trainer", lambda cmd: (-signal.SIGKILL, None))
    config = tmp_path / "cadence.toml"
    config.write_text(f'[device]\nid = "rt"\n[storage]\nstate_dir = "{tmp_path / "state"}"\n')
    from device.daemon.config import load_config

    with pytest.raises(retrain.RetrainError, match=r"killed by signal 9 \(SIGKILL\); the previous model is still active"):
        retrain._train_foreground(load_config(config), "sound", tmp_path)


def _sound_model(labels: list[str], seed: int):
    import numpy as np

    from device.audio.featureprint import AudioFeaturePrint
    from device.learn.logistic import LogisticRegressionModel

    fp = AudioFeaturePrint()
    rng = np.random.default_rng(seed)
    d, k = fp.dimension, len(labels)
    model = LogisticRegressionModel(labels, np.zeros(d), np.ones(d), rng.normal(size=(d, k)), np.zeros(k),
                                    feature_scales=fp.scales)
    model.metadata["feature_print_fingerprint"] = fp.fingerprint()
    return model


def test_retrain_reads_the_candidate_once_and_publishes_what_it_checked(tmp_path, monkeypatch):
    # the candidate was read three times (loader, label check, publish): a slow SD card read thrice,
    # and a file changed between the reads was published without the checks
    import pathlib

    from device.daemon import retrain
    from device.daemon.config import load_config
    from device.learn import load_classifier

    config = tmp_path / "cadence.toml"
    config.write_text(f'[device]\nid = "rt"\n[storage]\nstate_dir = "{tmp_path / "state"}"\n')
    cfg = load_config(config)
    candidate = retrain.candidate_path(cfg.sound_model_path)
    swapped = tmp_path / "swapped.model"
    _sound_model(["a", "b", "planted"], 2).save(swapped)

    def trainer(cmd):
        _sound_model(["a", "b"], 1).save(candidate)
        return 0, None

    reads = []
    read_bytes = pathlib.Path.read_bytes

    def counting_read_bytes(self):
        data = read_bytes(self)
        if self == candidate:
            reads.append(self)
            candidate.write_bytes(read_bytes(swapped))  # the file changes after the first read
        return data

    monkeypatch.setattr(retrain, "_run_trainer", trainer)
    monkeypatch.setattr(pathlib.Path, "read_bytes", counting_read_bytes)
    retrain._train_foreground(cfg, "sound", tmp_path)
    monkeypatch.undo()
    assert len(reads) == 1
    assert load_classifier(cfg.sound_model_path).labels == ["a", "b"]  # what was checked, not what came later


@pytest.mark.parametrize("timeout", ["-5", "0", "nan", "inf"])
def test_retrain_refuses_an_impossible_timeout_before_training(tmp_path, capsys, timeout):
    # `--timeout -5` (or nan) trained and published first, then failed: "did not report switching to it
    # within -5 s" — minutes of training for a typo, and a failure that was none
    from device.cli import main

    config = tmp_path / "cadence.toml"
    config.write_text(f'[storage]\nstate_dir = "{tmp_path / "state"}"\n')
    (tmp_path / "state" / "exercise-data" / "a").mkdir(parents=True)
    assert main(["retrain", "exercise", "--config", str(config), "--foreground", "--timeout", timeout]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadence: error: --timeout") and "\n" not in err, err
    assert not (tmp_path / "state" / "models").exists()


def test_waiting_on_an_offline_daemon_says_so(mosquitto, tmp_path, capsys):
    # the daemon's retained availability was "offline" and retrain waited out its whole --timeout saying
    # only "is `cadence run` running?": it now says at once that the daemon is offline, and again in the error
    import paho.mqtt.publish as publish

    from device.daemon.config import load_config
    from device.daemon.retrain import RetrainError, wait_for_switch
    from device.daemon.topics import Topics

    config = tmp_path / "cadence.toml"
    config.write_text(f'[device]\nid = "offline-rt"\n[storage]\nstate_dir = "{tmp_path / "state"}"\n'
                      f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n')
    cfg = load_config(config)
    topic = Topics.for_config(cfg).availability
    publish.single(topic, Topics.offline, qos=1, retain=True, hostname="127.0.0.1", port=mosquitto.port)
    try:
        with pytest.raises(RetrainError, match=r"within 3 s \(the daemon is offline;") as info:
            wait_for_switch(cfg, "0" * 64, 3.0)
        assert "\n" not in str(info.value)
        assert "the daemon is offline (its availability on MQTT)" in capsys.readouterr().out
    finally:
        publish.single(topic, None, qos=1, retain=True, hostname="127.0.0.1", port=mosquitto.port)


def test_the_trainer_ends_with_a_killed_retrain(tmp_path):
    # kill -9 of a foreground `cadence retrain` left its `cadence train` child running for a while:
    # a retry then failed with "the feature cache is in use by another Cadence process"
    import signal
    import time

    marker = tmp_path / "child.pid"
    child = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    parent = ("import sys; sys.path.insert(0, %r); from device.daemon.retrain import _run_trainer; "
              "_run_trainer([sys.executable, '-c', %r])" % (str(REPO), child))
    proc = subprocess.Popen([sys.executable, "-c", parent])
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int(marker.read_text())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            try:
                if open(f"/proc/{pid}/stat").read().split()[2] == "Z":  # ended, not yet reaped
                    break
            except FileNotFoundError:  # gone meanwhile
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the trainer outlived the retrain that started it")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_no_broker_to_confirm_the_switch_is_a_failure(tmp_path):
    # an unreachable broker: the model is in place, but nobody confirmed the daemon runs it (exit status 1)
    import socket

    from device.daemon.config import load_config
    from device.daemon.retrain import RetrainError, wait_for_switch

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "cadence.toml"
    config.write_text(f'[storage]\nstate_dir = "{tmp_path / "state"}"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n')
    with pytest.raises(RetrainError, match=f"broker at 127.0.0.1:{port} cannot be reached") as info:
        wait_for_switch(load_config(config), "0" * 64, 3.0)
    assert "\n" not in str(info.value) and "new model is in place" in str(info.value)
