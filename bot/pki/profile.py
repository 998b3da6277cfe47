"""cadesk's organisation-certificate profile: who the subject is, and how to read it back.

The USCC lives in the subject's organizationIdentifier (OID 2.5.4.97) as ``NTRCN-<USCC>``,
the ETSI EN 319 412-1 semantic identifier ("NTR" national trade register, country ``CN``).
docs/pki.md spells out the whole profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID
from stdnum.cn import uscc as uscc_check

from bot.pki.errors import CAError

USCC_PREFIX = "NTRCN-"
# X.520 upper bound for O and CN (ub-organization-name, ub-common-name).
MAX_NAME_LENGTH = 64
_USCC_FORM = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}")


@dataclass(frozen=True)
class OrgSubject:
    company_name: str  # 公司名称, UTF-8 Chinese
    uscc: str  # 统一社会信用代码, 18 chars


def subject_name(subject: OrgSubject) -> x509.Name:
    """C=CN, O=<company>, organizationIdentifier=NTRCN-<USCC>, CN=<company>."""
    name = subject.company_name.strip()
    if not name:
        raise CAError("公司名称为空，无法签发证书。")
    if len(name) > MAX_NAME_LENGTH:
        raise CAError(f"公司名称超过 {MAX_NAME_LENGTH} 个字符，证书主题放不下。")
    code = subject.uscc.strip().upper()
    if not _USCC_FORM.fullmatch(code) or not uscc_check.is_valid(code):
        raise CAError(f"统一社会信用代码“{subject.uscc}”无效，无法签发证书。")
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, USCC_PREFIX + code),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )


def _single(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1 or not isinstance(values[0].value, str):
        return None
    return values[0].value


def subject_of(cert: x509.Certificate) -> OrgSubject | None:
    """Company name and USCC of a certificate issued with this profile; None if it lacks them."""
    company = _single(cert.subject, NameOID.ORGANIZATION_NAME)
    identifier = _single(cert.subject, NameOID.ORGANIZATION_IDENTIFIER)
    if not company or not identifier or not identifier.startswith(USCC_PREFIX):
        return None
    code = identifier.removeprefix(USCC_PREFIX)
    if not code:
        return None
    return OrgSubject(company_name=company, uscc=code)
