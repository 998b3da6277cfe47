"""The CA core: certificate profile, issuance and CRLs (no bot, no storage). See docs/pki.md."""

from bot.pki.ca import (
    CAError,
    CertificateAuthority,
    EmbeddedCA,
    OrgSubject,
    RevokedEntry,
    TokenKeyRef,
    crl_der,
    crl_pem,
    subject_of,
)

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
