"""Rules about certificates that need no CA, token or database: terms, renewal eligibility,
expiry reminders, revocation reasons, and how a certificate's state is named."""

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.domain.text import compact


class CertStatus(StrEnum):
    ACTIVE = "active"
    HOLD = "hold"  # 挂失: on the CRL as certificateHold until 解挂
    REVOKED = "revoked"  # 吊销: on the CRL for good
    SUPERSEDED = "superseded"  # renewed: the new certificate carries on with the same key

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]


_STATUS_LABELS = {
    CertStatus.ACTIVE: "有效",
    CertStatus.HOLD: "已挂失（暂停使用）",
    CertStatus.REVOKED: "已吊销",
    CertStatus.SUPERSEDED: "已续期（由新证书接替）",
}
ON_CRL = (CertStatus.HOLD, CertStatus.REVOKED)

# 吊销 <序列号> <理由>: words a technician may use, and the CRL reason they mean (RFC 5280).
REVOCATION_REASONS = {
    "密钥泄露": "key_compromise",
    "私钥泄露": "key_compromise",
    "单位变更": "affiliation_changed",
    "信息变更": "affiliation_changed",
    "停止使用": "cessation_of_operation",
    "注销": "cessation_of_operation",
    "已替换": "superseded",
}


def normalise_serial(text: str) -> str:
    """A certificate serial as typed (colons, spaces, 0x, upper case) → the stored hex form."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
    return cleaned.lstrip("0") or "0"


def same_ukey(typed: str, on_record: str) -> bool:
    """A UKEY 卡号 as typed (any case, spaces or dashes between groups) is the one on record."""
    return compact(typed).upper() == compact(on_record).upper()


def revocation_reason(text: str) -> str:
    """The CRL reason a free-text 吊销 reason names; ``unspecified`` when it names none."""
    for word, reason in REVOCATION_REASONS.items():
        if word in text:
            return reason
    return "unspecified"


def add_months(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later (the last day of a shorter month: 31 Jan + 1 → 28/29 Feb)."""
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def years_to_months(years_answer: str) -> int:
    """证书年限 as the form stores it ("1年", "2年"...) → months."""
    return 12 * int(years_answer.removesuffix("年"))


def renewed_until(current_not_after: datetime, now: datetime, months: int) -> datetime:
    """A renewal counts from the current expiry; a certificate already expired, from now."""
    return add_months(max(current_not_after, now), months)


@dataclass(frozen=True)
class CertSubject:
    company_name: str
    uscc: str


def renewal_refusal(on_key: CertSubject | None, company_name: str, uscc: str) -> str | None:
    """Why a certificate cannot simply be renewed for this company (SPEC.md §2: only when the
    company name and USCC are unchanged), or None when it can."""
    if on_key is None:
        return "UKEY 里的证书不是本中心按机构证书格式签发的，无法续期，请申请「新办证书」。"
    if on_key.uscc != uscc:
        return (f"UKEY 里证书的统一社会信用代码（{on_key.uscc}）与您单位档案的（{uscc}）不一致，"
                "不能续期。请申请「新办证书」。")
    if on_key.company_name != company_name:
        return (f"UKEY 里证书的单位名称「{on_key.company_name}」与单位档案「{company_name}」不一致"
                "（单位名称已变更？），不能续期：单位名称、法定代表人或信用代码变更后须重新办理，"
                "请申请「新办证书」。")
    return None


def reminder_due(not_after: datetime, now: datetime, thresholds: Iterable[int],
                 already: Iterable[int]) -> tuple[int, list[int]] | None:
    """Which expiry reminder to send now, and every threshold it settles.

    Only the nearest threshold is sent (a certificate first seen 5 days before expiry gets the
    7-day reminder, not the 30-day one too), and the farther ones are settled with it so they
    never come later. None when nothing is due (or it has expired)."""
    left = not_after - now
    if left.total_seconds() <= 0:
        return None
    days_left = left.total_seconds() / 86400
    reached = sorted(d for d in set(thresholds) if days_left <= d)
    if not reached or reached[0] in set(already):
        return None
    return reached[0], reached


def days_until(not_after: datetime, now: datetime) -> int:
    """Whole days left, rounded up: 'expires in 1 day' until the last moment."""
    seconds = (not_after - now).total_seconds()
    return max(0, -int(-seconds // 86400))
