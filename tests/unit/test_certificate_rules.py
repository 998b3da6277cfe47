"""Certificate rules without a CA, token or database: terms, renewal eligibility, reminders."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.certificates import (
    CertSubject,
    add_months,
    days_until,
    normalise_serial,
    reminder_due,
    renewal_refusal,
    renewed_until,
    revocation_reason,
    years_to_months,
)

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
USCC = "91371302MA3C4XYZ8K"


@pytest.mark.parametrize(("start", "months", "expected"), [
    (datetime(2026, 1, 31, tzinfo=UTC), 1, datetime(2026, 2, 28, tzinfo=UTC)),
    (datetime(2027, 12, 31, tzinfo=UTC), 2, datetime(2028, 2, 29, tzinfo=UTC)),  # leap year
    (datetime(2026, 11, 25, 8, 30, tzinfo=UTC), 12, datetime(2027, 11, 25, 8, 30, tzinfo=UTC)),
    (datetime(2028, 2, 29, tzinfo=UTC), 12, datetime(2029, 2, 28, tzinfo=UTC)),
    (datetime(2026, 3, 15, tzinfo=UTC), 36, datetime(2029, 3, 15, tzinfo=UTC)),
])
def test_months_are_calendar_months(start: datetime, months: int, expected: datetime) -> None:
    assert add_months(start, months) == expected


def test_a_renewal_counts_from_the_current_expiry_or_from_now_when_expired() -> None:
    soon = NOW + timedelta(days=20)
    assert renewed_until(soon, NOW, 12) == add_months(soon, 12)  # the 20 days are not lost
    expired = NOW - timedelta(days=40)
    assert renewed_until(expired, NOW, 12) == add_months(NOW, 12)
    assert years_to_months("3年") == 36


def test_renewal_is_refused_with_the_reason_when_the_company_changed() -> None:
    same = CertSubject("临沂测试有限公司", USCC)
    assert renewal_refusal(same, "临沂测试有限公司", USCC) is None
    renamed = renewal_refusal(same, "临沂测试集团有限公司", USCC)
    assert renamed is not None
    assert "单位名称" in renamed
    assert "新办证书" in renamed
    other = renewal_refusal(same, "临沂测试有限公司", "91110000MA01ABCD2X")
    assert other is not None
    assert "统一社会信用代码" in other
    foreign = renewal_refusal(None, "临沂测试有限公司", USCC)
    assert foreign is not None
    assert "不是本中心" in foreign


@pytest.mark.parametrize(("left", "already", "expected"), [
    (timedelta(days=40), [], None),
    (timedelta(days=29, hours=23), [], (30, [30])),
    (timedelta(days=29), [30], None),  # sent yesterday
    (timedelta(days=5), [], (7, [7, 30])),  # first seen late: only the nearest, the 30 settled
    (timedelta(days=5), [30], (7, [7, 30])),
    (timedelta(hours=3), [30, 7], (1, [1, 7, 30])),
    (timedelta(hours=3), [30, 7, 1], None),
    (timedelta(seconds=-1), [], None),  # expired: no "expires in 0 days"
])
def test_each_reminder_once_and_only_the_nearest(left: timedelta, already: list[int],
                                                 expected: tuple | None) -> None:
    assert reminder_due(NOW + left, NOW, [30, 7, 1], already) == expected


def test_days_left_round_up_and_serials_are_read_as_typed() -> None:
    assert days_until(NOW + timedelta(hours=3), NOW) == 1
    assert days_until(NOW + timedelta(days=6, hours=1), NOW) == 7
    assert normalise_serial(" 0x00:5B:44:7C ") == "5b447c"
    assert revocation_reason("私钥泄露，立即吊销") == "key_compromise"
    assert revocation_reason("客户要求") == "unspecified"
