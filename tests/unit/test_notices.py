"""Applicant notices come from one table of named templates: each key fills its chat text, mail
subject and body from the order; an approval picks its variant by the order."""

import pytest

from bot.config import Settings
from bot.domain.fields import Field
from bot.domain.forms import CERTIFICATE
from bot.domain.lifecycle import Event, OrderType
from bot.services.messages import Picture
from bot.services.notify import TEMPLATES, NoticeKind, applicant_notice, notice_kind
from storage.models import Order


def an_order(order_type: OrderType = OrderType.CERTIFICATE, cents: int | None = 26000) -> Order:
    return Order(number="XB-261125-7KQ3", type=order_type, amount_cents=cents,
                 fields={"apply_kind": "新办"}, reject_reason="附件二不清晰",
                 express_company="顺丰", express_number="SF1234567890",
                 invoice_info="增值税普通发票")


@pytest.mark.parametrize("kind", list(TEMPLATES))
def test_every_template_fills_from_the_order(kind: Event | NoticeKind,
                                             settings: Settings) -> None:
    order = an_order()
    notice = applicant_notice(order, kind, settings, reason="UKEY 已拔出")
    text = notice.replies[0]
    assert isinstance(text, str)
    assert "{" not in text
    assert "None" not in text
    template = TEMPLATES[notice_kind(order, kind, settings)]
    assert notice.subject == f"订单 XB-261125-7KQ3：{template.subject}"
    assert notice.body == text


def test_an_approval_says_what_comes_next(settings: Settings) -> None:
    paid = applicant_notice(an_order(), Event.APPROVE, settings)
    assert paid.subject == "订单 XB-261125-7KQ3：审核通过，请支付"
    assert str(paid.replies[0]).startswith(
        "您的订单 XB-261125-7KQ3（证书新办）已审核通过。请扫描下方二维码支付 ¥260.00，")
    assert isinstance(paid.replies[1], Picture)
    unlock = applicant_notice(an_order(OrderType.UNLOCK, None), Event.APPROVE, settings)
    assert unlock.replies == ["您的订单 XB-261125-7KQ3（证书新办）已审核通过，服务中心会与您联系"
                              "重置 UKEY 密码，完成后会通知您。"]  # [agents] off
    free = applicant_notice(an_order(OrderType.LOSS, 0), Event.APPROVE, settings)
    assert free.replies == ["您的订单 XB-261125-7KQ3（证书新办）已审核通过。"]
    assert free.subject == "订单 XB-261125-7KQ3：审核通过"


def test_a_rejection_names_what_to_fix(settings: Settings) -> None:
    fix: list[Field] = [f for f in CERTIFICATE.fields if f.key == "mobile"]
    assert applicant_notice(an_order(), Event.REJECT, settings, fix).body == (
        "您的订单 XB-261125-7KQ3（证书新办）未通过审核。\n驳回理由：附件二不清晰\n"
        f"需要修改：{fix[0].title}。\n"
        "请回复「修改 XB-261125-7KQ3」按提示修改后重新提交，其余内容无需重填。")


def test_the_pickup_notice_says_what_to_bring_where_and_when() -> None:
    settings = Settings.model_validate({"centre": {
        "address": "临沂市兰山区测试路 1 号", "opening_days": [1, 2, 3, 4, 5, 6],
        "pickup_notes": "请携带身份证原件和授权书。"}})
    text = str(applicant_notice(an_order(), Event.AWAIT_PICKUP, settings).replies[0])
    assert text == ("您的订单 XB-261125-7KQ3（证书新办）的证书已可领取。请携带身份证原件和授权书。"
                    "地址：临沂市兰山区测试路 1 号；工作时间：周一至周六 08:30-12:00、13:30-17:30"
                    "（法定节假日除外）。")


def test_a_notice_that_sends_to_a_person_names_the_centre_and_how_to_reach_it() -> None:
    settings = Settings.model_validate({"centre": {"name": "临沂测试CA中心", "phone": "0539-1",
                                                   "qq": "800"}})
    text = str(applicant_notice(an_order(), NoticeKind.UKEY_NOT_OURS, settings).replies[0])
    assert "请联系临沂测试CA中心（电话 0539-1，QQ 800）。" in text


def test_an_unlock_approval_sends_the_clerk_to_the_key_agent(settings: Settings) -> None:
    """With key agents the clerk types the new PIN: no technician is promised (issue 13)."""
    agents = settings.model_copy(update={"agents": settings.agents.model_copy(
        update={"enabled": True, "public_url": "https://ca.example.test"})})
    unlock = applicant_notice(an_order(OrderType.UNLOCK, None), Event.APPROVE, agents)
    [text] = unlock.replies
    assert "请在插着 UKEY 的电脑上的密钥代理窗口输入新密码（两次）" in str(text)
    assert "https://ca.example.test/agent/" in str(text)
    assert "技术人员" not in str(text)
