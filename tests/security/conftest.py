"""Fixtures for the security tests: a test PKI and a real mosquitto that
requires TLS client certificates *and* a password."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from security_helpers import MOSQUITTO, OPENSSL, PASSWD, free_port, make_pki, wait_port  # noqa: E402


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Path:
    if not (OPENSSL and PASSWD and MOSQUITTO):
        pytest.skip("needs openssl, mosquitto and mosquitto_passwd (apt: openssl mosquitto)")
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class MutualTLSBroker:
    port: int  # TLS: client certificate AND username/password required
    observer_port: int  # plain loopback listener for the test's own observer
    pki: Path


@pytest.fixture
def mtls_broker(pki, tmp_path):
    port, observer = free_port(), free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        "per_listener_settings true\nuser root\nlog_dest stderr\nlog_type error\n"
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pki}/passwd\n"
        f"cafile {pki}/ca.crt\ncertfile {pki}/server.crt\nkeyfile {pki}/server.key\n"
        "require_certificate true\n"
        f"listener {observer} 127.0.0.1\nallow_anonymous true\n"
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        wait_port(observer)
        yield MutualTLSBroker(port, observer, pki)
    finally:
        proc.terminate()
        proc.wait(10)
