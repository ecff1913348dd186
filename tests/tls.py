"""A throw-away PKI for the TLS tests, made at test time with `cryptography`.

Nothing is checked in: every run makes a fresh CA, a broker certificate for 127.0.0.1, ::1 and
localhost, a client certificate for mutual TLS, a broker certificate that expired yesterday,
and a second, unrelated CA (with a client certificate of its own) to show what the broker and
the gateway do with a certificate they must not trust. EC P-256 keys: generated in
microseconds, where RSA 2048 takes tens of milliseconds each.

The certificates follow what OpenSSL's strict checks (Python 3.13's default
VERIFY_X509_STRICT) ask for: critical basic constraints on the CA, key identifiers, and the
names in subjectAltName rather than in the common name.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BROKER_NAMES = ("localhost",)
BROKER_ADDRESSES = ("127.0.0.1", "::1")

_VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A certificate and its private key, both PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Pki:
    """Every file the TLS tests use; `ca` and `other_ca` are PEM certificates."""

    ca: Path
    server: KeyPair
    client: KeyPair
    expired_server: KeyPair
    other_ca: Path
    other_client: KeyPair  # signed by other_ca: a client the broker must refuse


@dataclass(frozen=True, slots=True)
class _Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def make_pki(directory: Path) -> Pki:
    """Write a fresh PKI into `directory` (created if missing) and return its file names."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca = _authority("Mỹ Hào test CA", now)
    other = _authority("Unrelated test CA", now)
    return Pki(
        ca=_write_cert(directory / "ca.pem", ca.cert),
        server=_leaf(directory / "server", ca, "mh-test-broker", now, server=True),
        client=_leaf(directory / "client", ca, "mh-gateway", now, server=False),
        expired_server=_leaf(
            directory / "expired-server",
            ca,
            "mh-test-broker (expired)",
            now - datetime.timedelta(days=30),
            server=True,
            lifetime=datetime.timedelta(days=29),  # ended yesterday
        ),
        other_ca=_write_cert(directory / "other-ca.pem", other.cert),
        other_client=_leaf(directory / "other-client", other, "intruder", now, server=False),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Mỹ Hào gateway tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _authority(common_name: str, now: datetime.datetime) -> _Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Authority(cert, key)


def _leaf(
    stem: Path,
    issuer: _Authority,
    common_name: str,
    start: datetime.datetime,
    *,
    server: bool,
    lifetime: datetime.timedelta = _VALIDITY,
) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - datetime.timedelta(minutes=5))
        .not_valid_after(start + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if server:
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in BROKER_NAMES]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in BROKER_ADDRESSES]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer.key, hashes.SHA256())
    key_path = stem.with_suffix(".key")
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return KeyPair(_write_cert(stem.with_suffix(".pem"), cert), key_path)


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path
