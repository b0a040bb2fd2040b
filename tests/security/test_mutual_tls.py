"""Mutual TLS + username/password against a real mosquitto that requires both:
the daemon's MQTT link connects with the right client certificate and is
refused, with one line saying why, without one or with a foreign one."""

from __future__ import annotations

import time

import pytest

from daemon_helpers import Recorder
from security_helpers import PASSWORD, USER
from device.daemon.config import ConfigError, parse_config
from device.daemon.mqtt import MqttLink
from device.daemon.publisher import Publisher


def link_for(broker, tmp_path, *, client: str | None = "client", password: str = PASSWORD, ca: str = "ca") -> MqttLink:
    tls = {"ca_file": str(broker.pki / f"{ca}.crt")}
    if client is not None:
        tls.update(cert_file=str(broker.pki / f"{client}.crt"), key_file=str(broker.pki / f"{client}.key"))
    config = parse_config({
        "device": {"id": "mtls"},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "username": USER, "password": password, "tls": tls,
                 "reconnect_min": 1, "reconnect_max": 1},
        "storage": {"state_dir": str(tmp_path)},
    })
    return Publisher().open(config)  # the daemon's link: its will, birth and subscriptions


def refusal(link: MqttLink, timeout: float = 10.0) -> str:
    """Start ``link``, expect it not to connect; the one-line error it reports."""
    link.start()
    try:
        deadline = time.monotonic() + timeout
        while link.last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not link.connected
        assert link.last_error, "the link reported no error"
        assert "\n" not in link.last_error
        return link.last_error
    finally:
        link.stop()


def test_client_certificate_and_password_connect_and_publish(mtls_broker, tmp_path):
    observer = Recorder(mtls_broker.observer_port, ["cadence/mtls/#"])
    link = link_for(mtls_broker, tmp_path)
    link.start()
    try:
        assert link.wait_connected(10), link.last_error
        link.publish("cadence/mtls/sound", '{"label":"knock"}')
        observer.wait_for(lambda: observer.json("cadence/mtls/sound") == [{"label": "knock"}], what="event over mTLS")
        assert observer.on("cadence/mtls/availability")[-1:] == [b"online"]
    finally:
        link.stop()
        observer.close()


def test_without_a_client_certificate_is_refused(mtls_broker, tmp_path):
    error = refusal(link_for(mtls_broker, tmp_path, client=None))
    assert "127.0.0.1" in error and "certificate" in error.lower(), error


def test_certificate_of_another_ca_is_refused(mtls_broker, tmp_path):
    error = refusal(link_for(mtls_broker, tmp_path, client="rogue-client"))
    # TLS 1.3 checks the client certificate after the client has finished its side of the
    # handshake: the client reads either the broker's "unknown ca" alert or, if the broker
    # has already closed, an EOF (seen 1 in ~10 runs). Both are the broker refusing it.
    refused = "unknown ca" in error.lower() or "closed the connection before accepting it" in error
    assert "127.0.0.1" in error and refused, error


def test_right_certificate_wrong_password_is_refused(mtls_broker, tmp_path):
    error = refusal(link_for(mtls_broker, tmp_path, password="not-the-password"))
    assert "refused" in error and "not-the-password" not in error, error


def test_server_certificate_not_signed_by_the_configured_ca_is_refused(mtls_broker, tmp_path):
    error = refusal(link_for(mtls_broker, tmp_path, ca="rogue-ca"))
    assert "certificate verify failed" in error, error


@pytest.mark.parametrize(
    ("tls", "key"),
    [({"cert_file": "client.crt"}, "mqtt.tls.cert_file"), ({"key_file": "client.key"}, "mqtt.tls.cert_file"),
     ({"cert_file": "missing.crt", "key_file": "client.key"}, "mqtt.tls.cert_file")],
)
def test_client_certificate_settings_are_checked(pki, tls, key):
    tls = {k: str(pki / v) for k, v in tls.items()}
    with pytest.raises(ConfigError) as info:
        parse_config({"mqtt": {"host": "127.0.0.1", "username": USER, "password": PASSWORD, "tls": tls}})
    message = str(info.value)
    assert key in message and "\n" not in message and PASSWORD not in message
