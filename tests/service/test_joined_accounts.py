"""One person, several channels: 「绑定其他渠道」 on an account gives a one-time code, 「绑定 码」
on an unbound account of another channel makes it the same person (company, standing, orders);
wrong, expired, reused and guessed codes join nothing; the first account is told; 解绑 of a
joined account detaches it alone, of the first the whole person."""

import asyncio
import random
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.domain.lifecycle import OrderStatus, OrderType
from bot.domain.trust import HandlerStatus
from bot.runtime import Runtime
from bot.samples import fake_uscc
from bot.services.filing import file_order
from bot.services.messages import Account, Reply
from storage.models import JoinCode, OutgoingMail, utcnow
from storage.repositories import Handlers, Orders, accounts_of
from tests.support.applicant import bind, bind_verified, say, verify
from tests.support.helpers import MakeRuntime, RecordingChat, free_port

RNG = random.Random(1616)
TECHNICIAN = Account("qq", "900001")
COMPANY = "临沂多渠道建设有限公司"
FIRST, SECOND = Account("console", "zhang"), Account("qq", "160001")


@pytest.fixture
def chat() -> RecordingChat:
    return RecordingChat()


@pytest.fixture
async def runtime(make_runtime: MakeRuntime, database_url: str, chat: RecordingChat) -> Runtime:
    return await make_runtime(f'[database]\nurl = "{database_url}"\n'
                              '[staff]\ntechnicians = ["qq:900001"]\ngroup = "qq:900"\n', chat)


def told(chat: RecordingChat, account: Account) -> str:
    return "\n".join(str(reply) for to, reply in chat.sent if to == str(account))


async def technician(runtime: Runtime, text: str) -> str:
    replies: list[Reply] = await runtime.desk.execute(TECHNICIAN, text, private=True)
    return "\n".join(str(r) for r in replies)


async def a_code(runtime: Runtime, account: Account) -> str:
    reply = await say(runtime, account, "绑定其他渠道")
    found = re.search(r"向机器人发送：绑定 (\S+)", reply)
    assert found is not None, reply
    assert "在另一个渠道（微信公众号/QQ）向机器人发送：绑定 " in reply
    assert "10 分钟内有效，只能使用一次" in reply
    return found.group(1)


async def an_unlock_of(runtime: Runtime, account: Account) -> str:
    """An unlock order the account's person filed (straight into the database)."""
    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(account.platform, account.user_id)
        assert handler is not None
        order = await file_order(session, runtime.settings, order_type=OrderType.UNLOCK,
                                 values={"company_name": COMPANY}, scans={},
                                 company_id=handler.company_id, handler_id=handler.id,
                                 actor=str(account))
        return order.number


async def status_of(runtime: Runtime, account: Account) -> HandlerStatus | None:
    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(account.platform, account.user_id)
        return None if handler is None else handler.status


async def joined(runtime: Runtime, account: Account) -> list[Account]:
    async with runtime.db.transaction() as session:
        return await accounts_of(session, account)


async def test_a_second_channel_is_the_same_person_and_follows_up(
        runtime: Runtime, chat: RecordingChat) -> None:
    await bind_verified(runtime, FIRST, fake_uscc(RNG), COMPANY)
    number = await an_unlock_of(runtime, FIRST)
    assert await joined(runtime, SECOND) == [SECOND]  # a stranger: itself alone
    code = await a_code(runtime, FIRST)

    assert "「绑定 绑定码」" in await say(runtime, SECOND, "你好")  # the welcome says how
    reply = await say(runtime, SECOND, f"绑定 {code.lower()}")  # typed in either case
    assert "绑定成功" in reply
    assert f"代表【{COMPANY}】（已核验）" in reply
    assert "请回复：" in reply
    assert "【待核验】" not in reply
    assert "统一社会信用代码" not in reply  # the binding questions it began are gone
    assert "统一社会信用代码" not in await say(runtime, SECOND, "嗯")
    # the first account is told, naming the new one, so a join it did not make is noticed
    assert re.search(r"【渠道绑定】.*账号 qq:160001 用您申请的渠道绑定码绑定为您本人",
                     told(chat, FIRST))
    assert await joined(runtime, FIRST) == [FIRST, SECOND]
    assert await joined(runtime, SECOND) == [SECOND, FIRST]

    assert number in await say(runtime, SECOND, "我的订单")
    detail = await say(runtime, SECOND, f"查询 {number}")
    assert number in detail
    assert "没有找到" not in detail
    assert "没有找到" not in await say(runtime, SECOND, f"解锁状态 {number}")
    assert "已撤回" in await say(runtime, SECOND, f"撤回 {number}")
    async with runtime.db.transaction() as session:
        order = await Orders(session).by_number(number)
        assert order is not None
        assert order.status is OrderStatus.CANCELLED
        events = await Orders(session).events(order.id)
    assert events[-1].actor == str(SECOND)  # the log names the channel that did it
    # a verified command runs on the joined account as on the first
    assert "尚未核验" not in await say(runtime, SECOND, "绑定密钥代理")


