from dataclasses import dataclass

import pytest

from bot.domain.forms import CERTIFICATE
from bot.domain.lifecycle import Event
from bot.domain.review import (
    ReviewRefused,
    approvers_since_submission,
    changed_fields,
    check_approval,
    check_delivery,
    named_fields,
)
from bot.domain.validators import InvalidAnswer, email_address


@pytest.mark.parametrize(("reason", "keys"), [
    ("附件二不清晰，请重新扫描", ["scan_id_card"]),
    ("身份证复印件没有盖章；营业执照过期", ["scan_id_card", "scan_licence"]),
    ("经办人身份证号与复印件不符", ["handler_id_number"]),
    ("手机号打不通，邮寄地址不完整", ["mobile", "address"]),
    ("授权书缺少法定代表人签字", ["scan_authorisation"]),
    ("资料不全", []),
])
def test_a_reason_names_the_fields_to_fix(reason: str, keys: list[str]) -> None:
    assert [f.key for f in named_fields(CERTIFICATE, reason)] == keys


def test_company_name_from_the_profile_is_never_asked_again() -> None:
    assert named_fields(CERTIFICATE, "公司名称写错了") == []


@dataclass
class Row:
    event: Event
    actor: str


SUBMITTED = [Row(Event.SUBMIT, "qq:9")]


def test_four_eyes() -> None:
    assert check_approval(SUBMITTED, "qq:1", 1).complete
    assert not check_approval(SUBMITTED, "qq:1", 2).complete
    second = check_approval([*SUBMITTED, Row(Event.APPROVAL, "qq:1")], "qq:2", 2)
    assert second.complete
    assert second.approvers == ("qq:1", "qq:2")
    with pytest.raises(ReviewRefused, match=r"您已经通过过该订单（1/2）.*需要另一位技术人员复核"):
        check_approval([*SUBMITTED, Row(Event.APPROVAL, "qq:1")], "qq:1", 2)


def test_three_approvals_need_three_technicians() -> None:
    log = [*SUBMITTED, Row(Event.APPROVAL, "qq:1")]
    assert not check_approval(log, "qq:2", 3).complete
    assert check_approval([*log, Row(Event.APPROVAL, "qq:2")], "qq:3", 3).complete


def test_a_resubmission_starts_the_approvals_afresh() -> None:
    log = [*SUBMITTED, Row(Event.APPROVAL, "qq:1"), Row(Event.REJECT, "qq:2"),
           Row(Event.RESUBMIT, "qq:9"), Row(Event.INVOICE, "qq:3")]
    assert approvers_since_submission(log) == []
    again = check_approval(log, "qq:1", 2)  # the same technician may approve the new version
    assert again.approvers == ("qq:1",)
    assert not again.complete


def test_delivery_must_match_what_the_applicant_chose() -> None:
    with pytest.raises(ReviewRefused, match="选择了自取"):
        check_delivery({"self_pickup": "自取"}, Event.SHIP)
    with pytest.raises(ReviewRefused, match="选择了邮寄"):
        check_delivery({"self_pickup": "邮寄"}, Event.AWAIT_PICKUP)
    check_delivery({"self_pickup": "邮寄"}, Event.SHIP)


def test_changed_fields_cover_values_and_scans() -> None:
    changed = changed_fields(CERTIFICATE, {"mobile": "13800000000", "years": "1年"},
                             {"mobile": "13900000000", "years": "1年"},
                             {"scan_form": "a", "scan_licence": "b"},
                             {"scan_form": "a", "scan_licence": "c"})
    assert [f.key for f in changed] == ["mobile", "scan_licence"]


def test_email_address() -> None:
    assert email_address(" zhang.san@example.com ") == "zhang.san@example.com"
    for bad in ("zhang", "a@b", "a b@example.com"):
        with pytest.raises(InvalidAnswer, match="电子邮箱"):
            email_address(bad)


def test_only_an_order_nobody_reviewed_may_be_withdrawn() -> None:
    from bot.domain.lifecycle import OrderStatus, OrderType
    from bot.domain.withdrawal import WithdrawalRefused, check_withdrawal

    number = "JG-261125-7KQ3"
    check_withdrawal(number, OrderType.CERTIFICATE, OrderStatus.SUBMITTED, {}, SUBMITTED)
    check_withdrawal(number, OrderType.LOSS, OrderStatus.SUBMITTED, {"apply_kind": "解挂"},
                     SUBMITTED)
    resubmitted = [*SUBMITTED, Row(Event.APPROVAL, "qq:1"), Row(Event.REJECT, "qq:2"),
                   Row(Event.RESUBMIT, "qq:9")]  # the approval was of the old version
    check_withdrawal(number, OrderType.UNLOCK, OrderStatus.RESUBMITTED, {}, resubmitted)
    with pytest.raises(WithdrawalRefused, match="等待另一位复核"):
        check_withdrawal(number, OrderType.UNLOCK, OrderStatus.SUBMITTED, {},
                         [*SUBMITTED, Row(Event.APPROVAL, "qq:1")])
    with pytest.raises(WithdrawalRefused, match=r"证书已立即挂失.*「解挂」"):  # held when filed
        check_withdrawal(number, OrderType.LOSS, OrderStatus.SUBMITTED, {"apply_kind": "挂失"},
                         SUBMITTED)
    with pytest.raises(WithdrawalRefused, match="该订单已完成，不能撤回"):
        check_withdrawal(number, OrderType.UNLOCK, OrderStatus.COMPLETED, {}, SUBMITTED)
