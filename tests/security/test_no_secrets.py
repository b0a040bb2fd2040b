"""The daemon never logs or publishes its MQTT password or TLS key.

``cadence run`` is started as a real process at DEBUG logging against the
mutual-TLS broker: once with the right password (then a bad command and a
reload of a broken config, so errors are logged and published), once with a
wrong password from the environment (so the refusal path runs). Everything
it prints and everything it publishes (watched on all topics) must be free of
the secrets; `cadence config check --json` masks the password too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from daemon_helpers import Recorder
from security_helpers import PASSWORD, REPO, USER

ENV_PASSWORD = "env-Secret-4471-wrong"
INT_PASSWORD = 90817263545  # a password mistyped as a number: the config error must not echo it


def write_config(path: Path, broker, state: Path, mqtt_extra: str, extra: str = "") -> Path:
    pki = broker.pki
    path.write_text(
        f'[device]\nid = "secrets"\n[camera]\nenabled = false\n[microphone]\nenabled = false\n'
        f'[storage]\nstate_dir = "{state}"\n[logging]\nlevel = "debug"\n{extra}'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nusername = "{USER}"\nreconnect_min = 1\nreconnect_max = 1\n'
        f"{mqtt_extra}"
        f'[mqtt.tls]\nca_file = "{pki}/ca.crt"\ncert_file = "{pki}/client.crt"\nkey_file = "{pki}/client.key"\n'
    )
    return path


def start(config: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "device", "run", "--config", str(config)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def finish(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    return out.decode(errors="replace")


def secrets_of(pki: Path) -> list[str]:
    key_body = "".join(line for line in (pki / "client.key").read_text().splitlines() if "-----" not in line)
    return [PASSWORD, ENV_PASSWORD, str(INT_PASSWORD), key_body, key_body[:40]]


def assert_clean(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret appears in {where}"


def test_password_and_key_never_logged_or_published(mtls_broker, tmp_path):
    secrets = secrets_of(mtls_broker.pki)
    observer = Recorder(mtls_broker.observer_port, ["#"])
    config = write_config(tmp_path / "cadence.toml", mtls_broker, tmp_path, f'password = "{PASSWORD}"\n')
    proc = start(config)
    try:
        observer.wait_for(lambda: observer.on("cadence/secrets/availability")[-1:] == [b"online"], timeout=30,
                          what="daemon online over mutual TLS")
        # a bad command: refused, logged and published on the error topic
        observer.publish("cadence/secrets/cmd/reload", b'{"what": "everything"}')
        observer.wait_for(lambda: observer.json("cadence/secrets/error"), what="bad command error")
        # a broken config (the password typed as a number) reloaded: refused, logged, published
        write_config(config, mtls_broker, tmp_path, f"password = {INT_PASSWORD}\n")
        observer.publish("cadence/secrets/cmd/reload", b'{"what": "config"}')
        observer.wait_for(lambda: any("keeping the running" in e["error"] for e in observer.json("cadence/secrets/error")),
                          what="reload error")
        errors = [e["error"] for e in observer.json("cadence/secrets/error")]
        assert any("mqtt.password" in e for e in errors), errors  # the key is named, its value is not
    finally:
        output = finish(proc)
        observer.close()
    assert "DEBUG" in output and "connected to 127.0.0.1" in output, output[-2000:]
    assert_clean(output, secrets, "the daemon's output")
    with observer.lock:
        published = [(topic, payload.decode(errors="replace")) for topic, payload, _ in observer.messages]
    assert len(published) > 5
    for topic, payload in published:
        assert_clean(topic + payload, secrets, f"MQTT message on {topic}")


def test_wrong_password_from_the_environment_is_not_logged(mtls_broker, tmp_path):
    secrets = secrets_of(mtls_broker.pki)
    config = write_config(tmp_path / "cadence.toml", mtls_broker, tmp_path, 'password_env = "CADENCE_TEST_PW"\n')
    proc = start(config, CADENCE_TEST_PW=ENV_PASSWORD)
    deadline = time.monotonic() + 30
    lines: list[str] = []
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline and not any("refused" in line for line in lines):
        chunk = proc.stdout.read()
        if chunk:
            lines += chunk.decode(errors="replace").splitlines()
        time.sleep(0.1)
    os.set_blocking(proc.stdout.fileno(), True)
    output = "\n".join(lines) + finish(proc)
    assert "refused" in output and "Not authorized" in output, output[-2000:]
    assert_clean(output, secrets, "the daemon's output")


def test_config_check_masks_the_password(mtls_broker, tmp_path):
    config = write_config(tmp_path / "cadence.toml", mtls_broker, tmp_path, f'password = "{PASSWORD}"\n')
    proc = subprocess.run([sys.executable, "-m", "device", "config", "check", str(config), "--json"], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert '"password": "**********"' in proc.stdout
    assert_clean(proc.stdout + proc.stderr, secrets_of(mtls_broker.pki), "cadence config check")
