"""TLS and username/password against a real mosquitto with its own test CA."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from daemon_helpers import MOSQUITTO, free_port, wait_port
from device.daemon.config import parse_config
from device.daemon.mqtt import MqttLink

OPENSSL = shutil.which("openssl")
PASSWD = shutil.which("mosquitto_passwd")
pytestmark = pytest.mark.skipif(
    not (MOSQUITTO and OPENSSL and PASSWD), reason="needs mosquitto, mosquitto_passwd and openssl"
)


def run(*args: str, cwd) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture
def tls_broker(tmp_path):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(OPENSSL, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=cadence-test-ca", cwd=tmp_path)
    run(OPENSSL, "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=tmp_path)
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(OPENSSL, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=tmp_path)
    run(PASSWD, "-b", "-c", str(tmp_path / "passwd"), "kitchen", "s3cret", cwd=tmp_path)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {tmp_path}/passwd\n"
        f"cafile {tmp_path}/ca.crt\ncertfile {tmp_path}/server.crt\nkeyfile {tmp_path}/server.key\n"
        "user root\nlog_dest stderr\nlog_type error\n"
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    yield port, tmp_path
    proc.terminate()
    proc.wait(10)


def link_for(port, tmp_path, password_env="CADENCE_TEST_MQTT_PW"):
    cfg = parse_config({
        "device": {"id": "tls"},
        "mqtt": {"host": "127.0.0.1", "port": port, "username": "kitchen", "password_env": password_env,
                 "tls": {"ca_file": str(tmp_path / "ca.crt")}, "reconnect_min": 1, "reconnect_max": 1},
        "storage": {"state_dir": str(tmp_path)},
    })
    return MqttLink(cfg)


def test_tls_with_password_connects(tls_broker, monkeypatch):
    port, tmp_path = tls_broker
    monkeypatch.setenv("CADENCE_TEST_MQTT_PW", "s3cret")
    link = link_for(port, tmp_path)
    link.start()
    try:
        assert link.wait_connected(10), link.last_error
    finally:
        link.stop()


def test_wrong_password_is_refused_and_reported(tls_broker, monkeypatch):
    port, tmp_path = tls_broker
    monkeypatch.setenv("CADENCE_TEST_MQTT_PW", "wrong")
    link = link_for(port, tmp_path)
    link.start()
    try:
        deadline = time.monotonic() + 10
        while link.last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not link.connected
        assert link.last_error and "refused" in link.last_error and "\n" not in link.last_error
    finally:
        link.stop()
