"""The project's broker CA and its certificates, made with the `cryptography` library.

EC P-256 keys (every TLS stack speaks them, and they are quick on a Raspberry Pi); the
CA signs a server certificate for the broker's names and one client certificate per
identity, whose common name is the identity's id (Mosquitto's `use_identity_as_username`
makes it the ACL's user name). Keys are written with mode 0600 and never overwritten: a
second run issues only what is missing, so adding a gateway keeps everyone else's files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledger_node.shared.errors import ConfigError
from ledger_node.shared.keys import write_secret_file

CA_DAYS = 3650
"""Validity of the project CA, days."""


@dataclass(frozen=True)
class Issued:
    """A certificate and its key file; `new` when this run made them."""

    cert: Path
    key: Path
    new: bool


def _write_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_secret_file(path, pem.decode("ascii"))
    return key


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the key {path}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path} is not an EC key")
    return key


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the certificate {path}: {exc}") from None


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meterledger"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


class Authority:
    """The CA in `folder` (``ca.pem``, ``ca.key``), made on first use."""

    def __init__(self, folder: Path, network: str) -> None:
        self.cert_path = folder / "ca.pem"
        self.key_path = folder / "ca.key"
        if self.key_path.exists():
            self.key = _load_key(self.key_path)
            self.cert = _load_cert(self.cert_path)
            self.new = False
            return
        self.key = _write_key(self.key_path)
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"meterledger {network} broker CA"))
            .issuer_name(_name(f"meterledger {network} broker CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
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
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.new = True

    def issue(
        self,
        cert_path: Path,
        key_path: Path,
        cn: str,
        days: int,
        server_names: tuple[str, ...] = (),
    ) -> Issued:
        """A certificate for `cn` (a client's, or with `server_names` the broker's), unless
        both files exist already."""
        if cert_path.exists() and key_path.exists():
            return Issued(cert_path, key_path, False)
        if key_path.exists() or cert_path.exists():
            raise ConfigError(
                f"only one of {cert_path} and {key_path} exists: move it away to issue both anew"
            )
        key = _write_key(key_path)
        now = dt.datetime.now(dt.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if server_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in server_names]),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return Issued(cert_path, key_path, True)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def common_name(cert_path: Path) -> str:
    """The common name of a certificate file (the identity it names)."""
    attrs = _load_cert(cert_path).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""
