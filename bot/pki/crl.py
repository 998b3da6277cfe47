"""Certificate revocation lists: holds (挂失) and revocations (吊销) signed by the CA."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bot.pki.keys import SigningKey, signing_hash
from bot.pki.timeutil import utc

# RFC 5280 5.2.3: the CRL number is an INTEGER of at most 20 octets.
MAX_CRL_NUMBER = 2**159 - 1


@dataclass(frozen=True)
class RevokedEntry:
    serial: int
    revoked_at: dt.datetime  # aware UTC
    # certificate_hold for a loss report; key_compromise / cessation_of_operation / unspecified
    # for 吊销.
    reason: x509.ReasonFlags


def build_crl(
    ca_cert: x509.Certificate,
    ca_key: SigningKey,
    revoked: Iterable[RevokedEntry],
    number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
) -> x509.CertificateRevocationList:
    if not 0 <= number <= MAX_CRL_NUMBER:
        raise ValueError(f"CRL number {number} outside 0..2**159-1")
    this_update, next_update = utc(this_update, "this_update"), utc(next_update, "next_update")
    if next_update <= this_update:
        raise ValueError("next_update must come after this_update")
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
    )
    for entry in sorted(_one_per_serial(revoked).values(), key=lambda e: e.serial):
        builder = builder.add_revoked_certificate(_revoked_certificate(entry))
    return builder.sign(ca_key, signing_hash(ca_key))


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


def _one_per_serial(revoked: Iterable[RevokedEntry]) -> dict[int, RevokedEntry]:
    """A serial listed twice (held, then revoked for good): the revocation wins over the hold,
    otherwise the first entry stays."""
    chosen: dict[int, RevokedEntry] = {}
    for entry in revoked:
        if entry.reason is x509.ReasonFlags.remove_from_crl:
            raise ValueError("removeFromCRL belongs to delta CRLs; leave the serial out instead")
        if entry.serial <= 0:
            raise ValueError(f"certificate serial must be positive, got {entry.serial}")
        held = chosen.get(entry.serial)
        if held is None or (
            held.reason is x509.ReasonFlags.certificate_hold
            and entry.reason is not x509.ReasonFlags.certificate_hold
        ):
            chosen[entry.serial] = entry
    return chosen


def _revoked_certificate(entry: RevokedEntry) -> x509.RevokedCertificate:
    builder = (
        x509.RevokedCertificateBuilder()
        .serial_number(entry.serial)
        .revocation_date(utc(entry.revoked_at, "revoked_at"))
    )
    # RFC 5280 5.3.1: reasonCode SHOULD be absent rather than "unspecified".
    if entry.reason is not x509.ReasonFlags.unspecified:
        builder = builder.add_extension(x509.CRLReason(entry.reason), critical=False)
    return builder.build()


def _authority_key_identifier(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
