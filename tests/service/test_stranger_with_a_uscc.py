"""A second chat account that knows only a company's USCC and name, against what this session
added (remembered answers, 撤回, 开票, 重新续期, 删除我的资料, 修改/查询 by number, 人工客服): it
binds pending and can touch nothing of the company's — every command about the company's order
says 没有找到, no answer of the company's clerk is offered, and the order is left as it was."""

import random
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_uscc
from bot.services.messages import Account
from storage.models import Order, OrderEvent
from storage.repositories import accounts_of
from tests.support.applicant import bind, bind_verified, say
from tests.support.helpers import MakeRuntime

RNG = random.Random(2026)
CLERK, STRANGER, TECHNICIAN = Account("qq", "6001"), Account("qq", "6666"), Account("qq", "900001")
COMPANY = "临沂陌生人测试有限公司"
CONFIG = """
[fees]
certificate = 100
renewal = 200
[staff]
technicians = ["qq:900001"]
[agents]
enabled = true
[pki]
enabled = true
"""


@pytest.fixture
async def runtime(make_runtime: MakeRuntime, database_url: str,
                  monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setenv("CADESK_SO_MASTER", "ab" * 32)
    return await make_runtime(f'[database]\nurl = "{database_url}"\n' + CONFIG)


async def order_state(runtime: Runtime, number: str) -> tuple[str, int, dict]:
    async with runtime.db.transaction() as session:
        order = await session.scalar(select(Order).where(Order.number == number))
        assert order is not None
        events = len((await session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order.id))).all())
        return order.status, events, dict(order.fields)


async def test_a_stranger_with_the_uscc_and_name_can_touch_nothing_of_the_company(
        runtime: Runtime, scan_files: list[Path]) -> None:
    uscc = fake_uscc(RNG)
    await bind_verified(runtime, CLERK, uscc, COMPANY)
    clerk_id = fake_id_number(RNG)  # the clerk's answers: never offered to the stranger
    for text in ("新办证书", "1", "临沂", "1", "张三", clerk_id, "13912345678", "自取"):
        await say(runtime, CLERK, text)
    assert "请核对" in await say(runtime, CLERK, "", *scan_files)
    reply = await say(runtime, CLERK, "确认提交")
    number = reply.split("订单号：", 1)[1].split()[0]
    before = await order_state(runtime, number)

    assert "待核验" in await bind(runtime, STRANGER, uscc, COMPANY)
    await say(runtime, STRANGER, "取消")
    await say(runtime, STRANGER, "是")
    for command in ("查询", "撤回", "修改", "开票", "解锁状态"):
        for typed in (f"{command} {number}", f"{command}{number}"):
            answer = await say(runtime, STRANGER, typed)
            assert f"没有找到本单位的订单 {number}" in answer, (typed, answer)
    renew = await say(runtime, STRANGER, f"重新续期 {number}")
    assert "核验" in renew  # verified handlers only: it says how to get verified
    assert number not in await say(runtime, STRANGER, "我的订单")

    # a form of its own: nothing the company's clerk answered is offered
    await say(runtime, STRANGER, "新办证书")
    for text in ("1", "临沂", "1"):
        offered = await say(runtime, STRANGER, text)
        assert "沿用上次" not in offered
        assert "张三" not in offered
    await say(runtime, STRANGER, "取消")
    await say(runtime, STRANGER, "是")

    # asking for its data to be deleted reaches nothing of the company's
    erase = await say(runtime, STRANGER, "删除我的资料")
    assert number not in erase
    await runtime.desk.execute(TECHNICIAN, f"确认删除 {STRANGER}", private=True)

    # a person asked for: the technicians see it is an unverified account
    await say(runtime, STRANGER, "人工客服 帮我撤回这家公司的订单")
    told = [str(r) for to, r in runtime.chat_outbox.chat.sent if str(to) == str(TECHNICIAN)]
    assert any("待核验" in t and "人工客服" in t for t in told)

    assert await order_state(runtime, number) == before  # nothing moved, nothing written
    assert clerk_id not in "".join(str(r) for to, r in runtime.chat_outbox.chat.sent
                                   if str(to) == str(STRANGER))


async def test_a_stranger_on_the_official_channels_joins_only_itself(
        runtime: Runtime, scan_files: list[Path]) -> None:
    """This session's additions, against the same stranger: an account on WeChat binds with the
    company's USCC and name, joins a QQ-official account of its own with 绑定其他渠道, and
    guesses join codes. Both its accounts stay 待核验 and see nothing of the company's; no guess
    joins it to the clerk; the clerk's notices never take the stranger's channels."""
    uscc = fake_uscc(RNG)
    await bind_verified(runtime, CLERK, uscc, COMPANY)
    for text in ("新办证书", "1", "临沂", "1", "张三", fake_id_number(RNG), "13912345678", "自取"):
        await say(runtime, CLERK, text)
    await say(runtime, CLERK, "", *scan_files)
    number = (await say(runtime, CLERK, "确认提交")).split("订单号：", 1)[1].split()[0]
    before = await order_state(runtime, number)

    wechat, qqbot = Account("wechat", "o-stranger"), Account("qqbot", "QQ-STRANGER")
    assert "待核验" in await bind(runtime, wechat, uscc, COMPANY)
    await say(runtime, wechat, "取消")
    await say(runtime, wechat, "是")
    code = (await say(runtime, wechat, "绑定其他渠道")).split("绑定 ", 1)[1].split()[0]
    assert "待核验" in await say(runtime, qqbot, f"绑定 {code}")  # joined: still unverified
    guesser = Account("qqbot", "QQ-GUESSER")
    for guess in ("12345678", "ABCDEFGH", "00000000", "ZZZZZZZZ", "11111111", code):
        refused = await say(runtime, guesser, f"绑定 {guess}")
        assert "本账号没有绑定" in refused or "输错的次数过多" in refused, refused
    assert "输错的次数过多" in refused  # guessing stops, and a used code joins nothing
    async with runtime.db.transaction() as session:
        assert await accounts_of(session, guesser) == [guesser]
    async with runtime.db.transaction() as session:
        clerks, strangers = (await accounts_of(session, CLERK),
                             await accounts_of(session, wechat))
    assert clerks == [CLERK]  # the clerk is one person on one channel, as before
    assert set(strangers) <= {wechat, qqbot}
    for account in (wechat, qqbot):
        assert number not in await say(runtime, account, "我的订单")
        answer = await say(runtime, account, f"查询 {number}")
        assert f"没有找到本单位的订单 {number}" in answer

    # a notice of the clerk's order goes to the clerk alone
    await runtime.desk.execute(TECHNICIAN, f"驳回 {number} 附件二不清晰", private=True)
    await runtime.chat_outbox.deliver()
    to_stranger = [str(r) for to, r in runtime.chat_outbox.chat.sent
                   if str(to) in (str(wechat), str(qqbot))]
    assert not any(number in text for text in to_stranger)
    assert any(number in str(r) for to, r in runtime.chat_outbox.chat.sent
               if str(to) == str(CLERK))
    assert (await order_state(runtime, number))[0] != before[0]  # the technician's, not theirs
