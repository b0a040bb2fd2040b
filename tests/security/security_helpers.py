"""Helpers for the security tests (a uniquely named module: several test
folders have a conftest.py): the test PKI, made with the openssl CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
from daemon_helpers import MOSQUITTO, REPO, free_port, wait_port  # noqa: E402,F401

OPENSSL = shutil.which("openssl")
PASSWD = shutil.which("mosquitto_passwd")
USER, PASSWORD = "kitchen", "Tr0ub4dor-cadence-73"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _key_and_csr(name: str, cn: str, cwd: Path) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=cwd)


def _self_signed_ca(name: str, cwd: Path) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}", cwd=cwd)


def _sign(name: str, ca: str, cwd: Path, *extensions: str) -> None:
    ext = cwd / f"{name}.ext"
    ext.write_text("".join(f"{line}\n" for line in extensions))
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "2", "-extfile", str(ext), cwd=cwd)



def make_pki(d: Path) -> Path:
    """ca.crt; server.{crt,key} (127.0.0.1); client.{crt,key} signed by the CA;
    rogue-client.{crt,key} signed by another CA; passwd for USER/PASSWORD."""
    _self_signed_ca("ca", d)
    _self_signed_ca("rogue-ca", d)
    _key_and_csr("server", "127.0.0.1", d)
    _sign("server", "ca", d, "subjectAltName=IP:127.0.0.1", "extendedKeyUsage=serverAuth")
    for name, ca in (("client", "ca"), ("rogue-client", "rogue-ca")):
        _key_and_csr(name, USER, d)
        _sign(name, ca, d, "extendedKeyUsage=clientAuth")
    subprocess.run([PASSWD, "-b", "-c", str(d / "passwd"), USER, PASSWORD], check=True, capture_output=True, timeout=30)
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return d