async def test_a_pending_person_stays_pending_and_is_verified_on_every_channel(
        runtime: Runtime, chat: RecordingChat) -> None:
    owner = Account("qq", "160101")
    await bind_verified(runtime, owner, uscc := fake_uscc(RNG), COMPANY)
    await an_unlock_of(runtime, owner)
    await bind(runtime, FIRST, uscc, COMPANY, "李四", "13900001111")  # vouch route: pending
    mine = await an_unlock_of(runtime, FIRST)
    code = await a_code(runtime, FIRST)
    assert "核验通过后两边同时生效" in await say(runtime, FIRST, "绑定其他渠道")
    assert "已使用或已过期" in await say(runtime, SECOND, f"绑定 {code}")  # lapsed by the new one
    code = await a_code(runtime, FIRST)

    reply = await say(runtime, SECOND, f"绑定 {code}")
    assert f"代表【{COMPANY}】（待核验）" in reply
    assert "【待核验】" in reply
    assert await status_of(runtime, SECOND) is HandlerStatus.PENDING
    orders = await say(runtime, SECOND, "我的订单")
    assert mine in orders
    assert "只显示您自己提交的订单" in orders
    assert "尚未核验，暂不能办理「挂失」" in await say(runtime, SECOND, "挂失")
    assert "【待核验】" in await say(runtime, SECOND, "嗯")  # the menu read from the memo

    await verify(runtime, FIRST)  # a technician's approval, on the first channel's request
    assert await status_of(runtime, SECOND) is HandlerStatus.VERIFIED
    assert "【待核验】" not in await say(runtime, SECOND, "嗯")  # the memo forgot it too
    assert "只显示您自己提交的订单" not in await say(runtime, SECOND, "我的订单")


