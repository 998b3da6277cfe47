"""What an order costs ([fees]) and when the centre answers ([centre]): the rules, and the
configuration mistakes refused at start-up."""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from bot.config import CentreSection, FaqEntry, Settings
from bot.domain.fees import amount_cents, price_list, quote
from bot.domain.flow import FormFlow
from bot.domain.forms import CERTIFICATE, UNLOCK
from bot.domain.lifecycle import OrderType
from bot.domain.opening_hours import OpeningHours, parse_period

FLAT = {OrderType.CERTIFICATE: Decimal(260), OrderType.RENEWAL: Decimal(200)}
BY_TERM = {OrderType.CERTIFICATE: {1: Decimal(260), 2: Decimal(480), 3: Decimal("690.5")}}
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(("fees", "years", "count", "cents"), [
    (FLAT, "1年", "1", 26000),
    (FLAT, "2年", "1", 52000),  # the bug: a 2年 补办 was charged as 1年
    (FLAT, "2年", "2", 104000),
    (FLAT, "3年", "20", 1560000),
    (BY_TERM, "2年", "2", 96000),
    (BY_TERM, "3年", "1", 69050),
])
def test_a_certificate_costs_per_ukey_and_by_its_term(fees: dict, years: str, count: str,
                                                      cents: int) -> None:
    values = {"years": years, "ukey_count": count, "apply_kind": "补办"}
    assert amount_cents(OrderType.CERTIFICATE, values, fees) == cents


def test_other_orders_cost_one_price_and_a_binding_nothing() -> None:
    assert amount_cents(OrderType.RENEWAL, {}, FLAT) == 20000
    assert amount_cents(OrderType.UNLOCK, {}, FLAT) == 0
    assert amount_cents(OrderType.BINDING, {}, {OrderType.BINDING: Decimal(5)}) == 0
    assert quote(OrderType.UNLOCK, {}, FLAT).line == "费用：免费"


def test_the_summary_says_the_fee_before_asking_to_submit() -> None:
    values = {"cert_type": "机构证书", "apply_kind": "新办", "company_name": "临沂测试有限公司",
              "org_id_type": "统一社会信用代码", "org_id": "X", "years": "2年",
              "ukey_count": "2"}
    flow = FormFlow(FormFlow.start(CERTIFICATE, values)[0].state, FLAT)
    summary = flow.summary()
    assert "费用：¥1040.00（2 个 UKEY × 2年，每个 ¥520.00）" in summary
    assert summary.index("费用") < summary.index("确认提交")
    unlock, _ = FormFlow.start(UNLOCK, {"company_name": "临沂测试有限公司", "uscc": "X"}, FLAT)
    assert "费用：免费" in unlock.summary()
    assert "费用" not in FormFlow(flow.state).summary()  # no fee table given: none shown


def test_the_price_list_names_every_term_and_the_free_orders() -> None:
    assert price_list(FLAT, (1, 2, 3), certificates=True) == (
        "收费标准：新办/补办证书每个 UKEY 1年 ¥260.00，2年 ¥520.00，3年 ¥780.00；"
        "续期每单 ¥200.00；解锁、挂失/解挂免费。")
    assert price_list(BY_TERM, (1, 2), certificates=False) == (
        "收费标准：新办/补办证书每个 UKEY 1年 ¥260.00，2年 ¥480.00；解锁免费。")


HOURS = OpeningHours((1, 2, 3, 4, 5), (parse_period("08:30-12:00"), parse_period("13:30-17:30")),
                     "法定节假日除外")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=SHANGHAI)  # 2026-12-07 is a Monday


@pytest.mark.parametrize(("now", "told"), [
    (at(7, 9), "一般在 30 分钟内"),
    (at(7, 12, 30), "会在今天13:30上班后"),
    (at(7, 18), "会在明天08:30上班后"),
    (at(11, 18), "会在12月14日（周一）08:30上班后"),  # Friday evening
    (at(13, 10), "会在明天08:30上班后"),  # Sunday
    (at(7, 7), "会在今天08:30上班后"),
])
def test_someone_asking_for_a_person_is_told_when(now: datetime, told: str) -> None:
    assert told in HOURS.when_answered(now, 30)


def test_opening_hours_read_as_people_write_them() -> None:
    assert HOURS.text() == "周一至周五 08:30-12:00、13:30-17:30（法定节假日除外）"
    weekend = OpeningHours((1, 3, 6), (parse_period("09:00-11:00"),))
    assert weekend.text() == "周一、周三、周六 09:00-11:00"


@pytest.mark.parametrize(("raw", "says"), [
    ({"fees": {"certificate": {1: 260, 2: 480}}}, "no price for [3]"),
    ({"fees": {"unlock": {1: 10, 2: 10, 3: 10}}}, "one price per order"),
    ({"centre": {"opening_hours": ["13:30-17:30", "08:30-12:00"]}}, "in order"),
    ({"centre": {"opening_hours": ["18:00-08:00"]}}, "after the start"),
    ({"centre": {"opening_days": [0]}}, "1 (Monday)"),
    ({"centre": {"city": "北京"}}, "项目所属地区"),
    ({"faq": [{"keywords": ["电话"], "answer": "{telephone}"}]}, "unknown placeholders"),
    ({"faq": [{"keywords": [], "answer": "x"}]}, "at least 1"),
])
def test_a_mistake_in_the_centre_or_the_fees_is_refused_at_start(raw: dict, says: str) -> None:
    with pytest.raises(ValidationError, match=says.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        Settings.model_validate(raw)


def test_the_default_city_is_one_of_the_regions_offered() -> None:
    assert CentreSection().city in CERTIFICATE.field("region").choices
    assert FaqEntry(keywords=["电话"], answer="{contact}").answer == "{contact}"
