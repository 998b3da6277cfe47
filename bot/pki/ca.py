"""The CA behind cadesk: an interface a real external CA can implement, and an embedded default.

``EmbeddedCA`` signs in this process: with a key created in the data directory on first start,
an existing CA's PEM pair, or an existing CA's key kept on a PKCS#11 token. It knows nothing
about orders, companies or storage: the caller decides validity, serials to revoke and CRL
numbers. See docs/pki.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from bot.pki.crl import RevokedEntry, build_crl, crl_der, crl_pem
from bot.pki.errors import CAError
from bot.pki.keys import PublicKey, SigningKey, check_subject_key, signing_hash
from bot.pki.profile import OrgSubject, subject_name, subject_of
from bot.pki.store import load_pair, load_token_pair, open_directory
from bot.pki.timeutil import utc
from bot.pki.token_key import TokenKeyRef

__all__ = [
    "CAError",
    "CertificateAuthority",
    "EmbeddedCA",
    "OrgSubject",
    "RevokedEntry",
    "TokenKeyRef",
    "crl_der",
    "crl_pem",
    "subject_of",
]


@runtime_checkable
class CertificateAuthority(Protocol):
    """What cadesk needs from a CA. A real external CA plugs in here."""

    @property
    def certificate(self) -> x509.Certificate:
        """The CA certificate (the issuer of everything this CA signs)."""
        ...

    def issue(
        self,
        csr_der: bytes,
        subject: OrgSubject,
        not_before: dt.datetime,
        not_after: dt.datetime,
    ) -> x509.Certificate:
        """Certify the CSR's public key for ``subject``; the CSR's own subject is ignored."""
        ...

    def crl(
        self,
        revoked: Iterable[RevokedEntry],
        number: int,
        this_update: dt.datetime,
        next_update: dt.datetime,
    ) -> x509.CertificateRevocationList:
        """A complete CRL listing exactly ``revoked``."""
        ...


class EmbeddedCA:
    """The default CA: signs in this process, with a PEM key or a key kept on a PKCS#11 token."""

    def __init__(
        self, certificate: x509.Certificate, key: SigningKey, *, crl_url: str | None = None
    ) -> None:
        self._certificate = certificate
        self._key = key
        self._crl_url = crl_url

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        name: str = "cadesk CA",
        crl_url: str | None = None,
        key_token: TokenKeyRef | None = None,
    ) -> EmbeddedCA:
        """The configured CA (``cert_file`` + ``key_file``, or ``cert_file`` + ``key_token`` for a
        key on a PKCS#11 token), else the one in ``directory``, created there on the first call.
        Raises CAError when the files or the token are unusable."""
        if key_token is not None:
            if cert_file is None or key_file is not None:
                raise CAError("CA 私钥在令牌上时，只需配置 CA 证书文件，不能再配置私钥文件。")
            certificate, key = load_token_pair(Path(cert_file), key_token)
        elif (cert_file is None) != (key_file is None):
            raise CAError("配置现有 CA 时必须同时给出证书文件和私钥文件。")
        elif cert_file is not None and key_file is not None:
            certificate, key = load_pair(Path(cert_file), Path(key_file))
        else:
            certificate, key = open_directory(Path(directory), name)
        return cls(certificate, key, crl_url=crl_url)

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    def issue(
        self,
        csr_der: bytes,
        subject: OrgSubject,
        not_before: dt.datetime,
        not_after: dt.datetime,
    ) -> x509.Certificate:
        public_key = _verified_csr_key(csr_der)
        not_before, not_after = utc(not_before, "not_before"), utc(not_after, "not_after")
        if not_after <= not_before:
            raise CAError("证书有效期无效：截止时间必须晚于起始时间。")
        if not_after > self._certificate.not_valid_after_utc:
            raise CAError(
                "证书截止时间晚于 CA 证书本身的有效期"
                f"（{self._certificate.not_valid_after_utc:%Y-%m-%d}），无法签发。"
            )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject_name(subject))
            .issuer_name(self._certificate.subject)
            .public_key(public_key)
            .serial_number(_positive_serial())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(public_key), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        if self._crl_url:
            point = x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(self._crl_url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
        return builder.sign(self._key, signing_hash(self._key))

    def crl(
        self,
        revoked: Iterable[RevokedEntry],
        number: int,
        this_update: dt.datetime,
        next_update: dt.datetime,
    ) -> x509.CertificateRevocationList:
        return build_crl(self._certificate, self._key, revoked, number, this_update, next_update)

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        try:
            ski = self._certificate.extensions.get_extension_for_class(
                x509.SubjectKeyIdentifier
            ).value
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _verified_csr_key(csr_der: bytes) -> PublicKey:
    try:
        csr = x509.load_der_x509_csr(csr_der)
    except ValueError as error:
        raise CAError("证书请求（CSR）格式无效，无法解析。") from error
    try:
        key = csr.public_key()
        valid = csr.is_signature_valid
    except Exception as error:  # unsupported algorithms surface as several exception types
        raise CAError(
            "证书请求（CSR）使用了不支持的密钥或签名算法，仅支持 RSA 和 ECDSA。"
        ) from error
    if not valid:
        raise CAError("证书请求（CSR）签名验证失败：请求已损坏或不是由该密钥生成。")
    return check_subject_key(key)


def _positive_serial() -> int:
    """RFC 5280 4.1.2.2: positive, at most 20 octets; 159 random bits keep both."""
    while True:
        serial = x509.random_serial_number()
        if serial > 0:
            return serial


def _key_usage(public_key: PublicKey) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
