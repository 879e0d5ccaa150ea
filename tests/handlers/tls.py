"""A certificate authority of our own and a PostgreSQL that presents a certificate it signed.

Plays RDS's side of ``sslmode=verify-full``: the instance's certificate is
signed by a CA the client must be given (the RDS bundle on AWS, :attr:`Ca.pem`
here), for the name the client connects to (127.0.0.1). A second, unrelated
CA shows that verification really happens: a client trusting only that one is
refused.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connstorm.local_stack.os_user import chown_tree, server_user, shared_scratch_root
from connstorm.local_stack.postgres import PostgresServer
from connstorm.scenario import PostgresConfig

VALID = datetime.timedelta(days=2)


@dataclass(frozen=True)
class Ca:
    """A self-signed CA: its certificate as PEM text, and its key to sign servers with."""

    name: str
    pem: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(name: str) -> Ca:
    """A CA certificate (basicConstraints CA:TRUE) named ``name``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_now() - VALID).not_valid_after(_now() + VALID)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return Ca(name, cert.public_bytes(serialization.Encoding.PEM).decode("ascii"), key, cert)


def server_cert(ca: Ca, ip: str = "127.0.0.1") -> tuple[bytes, bytes]:
    """``(certificate PEM, key PEM)`` for a server at ``ip``, signed by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - VALID).not_valid_after(_now() + VALID)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
                ipaddress.ip_address(ip))]), critical=False)
            .sign(ca.key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@contextmanager
def tls_postgres(ca: Ca, run_dir: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL on 127.0.0.1 with ``ssl = on`` and a certificate ``ca`` signed.

    The key must belong to the user the server runs as, mode 0600 (PostgreSQL,
    "Secure TCP/IP Connections with SSL"), in a folder that user can reach.
    """
    cert_pem, key_pem = server_cert(ca)
    folder = Path(tempfile.mkdtemp(prefix="tls-", dir=shared_scratch_root()))
    try:
        folder.chmod(0o700)
        (folder / "server.crt").write_bytes(cert_pem)
        (folder / "server.key").write_bytes(key_pem)
        (folder / "server.key").chmod(0o600)
        chown_tree(folder, server_user())
        settings = {"ssl": True, "ssl_cert_file": str(folder / "server.crt"),
                    "ssl_key_file": str(folder / "server.key")}
        with PostgresServer(PostgresConfig(settings=settings), run_dir) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)
