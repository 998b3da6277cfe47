"""The CA's certificate and key on disk: load a configured pair, or create one on first start.

Creation must be safe when two processes start at once: each file appears by ``os.link`` of a
fully written temporary file, which fails if the name exists, so the first writer wins and every
process then reads back the same files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from bot.pki.errors import CAError
from bot.pki.keys import PublicKey, SigningKey, same_public_key, signing_hash
from bot.pki.token_key import TokenKeyRef, open_token_key

CERT_NAME = "ca-cert.pem"
KEY_NAME = "ca-key.pem"
PASSWORD_ENV = "CADESK_CA_KEY_PASSWORD"
CA_VALIDITY = dt.timedelta(days=20 * 365 + 5)  # twenty years, leap days included
BACKDATE = dt.timedelta(hours=1)  # tolerate relying parties whose clocks run a little slow


def key_password() -> bytes | None:
    value = os.environ.get(PASSWORD_ENV)
    return value.encode() if value else None


def load_pair(cert_file: Path, key_file: Path) -> tuple[x509.Certificate, SigningKey]:
    """An existing CA: PEM certificate plus PEM key that belong together and may sign."""
    cert = _load_certificate(cert_file)
    key = _load_key(key_file)
    if not same_public_key(cert.public_key(), key.public_key()):
        raise CAError(f"CA 证书 {cert_file} 与私钥 {key_file} 不是一对，请检查配置。")
    _check_is_ca(cert, cert_file)
    return cert, key


def load_token_pair(cert_file: Path, ref: TokenKeyRef) -> tuple[x509.Certificate, SigningKey]:
    """An existing CA whose key stays on a PKCS#11 token; proven to pair by a test signature."""
    cert = _load_certificate(cert_file)
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise CAError(f"CA 证书 {cert_file} 的密钥类型不受支持，只能是 RSA 或 ECDSA。")
    key = open_token_key(ref, public)
    if not _signs_for(key, public):
        raise CAError(f"CA 证书 {cert_file} 与令牌上的私钥 {ref.key_label} 不是一对，请检查配置。")
    _check_is_ca(cert, cert_file)
    return cert, key


def _signs_for(key: SigningKey, public: PublicKey) -> bool:
    probe = b"cadesk CA key pairing check"
    try:
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(
            public, ec.EllipticCurvePublicKey
        ):
            ecdsa = ec.ECDSA(hashes.SHA256())
            public.verify(key.sign(probe, ecdsa), probe, ecdsa)
        elif isinstance(key, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey):
            signature = key.sign(probe, padding.PKCS1v15(), hashes.SHA256())
            public.verify(signature, probe, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True


def open_directory(directory: Path, name: str) -> tuple[x509.Certificate, SigningKey]:
    """Load ``ca-cert.pem`` / ``ca-key.pem`` from ``directory``, creating them the first time."""
    cert_path, key_path = directory / CERT_NAME, directory / KEY_NAME
    if not (cert_path.exists() and key_path.exists()):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        if not key_path.exists():
            key = ec.generate_private_key(ec.SECP384R1())
            publish_once(key_path, _key_pem(key), mode=0o600)
        if not cert_path.exists():
            # Whoever won the key race, sign for the key that is now on disk.
            key = _load_key(key_path)
            publish_once(cert_path,
                         _self_signed(key, name).public_bytes(serialization.Encoding.PEM))
    return load_pair(cert_path, key_path)


def _load_certificate(cert_file: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(cert_file.read_bytes())
    except FileNotFoundError as error:
        raise CAError(f"找不到 CA 证书文件 {cert_file}。") from error
    except ValueError as error:
        raise CAError(f"CA 证书文件 {cert_file} 不是有效的 PEM 证书。") from error


def _load_key(key_file: Path) -> SigningKey:
    try:
        pem = key_file.read_bytes()
    except FileNotFoundError as error:
        raise CAError(f"找不到 CA 私钥文件 {key_file}。") from error
    password = key_password() if b"ENCRYPTED" in pem else None
    if b"ENCRYPTED" in pem and password is None:
        raise CAError(f"CA 私钥 {key_file} 已加密，请在环境变量 {PASSWORD_ENV} 中提供口令。")
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except ValueError as error:
        raise CAError(f"无法读取 CA 私钥 {key_file}：文件无效或口令错误。") from error
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CAError(f"CA 私钥 {key_file} 的类型不受支持，只能是 RSA 或 ECDSA。")
    return key


def _check_is_ca(cert: x509.Certificate, cert_file: Path) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CAError(f"证书 {cert_file} 不是 CA 证书（缺少 basicConstraints CA:TRUE）。")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (usage.key_cert_sign and usage.crl_sign):
        raise CAError(f"CA 证书 {cert_file} 的密钥用法不允许签发证书和 CRL。")


def _key_pem(key: SigningKey) -> bytes:
    password = key_password()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _self_signed(key: SigningKey, name: str) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
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
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, signing_hash(key))
    )


def publish_once(path: Path, content: bytes, mode: int = 0o644) -> None:
    """Make ``path`` hold ``content`` unless it already exists; never a half-written file."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process got there first
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
