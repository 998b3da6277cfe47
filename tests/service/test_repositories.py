"""The queries behind 我的订单 (an applicant's company orders) and 待审核 (the review queue), on
SQLite and on a real PostgreSQL server: what they list, in which order, which rows they leave
out, and the dates as the applicant reads them."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.lifecycle import OrderStatus, OrderType
from bot.domain.trust import HandlerStatus
from bot.runtime import Runtime
from bot.samples import fake_uscc
from bot.services.applications.dialogue import ORDER_LIST_LIMIT
from bot.services.filing import file_order
from bot.services.messages import Account, Incoming
from storage.models import Order
from storage.repositories import Companies, Handlers, Orders
from tests.support.helpers import MakeRuntime

TECHNICIAN = Account("qq", "900001")
MOMENT = datetime(2026, 11, 25, 17, 30, tzinfo=UTC)  # already the 26th in Shanghai


@pytest.fixture
async def runtime(make_runtime: MakeRuntime, database_url: str) -> Runtime:
    return await make_runtime(f'[database]\nurl = "{database_url}"\n[fees]\ncertificate = 260\n'
                              '[staff]\ntechnicians = ["qq:900001"]\n')


async def place(runtime: Runtime, company_id: int, status: OrderStatus, at: datetime,
                kind: str = "新办") -> str:
    """An order as if filed at ``at`` and moved on to ``status`` since."""
    async with runtime.db.transaction() as session:
        order = await file_order(
            session, runtime.settings, order_type=OrderType.CERTIFICATE,
            values={"apply_kind": kind, "region": "临沂", "ukey_count": "1"}, scans={},
            company_id=company_id, actor="test")
        order.status, order.created_at, order.submitted_at = status, at, at
        return order.number


async def test_my_orders_and_the_review_queue(runtime: Runtime) -> None:
    async with runtime.db.transaction() as session:
        ours = await Companies(session).add(fake_uscc(), "临沂查询测试有限公司", None)
        theirs = await Companies(session).add(fake_uscc(), "临沂别家测试有限公司", None)
        for user, company in (("801", ours), ("802", ours), ("803", theirs)):
            handler = await Handlers(session).bind("qq", user, company)
            handler.status = HandlerStatus.VERIFIED  # they see the company's orders
        ours_id, theirs_id = ours.id, theirs.id

    statuses = [OrderStatus.SUBMITTED, OrderStatus.RESUBMITTED, OrderStatus.APPROVED,
                OrderStatus.REJECTED, OrderStatus.SHIPPED]
    placed: list[tuple[datetime, str, OrderStatus]] = []
    for n in range(12):  # two at the very same moment: the later one counts as newer
        at = MOMENT - timedelta(hours=n if n != 5 else 4)
        status = statuses[n % len(statuses)]
        placed.append((at, await place(runtime, ours_id, status, at,
                                       "补办" if n == 0 else "新办"), status))
    elsewhere = [await place(runtime, theirs_id, OrderStatus.SUBMITTED,
                             MOMENT - timedelta(days=2, minutes=n)) for n in range(3)]

    # 我的订单: this company's newest ten of twelve, newest first, whoever of its handlers asks
    newest = [number for _, (_, number, _) in sorted(  # same moment: the later filed first
        enumerate(placed), key=lambda p: (p[1][0], p[0]), reverse=True)]
    for user in ("801", "802"):
        [listing] = await runtime.dialogue.handle(Account("qq", user), Incoming(text="我的订单"))
        assert listing.startswith(
            f"【临沂查询测试有限公司】的订单（最近 {ORDER_LIST_LIMIT} 个，共 12 个）")
        shown = [line.split("订单号：")[1] for line in listing.splitlines() if "订单号：" in line]
        assert shown == newest[:ORDER_LIST_LIMIT]
        assert not any(number in listing for number in elsewhere)
        first = listing.split("2. ")[0]
        assert "订单类型：证书补办　订单日期：2026-11-26　金额：¥260.00" in first
        assert "订单状态：待审核" in first
    [theirs_list] = await runtime.dialogue.handle(Account("qq", "803"), Incoming(text="我的订单"))
    assert "（共 3 个）" in theirs_list
    assert not any(number in theirs_list for _, number, _ in placed)

    # 待审核: submitted and resubmitted orders of every company, the longest waiting first
    waiting = sorted([(at, number, status) for at, number, status in placed
                      if status in (OrderStatus.SUBMITTED, OrderStatus.RESUBMITTED)]
                     + [(MOMENT - timedelta(days=2, minutes=n), number, OrderStatus.SUBMITTED)
                        for n, number in enumerate(elsewhere)], key=lambda w: w[0])
    [queue] = await runtime.desk.execute(TECHNICIAN, "待审核", private=True)
    lines = queue.splitlines()
    assert lines[0] == f"待审核订单（{len(waiting)} 个，等得最久的在前）："
    assert [line.split()[1] for line in lines[1:-1]] == [number for _, number, _ in waiting]
    for line, (_, _, status) in zip(lines[1:-1], waiting, strict=True):
        assert line.endswith("（重新提交）") == (status == OrderStatus.RESUBMITTED)
    async with runtime.db.transaction() as session:
        first_three = await Orders(session).in_review(3)
        assert [o.number for o in first_three] == [number for _, number, _ in waiting[:3]]
        assert {o.company.name for o in first_three} == {"临沂别家测试有限公司"}
        assert await Orders(session).count_of_company(ours_id) == 12
        assert await session.get(Order, first_three[0].id) is not None