async def test_wrong_expired_used_and_guessed_codes_join_nothing(
        runtime: Runtime, chat: RecordingChat) -> None:
    await bind_verified(runtime, FIRST, fake_uscc(RNG), COMPANY)
    stranger, late = Account("qq", "160201"), Account("qq", "160202")

    code = await a_code(runtime, FIRST)
    async with runtime.db.transaction() as session:
        await session.execute(update(JoinCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert "已使用或已过期" in await say(runtime, late, f"绑定 {code}")
    assert await status_of(runtime, late) is None

    code = await a_code(runtime, FIRST)
    assert "绑定成功" in await say(runtime, SECOND, f"绑定 {code}")
    refused = await say(runtime, late, f"绑定 {code}")  # used
    assert "渠道绑定码不正确、已使用或已过期，本账号没有绑定" in refused
    assert "「绑定其他渠道」" in refused
    assert await status_of(runtime, late) is None
    assert await joined(runtime, FIRST) == [FIRST, SECOND]

    # an account bound on its own (another company) must be unbound first
    other = Account("qq", "160203")
    await bind_verified(runtime, other, fake_uscc(RNG), "临沂别家有限公司")
    code = await a_code(runtime, FIRST)
    reply = await say(runtime, other, f"绑定 {code}")
    assert "本账号已绑定【临沂别家有限公司】" in reply
    assert "「解绑」" in reply
    assert await joined(runtime, other) == [other]

    # guessing: after 5 wrong codes even the right one is refused for a while
    for n in range(5):
        assert "本账号没有绑定" in await say(runtime, stranger, f"绑定 ZZZZZZ{n + 2}Z")
    assert "次数过多" in await say(runtime, stranger, f"绑定 {code}")
    assert await status_of(runtime, stranger) is None
    assert "绑定成功" in await say(runtime, late, f"绑定 {code}")  # it was not used up


async def test_concurrent_redemptions_of_one_code_join_one_account(runtime: Runtime) -> None:
    await bind_verified(runtime, FIRST, fake_uscc(RNG), COMPANY)
    code = await a_code(runtime, FIRST)
    racers = [Account("qq", f"16030{n}") for n in range(4)]
    replies = await asyncio.gather(*(say(runtime, a, f"绑定 {code}") for a in racers))
    assert sum("绑定成功" in r for r in replies) == 1
    winner = racers[next(i for i, r in enumerate(replies) if "绑定成功" in r)]
    assert await joined(runtime, FIRST) == [FIRST, winner]
    assert [await status_of(runtime, a) for a in racers if a != winner] == [None] * 3


async def test_unbinding_a_joined_account_detaches_it_and_the_first_takes_the_person(
        runtime: Runtime, chat: RecordingChat) -> None:
    await bind_verified(runtime, FIRST, fake_uscc(RNG), COMPANY)
    third = Account("qq", "160401")
    for account in (SECOND, third):
        assert "绑定成功" in await say(runtime, account, f"绑定 {await a_code(runtime, FIRST)}")
    assert "同一人的其他渠道：qq:160001" in await technician(runtime, f"成员 {COMPANY}")

    answer = await technician(runtime, f"解绑 {SECOND}")
    assert "已解绑账号 qq:160001：它不再与 console:zhang 是同一位经办人" in answer
    assert await status_of(runtime, SECOND) is None
    assert await status_of(runtime, FIRST) is HandlerStatus.VERIFIED
    assert await joined(runtime, FIRST) == [FIRST, third]
    assert f"解除您的账号与【{COMPANY}】的绑定" in told(chat, SECOND)
    assert "账号 qq:160401 用您申请的渠道绑定码" in told(chat, SECOND)  # a joined one is told too
    assert "技术人员已于" in told(chat, FIRST)
    assert "您的其他账号不受影响" in told(chat, FIRST)
    assert "欢迎使用" in await say(runtime, SECOND, "你好")  # unbound: it may bind anew

    answer = await technician(runtime, f"解绑 {FIRST}")
    assert "连同同一人的其他渠道 qq:160401" in answer
    assert await status_of(runtime, FIRST) is HandlerStatus.REMOVED
    assert await status_of(runtime, third) is HandlerStatus.REMOVED
    assert "欢迎使用" in await say(runtime, third, "你好")
    assert "解除您的账号与【" in told(chat, third)
    # binding anew ends the join: the other channel does not follow the first's new binding
    await bind(runtime, FIRST, fake_uscc(RNG), "临沂新单位有限公司")
    assert await joined(runtime, FIRST) == [FIRST]
    assert await status_of(runtime, third) is None  # unbound, as any new account


async def test_the_first_account_is_told_by_mail_too(make_runtime: MakeRuntime,
                                                     database_url: str) -> None:
    """Where the person set an address: a join it did not make is noticed off the chat too."""
    runtime = await make_runtime(  # nothing listens on the mail port: the mail stays queued
        f'[database]\nurl = "{database_url}"\n[email]\nenabled = true\nhost = "127.0.0.1"\n'
        f'port = {free_port()}\nsecurity = "none"\nfrom_address = "ca@centre.example"\n'
        "retry_seconds = 3600\n", RecordingChat())
    await bind_verified(runtime, FIRST, fake_uscc(RNG), COMPANY)
    assert "已设置通知邮箱" in await say(runtime, FIRST, "邮箱 zhang@example.test")
    assert "绑定成功" in await say(runtime, SECOND, f"绑定 {await a_code(runtime, FIRST)}")
    async with runtime.db.transaction() as session:
        mails = (await session.scalars(select(OutgoingMail))).all()
    assert [(m.to_address, m.subject) for m in mails] == [
        ("zhang@example.test", f"【{COMPANY}】新的渠道已绑定到您的经办人身份")]
    assert "账号 qq:160001 用您申请的渠道绑定码绑定为您本人" in mails[0].body


async def test_an_account_unbound_before_joins_and_a_joined_one_gives_codes_too(
        runtime: Runtime, chat: RecordingChat) -> None:
    """An account a technician unbound (its own row kept, removed) may join a person, and acts
    as that person, not as its old binding; a code asked on a joined account joins as well."""
    await bind_verified(runtime, FIRST, fake_uscc(RNG), COMPANY)
    await bind_verified(runtime, SECOND, fake_uscc(RNG), "临沂旧单位有限公司")
    await technician(runtime, f"解绑 {SECOND}")
    assert await status_of(runtime, SECOND) is HandlerStatus.REMOVED

    assert "绑定成功" in await say(runtime, SECOND, f"绑定 {await a_code(runtime, FIRST)}")
    assert await status_of(runtime, SECOND) is HandlerStatus.VERIFIED
    assert f"当前单位：{COMPANY}" in await say(runtime, SECOND, "帮助")
    third = Account("qq", "160501")
    reply = await say(runtime, third, f"绑定 {await a_code(runtime, SECOND)}")
    assert "本账号与 qq:16**01 是同一位经办人" in reply
    assert await joined(runtime, FIRST) == [FIRST, SECOND, third]
    assert "账号 qq:160501 用您申请的渠道绑定码" in told(chat, FIRST)

    # the person's orders are one person's: 删除我的资料 from any channel asks for them all
    number = await an_unlock_of(runtime, FIRST)
    async with runtime.db.transaction() as session:
        order = await Orders(session).by_number(number)
        assert order is not None
        order.status = OrderStatus.COMPLETED
    assert number in await say(runtime, third, "删除我的资料")


async def test_bare_binding_word_begins_or_recalls_the_binding_questions(
        runtime: Runtime) -> None:
    stranger = Account("qq", "160601")
    reply = await say(runtime, stranger, "绑定")
    assert "欢迎使用" in reply
    assert "【统一社会信用代码】" in reply
    again = await say(runtime, stranger, "绑定")  # the questions are recalled, not begun again
    assert "「绑定 绑定码」" in again
    assert "【统一社会信用代码】" in again
    assert "欢迎使用" not in again
