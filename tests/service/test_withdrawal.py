"""撤回 订单号: the applicant takes back an order nobody has reviewed yet; after review it is
refused with the reason. The staff are told in the transaction of the change."""

import random
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.runtime import Runtime
from bot.samples import fake_uscc
from bot.services.messages import Account
from storage.models import Company, Order, OrderEvent, OutgoingChat
from tests.support.applicant import apply_until_summary, bind, bind_verified, say, verify
from tests.support.helpers import MakeRuntime

RNG = random.Random(13)
ALICE, BOB = Account("qq", "900001"), Account("qq", "900002")
CONFIG = """
[fees]
certificate = 100
[staff]
technicians = ["qq:900001", "qq:900002"]
group = "qq:900"
approvals_required = {approvals}
"""


async def submitted(runtime: Runtime, account: Account, scans: list[Path]) -> str:
    await apply_until_summary(runtime, account, scans)
    reply = await say(runtime, account, "确认提交")
    number = reply.split("订单号：", 1)[1].split("\n", 1)[0]
    assert f"审核前不想办了，回复「撤回 {number}」" in reply  # where the applicant learns of it
    return number


async def order_of(runtime: Runtime, number: str) -> tuple[Order, list[OrderEvent]]:
    async with runtime.db.transaction() as session:
        order = await session.scalar(select(Order).where(Order.number == number))
        assert order is not None
        events = (await session.scalars(select(OrderEvent).where(
            OrderEvent.order_id == order.id).order_by(OrderEvent.id))).all()
    return order, list(events)


async def staff_told(runtime: Runtime, order_id: int) -> list[str]:
    async with runtime.db.transaction() as session:
        rows = (await session.scalars(select(OutgoingChat).where(
            OutgoingChat.order_id == order_id, OutgoingChat.is_group).order_by(
            OutgoingChat.id))).all()
    return [row.message.get("text", "") for row in rows]


async def technician(runtime: Runtime, who: Account, text: str) -> str:
    return "\n".join(str(r) for r in await runtime.desk.execute(who, text, private=True))


async def test_an_order_not_yet_reviewed_is_withdrawn_and_the_staff_are_told(
        make_runtime: MakeRuntime, scan_files: list[Path]) -> None:
    runtime = await make_runtime(CONFIG.format(approvals=1))
    applicant = Account("qq", "301")
    number = await submitted(runtime, applicant, scan_files)

    reply = await say(runtime, applicant, f"撤回 {number.lower()}")
    assert f"已撤回订单 {number}（证书新办）" in reply
    assert "订单已取消" in reply

    order, events = await order_of(runtime, number)
    assert order.status == "cancelled"
    assert (events[-1].event, events[-1].actor, events[-1].from_status, events[-1].to_status) == (
        "withdraw", "qq:301", "submitted", "cancelled")
    assert any(f"{number} 已由申请人撤回（qq:301）" in text
               for text in await staff_told(runtime, order.id))
    assert "已取消" in await say(runtime, applicant, f"查询 {number}")
    assert number not in await technician(runtime, ALICE, "待审核")
    assert "该订单已取消，不能通过" in await technician(runtime, ALICE, f"通过 {number}")
    assert "qq:301 撤回 待审核 → 已取消：申请人撤回" in await technician(
        runtime, ALICE, f"历史 {number}")
    # once withdrawn, it stays so
    assert "该订单已取消，不能撤回" in await say(runtime, applicant, f"撤回 {number}")


async def test_after_review_the_withdrawal_is_refused_with_the_reason(
        make_runtime: MakeRuntime, scan_files: list[Path]) -> None:
    runtime = await make_runtime(CONFIG.format(approvals=1))
    applicant = Account("qq", "302")
    number = await submitted(runtime, applicant, scan_files)
    assert "已通过" in await technician(runtime, ALICE, f"通过 {number}")

    reply = await say(runtime, applicant, f"撤回 {number}")
    assert "该订单待支付，不能撤回。只有还没有审核的订单才能撤回。" in reply
    assert "如确需取消，请联系" in reply  # the centre, with its phone and QQ when set
    order, events = await order_of(runtime, number)
    assert order.status == "approved"
    assert events[-1].event == "approve"

    rejected = await submitted(runtime, applicant, scan_files)
    await technician(runtime, ALICE, f"驳回 {rejected} 附件二不清晰")
    assert f"已驳回），不能撤回。请回复「修改 {rejected}」" in await say(
        runtime, applicant, f"撤回 {rejected}")
    assert (await order_of(runtime, rejected))[0].status == "rejected"


