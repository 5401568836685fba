"""The certificates the project makes for itself (a development signing identity for Content
Credentials, the production stack's Dask TLS): an EC P-256 CA and leaves it issues, built once here."""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def name(common_name: str, organisation: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(attrs)


def certificate(subject: x509.Name, key, issuer: x509.Name, issuer_key, days: int, extensions: list[tuple]) -> x509.Certificate:
    """A certificate of `key` for `subject`, signed by `issuer_key`, valid from yesterday for `days`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=days))
    )  # fmt: skip
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(issuer_key, hashes.SHA256())


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def signing_usage(sign_certificates: bool) -> x509.KeyUsage:
    """digitalSignature, and keyCertSign + cRLSign for a CA."""
    return x509.KeyUsage(True, False, False, False, False, sign_certificates, sign_certificates, False, False)


def ca_extensions(key, with_usage: bool = True) -> list[tuple]:
    out = [(x509.BasicConstraints(ca=True, path_length=None), True)]
    if with_usage:
        out += [(signing_usage(True), True), (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)]
    return out


def signer_extensions(key, ca_key) -> list[tuple]:
    """What C2PA asks of a signing certificate: not a CA, digitalSignature, emailProtection, key ids."""
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (signing_usage(False), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
    ]


def loopback_names() -> list[tuple]:
    return [(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)]


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
