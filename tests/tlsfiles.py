"""Throwaway TLS material for tests: a CA, a server certificate for 127.0.0.1, a client certificate.

Made with the ``openssl`` command line (tests using it skip when it is missing).
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

#: the client key is encrypted with this password (tests check it is needed and never printed)
CLIENT_KEY_PASSWORD = "client-key-pw"


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # CA certificate (PEM)
    server_cert: Path  # for CN/SAN 127.0.0.1 and localhost, signed by the CA
    server_key: Path  # unencrypted PKCS#8
    client_cert: Path
    client_key: Path  # encrypted with CLIENT_KEY_PASSWORD
    other_ca: Path  # a CA that signed nothing here (a broker certificate must not verify against it)


def _openssl(*args: str, cwd: Path) -> None:
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {res.stderr.strip()}")


def make_tls_files(d: Path) -> TlsFiles:
    """Create the files in directory ``d`` (about a second)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    d.mkdir(parents=True, exist_ok=True)
    days = "2"
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                 "-days", days, "-subj", f"/CN=lookout test {ca}", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.rsa.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=d)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", days, "-extfile", "server.ext", cwd=d)
    _openssl("pkcs8", "-topk8", "-nocrypt", "-in", "server.rsa.key", "-out", "server.key", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-passout", f"pass:{CLIENT_KEY_PASSWORD}", "-keyout", "client.key",
             "-out", "client.csr", "-subj", "/CN=lookout-client", cwd=d)
    _openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "client.pem", "-days", days, cwd=d)
    return TlsFiles(ca=d / "ca.pem", server_cert=d / "server.pem", server_key=d / "server.key",
                    client_cert=d / "client.pem", client_key=d / "client.key", other_ca=d / "other-ca.pem")