async def test_with_four_eyes_a_first_approval_already_counts_as_reviewed(
        make_runtime: MakeRuntime, scan_files: list[Path]) -> None:
    runtime = await make_runtime(CONFIG.format(approvals=2))
    applicant = Account("qq", "303")
    number = await submitted(runtime, applicant, scan_files)
    assert "还需另一位技术人员复核" in await technician(runtime, ALICE, f"通过 {number}")
    assert "已有技术人员审核通过（等待另一位复核），不能撤回" in await say(
        runtime, applicant, f"撤回 {number}")
    assert (await order_of(runtime, number))[0].status == "submitted"


async def test_who_may_withdraw_and_how_a_wrong_number_is_answered(
        make_runtime: MakeRuntime, scan_files: list[Path]) -> None:
    runtime = await make_runtime(CONFIG.format(approvals=1))
    filer, stranger = Account("qq", "304"), Account("qq", "305")
    number = await submitted(runtime, filer, scan_files)
    await apply_until_summary(runtime, stranger, scan_files)  # another company
    await say(runtime, stranger, "取消")
    await say(runtime, stranger, "是")
    await verify(runtime, stranger)
    assert f"没有找到本单位的订单 {number}" in await say(runtime, stranger, f"撤回 {number}")
    assert "没有找到本单位的订单 XB-000000-0000" in await say(
        runtime, filer, "撤回 XB-000000-0000")
    for words in ("撤回", "撤回申请"):  # no number: asked for one, not "not found"
        assert "请在「撤回」后面写上订单号" in await say(runtime, filer, words)
    assert (await order_of(runtime, number))[0].status == "submitted"
    # the account that filed it may, verified or not (this one is still pending)
    assert "已撤回" in await say(runtime, filer, f"撤回{number}")


async def test_a_verified_colleague_may_withdraw_a_pending_one_may_not(
        make_runtime: MakeRuntime, scan_files: list[Path]) -> None:
    runtime = await make_runtime(CONFIG.format(approvals=1))
    filer, colleague, newcomer = Account("qq", "311"), Account("qq", "312"), Account("qq", "313")
    number = await submitted(runtime, filer, scan_files)
    order, _ = await order_of(runtime, number)
    async with runtime.db.transaction() as session:
        uscc = await session.scalar(select(Company.uscc).where(Company.id == order.company_id))
    for account in (colleague, newcomer):
        await bind(runtime, account, uscc, "临沂测试建设有限公司")
        await say(runtime, account, "取消")
        await say(runtime, account, "是")
    await verify(runtime, colleague)
    # a pending account sees only what it filed itself
    assert f"没有找到本单位的订单 {number}" in await say(runtime, newcomer, f"撤回 {number}")
    assert "已撤回" in await say(runtime, colleague, f"撤回 {number}")
    _, events = await order_of(runtime, number)
    assert events[-1].actor == "qq:312"


@pytest.mark.parametrize("word", ["查询", "撤回", "修改", "解锁状态", "开票"])
@pytest.mark.parametrize("space", [" ", ""], ids=["spaced", "glued"])
async def test_every_order_command_says_a_number_no_order_has_is_not_found(
        make_runtime: MakeRuntime, word: str, space: str) -> None:
    """A number shaped like an order's but no order's (a typo in its date) is 没有找到, never the
    menu or 「请写上订单号」, whichever command it follows, with or without the space."""
    runtime = await make_runtime(CONFIG.format(approvals=1))
    clerk = Account("qq", "5001")
    await bind_verified(runtime, clerk, fake_uscc(RNG), "临沂撤回测试有限公司")
    reply = await say(runtime, clerk, f"{word}{space}XB-000000-0000")
    assert "没有找到本单位的订单 XB-000000-0000" in reply
