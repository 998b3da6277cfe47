"""Every notice reaches its person through a path the platform allows: a reply inside the reply
window (quoting their last message), a push while the month's allowance lasts, else held for
their next message (「您有 N 条新通知：……」 before the answer) and mailed at once — on SQLite
and PostgreSQL. The fake channel below is the platform; the outbox deciding is the real one."""

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.runtime import Runtime
from bot.services.messages import Account, Picture
from bot.services.notify import Notice
from storage.models import ChatReach, OutgoingChat, OutgoingMail, utcnow
from storage.repositories import Orders
from tests.support.applicant import apply_until_summary, replies_to, say
from tests.support.helpers import MakeRuntime

TECHNICIAN = Account("qq", "900001")  # OneBot: always open
CONFIG = """
[database]
url = "{url}"
[staff]
technicians = ["qq:900001"]
[fees]
certificate = 260
[chat]
retry_seconds = 3600
[email]
enabled = true
host = "127.0.0.1"
port = 9
security = "none"
retry_seconds = 3600
{channels}
"""  # nothing listens on the mail port: what was mailed stays in outgoing_mail to be read


class WindowChat:
    """The platform: takes every message, and says how it was sent (a reply quoting which
    message, or a push)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, object, str | None]] = []  # how, to, reply, reply_to
        self.template = False  # WeChat: a template message set up (else a push is refused)

    async def send(self, account: object, replies: Sequence[object], *,
                   reply_to: str | None = None) -> bool:
        self.sent += [("send", str(account), reply, reply_to) for reply in replies]
        return True

    async def push(self, account: object, replies: Sequence[object]) -> bool:
        if str(account).startswith("wechat:") and not self.template:
            return False
        self.sent += [("push", str(account), reply, None) for reply in replies]
        return True

    async def send_group(self, group: object, replies: Sequence[object]) -> bool:
        return True

    def connected(self) -> dict[str, int]:
        return {"qq": 1, "qqbot": 1, "wechat": 1}

    def to(self, account: Account) -> list[tuple[str, object, str | None]]:
        return [(how, reply, ref) for how, who, reply, ref in self.sent if who == str(account)]


@pytest.fixture
def chat() -> WindowChat:
    return WindowChat()


async def start(make_runtime: MakeRuntime, url: str, chat: WindowChat,
                channels: str = "") -> Runtime:
    return await make_runtime(CONFIG.format(url=url, channels=channels), chat=chat)


async def submit(runtime: Runtime, account: Account, scans: list[Path]) -> str:
    await apply_until_summary(runtime, account, scans)
    reply = await say(runtime, account, "确认提交", ref="m-submit")
    return reply.split("订单号：", 1)[1].split("\n", 1)[0]


async def reach_of(runtime: Runtime, account: Account) -> ChatReach | None:
    async with runtime.db.transaction() as session:
        return await session.scalar(select(ChatReach).where(
            ChatReach.platform == account.platform, ChatReach.user_id == account.user_id))


async def window_lapses(runtime: Runtime, account: Account) -> None:
    """Their last message is a long time ago: the reply window has closed."""
    async with runtime.db.transaction() as session:
        await session.execute(update(ChatReach).where(
            ChatReach.platform == account.platform, ChatReach.user_id == account.user_id)
            .values(last_message_at=utcnow() - timedelta(days=3)))


async def tell(runtime: Runtime, account: Account, *texts: str) -> None:
    """Chat-only notices (no mail of their own), as an expiry reminder is queued."""
    async with runtime.db.transaction() as session:
        for text in texts:
            await runtime.dialogue.notifier.notify_account(session, account, [text])
    await runtime.chat_outbox.deliver()


async def history(runtime: Runtime, number: str) -> str:
    return str((await runtime.desk.execute(TECHNICIAN, f"历史 {number}", private=True))[0])


async def mails_to(runtime: Runtime, address: str) -> list[OutgoingMail]:
    async with runtime.db.transaction() as session:
        return list((await session.scalars(select(OutgoingMail).where(
            OutgoingMail.to_address == address).order_by(OutgoingMail.id))).all())


async def test_a_notice_inside_the_window_is_a_reply_to_their_last_message(
        make_runtime: MakeRuntime, database_url: str, chat: WindowChat,
        scan_files: list[Path]) -> None:
    runtime = await start(make_runtime, database_url, chat)
    applicant = Account("qqbot", "OPENID-A")
    number = await submit(runtime, applicant, scan_files)
    await runtime.desk.execute(TECHNICIAN, f"驳回 {number} 附件二不清晰", private=True)

    [(how, reply, ref)] = chat.to(applicant)
    assert (how, ref) == ("send", "m-submit")  # QQ's passive reply, quoting 确认提交
    assert f"您的订单 {number}（证书新办）未通过审核" in str(reply)
    told = await history(runtime, number)
    assert "未通过审核" in told
    assert "：已发送（QQ 官方机器人，回复）" in told
    assert "→ qq:900001" in told
    assert "：已发送（QQ（OneBot））" in told


async def test_an_always_open_channel_records_nothing(
        make_runtime: MakeRuntime, database_url: str, chat: WindowChat) -> None:
    runtime = await start(make_runtime, database_url, chat)
    applicant = Account("qq", "1")
    assert "欢迎使用" in await say(runtime, applicant, "你好", ref="1")
    assert await reach_of(runtime, applicant) is None  # OneBot: no window, no write


async def test_replies_per_message_then_the_months_pushes_then_held(
        make_runtime: MakeRuntime, database_url: str, chat: WindowChat) -> None:
    runtime = await start(make_runtime, database_url, chat, channels="[channels]\n"
                          "qqbot = { replies_per_message = 4, proactive_per_month = 1 }")
    applicant = Account("qqbot", "OPENID-B")
    answer = await replies_to(runtime, applicant, "你好", ref="m1")
    reach = await reach_of(runtime, applicant)
    assert reach is not None
    assert reach.last_ref == "m1"
    assert reach.replies_used == len(answer)  # the answer used replies of the four
    left = 4 - len(answer)
    assert left > 0

    await tell(runtime, applicant, *(f"通知{n}" for n in range(1, left + 4)))
    sent = chat.to(applicant)
    assert sent == [*(("send", f"通知{n}", "m1") for n in range(1, left + 1)),
                    ("push", f"通知{left + 1}", None)]  # the rest are held, in order

    # a new month: one more push, then held again
    async with runtime.db.transaction() as session:
        await session.execute(update(ChatReach).values(push_month="2000-01"))
        await session.execute(update(OutgoingChat).where(OutgoingChat.path == "held")
                              .values(next_attempt_at=utcnow()))
    await runtime.chat_outbox.deliver()
    assert chat.to(applicant)[len(sent):] == [("push", f"通知{left + 2}", None)]

    # their next message: the last one first, then the answer
    replies = await replies_to(runtime, applicant, "你好", ref="m2")
    assert str(replies[0]) == f"您有 1 条新通知：\n1. 通知{left + 3}"
    reach = await reach_of(runtime, applicant)
    assert reach is not None
    assert (reach.last_ref, reach.replies_used) == ("m2", len(replies))  # the notices' too


async def test_outside_the_window_a_notice_is_held_mailed_and_comes_with_the_next_message(
        make_runtime: MakeRuntime, database_url: str, chat: WindowChat,
        scan_files: list[Path]) -> None:
    runtime = await start(make_runtime, database_url, chat)  # WeChat: no template message
    applicant = Account("wechat", "OPENID-C")
    number = await submit(runtime, applicant, scan_files)
    assert "已设置通知邮箱" in await say(runtime, applicant, "邮箱 jing@example.com")
    await window_lapses(runtime, applicant)

    await runtime.desk.execute(TECHNICIAN, f"驳回 {number} 附件二不清晰", private=True)
    await tell(runtime, applicant, "请注意：您的证书即将到期。")
    assert chat.to(applicant) == []  # no path the platform allows
    mails = await mails_to(runtime, "jing@example.com")
    assert [m.subject for m in mails] == [f"订单 {number}：未通过审核，请修改后重新提交",
                                          "CA 数字证书服务：您有一条新通知"]  # each once
    assert "请注意：您的证书即将到期。" in mails[1].body
    assert "待下次消息，已发邮件" in await history(runtime, number)
    health = await runtime.health.check()
    assert health.chat_outbox is not None
    assert health.chat_outbox.waiting == 0  # waiting by the platform's rules is not late

    reply = await replies_to(runtime, applicant, "我的订单", ref="w9")
    assert str(reply[0]).startswith(
        f"您有 2 条新通知：\n1. 您的订单 {number}（证书新办）未通过审核")
    assert "\n2. 请注意：您的证书即将到期。" in str(reply[0])
    assert number in str(reply[1])
    assert "新通知" not in str(reply[1])
    assert len(await mails_to(runtime, "jing@example.com")) == 2  # not mailed again
    assert "已发送（微信公众号，随下次消息），已发邮件" in await history(runtime, number)
    assert "新通知" not in await say(runtime, applicant, "我的订单")  # delivered once
    await runtime.chat_outbox.deliver()
    assert chat.to(applicant) == []


async def test_a_template_message_tells_them_and_the_notice_comes_with_the_next_message(
        make_runtime: MakeRuntime, database_url: str, chat: WindowChat,
        scan_files: list[Path]) -> None:
    runtime = await start(make_runtime, database_url, chat)
    chat.template = True  # the centre set up WeChat's notice template
    applicant = Account("wechat", "OPENID-D")
    number = await submit(runtime, applicant, scan_files)
    await window_lapses(runtime, applicant)
    await runtime.desk.execute(TECHNICIAN, f"通过 {number}", private=True)
    [(how, summarised, _)] = chat.to(applicant)  # one template for the text and its QR code
    assert how == "push"
    assert "已审核通过" in str(summarised)
    assert "已发模板消息提醒，待下次消息" in await history(runtime, number)
    await runtime.chat_outbox.deliver()
    assert len(chat.to(applicant)) == 1  # told once
    await tell(runtime, applicant, "请注意：您的证书即将到期。")  # a second notice: reminded too
    assert [str(reply) for _, reply, _ in chat.to(applicant)[1:]] == ["请注意：您的证书即将到期。"]

    replies = await replies_to(runtime, applicant, "你好")  # the template says: reply to see it
    assert str(replies[0]).startswith(f"您有 2 条新通知：\n1. 您的订单 {number}")
    assert str(replies[0]).endswith("\n2. 请注意：您的证书即将到期。")
    assert isinstance(replies[1], Picture)
    assert "已发送（微信公众号，随下次消息）" in await history(runtime, number)


async def test_held_notices_are_kept_across_a_restart_and_expire_with_a_trace(
        make_runtime: MakeRuntime, database_url: str, chat: WindowChat,
        scan_files: list[Path]) -> None:
    runtime = await start(make_runtime, database_url, chat)
    applicant, other = Account("wechat", "OPENID-E"), Account("wechat", "OPENID-F")
    number = await submit(runtime, applicant, scan_files)
    other_number = await submit(runtime, other, scan_files)
    for account in (applicant, other):
        await window_lapses(runtime, account)
    await runtime.desk.execute(TECHNICIAN, f"通过 {number}", private=True)
    await runtime.desk.execute(TECHNICIAN, f"通过 {other_number}", private=True)
    await runtime.stop()

    again = await start(make_runtime, database_url, chat)
    replies = await replies_to(again, applicant, "帮助")
    assert str(replies[0]).startswith(f"您有 1 条新通知：\n1. 您的订单 {number}")
    assert isinstance(replies[1], Picture)  # the payment QR code follows the digest

    async with again.db.transaction() as session:  # the other waited past [chat] held_days
        await session.execute(update(OutgoingChat).where(OutgoingChat.path == "held")
                              .values(created_at=utcnow() - timedelta(days=31)))
    await again.chat_outbox.deliver()
    assert "：已过期" in await history(again, other_number)
    assert "新通知" not in await say(again, other, "帮助")


async def test_a_private_notice_held_is_never_mailed(
        make_runtime: MakeRuntime, database_url: str, chat: WindowChat,
        scan_files: list[Path]) -> None:
    runtime = await start(make_runtime, database_url, chat)
    applicant = Account("wechat", "OPENID-G")
    number = await submit(runtime, applicant, scan_files)
    await say(runtime, applicant, "邮箱 li@example.com")
    await window_lapses(runtime, applicant)
    async with runtime.db.transaction() as session:
        order = await Orders(session).by_number(number)
    assert order is not None
    await runtime.dialogue.notifier.tell_applicant(
        order, Notice(["UKEY 初始密码：12345678"], "", "", private=True))
    assert await mails_to(runtime, "li@example.com") == []  # a PIN never goes by mail
    assert "初始密码" in await say(runtime, applicant, "帮助")  # only in the chat, when it can


async def test_a_held_notice_takes_an_always_open_account_joined_later(
        make_runtime: MakeRuntime, database_url: str, chat: WindowChat,
        scan_files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = await start(make_runtime, database_url, chat)
    applicant, onebot = Account("wechat", "OPENID-H"), Account("qq", "7")
    number = await submit(runtime, applicant, scan_files)
    await window_lapses(runtime, applicant)
    await runtime.desk.execute(TECHNICIAN, f"驳回 {number} 附件二不清晰", private=True)
    assert chat.to(applicant) == []

    async def joined(session: object, account: Account) -> list[Account]:
        return [account, onebot] if account == applicant else [account]

    from bot.adapters import chat_outbox
    monkeypatch.setattr(chat_outbox, "accounts_of", joined)  # as `绑定` with a code joins them
    await runtime.chat_outbox.recheck_held([applicant])
    await runtime.chat_outbox.deliver()
    [(how, reply, _)] = chat.to(onebot)
    assert how == "send"
    assert "未通过审核" in str(reply)
    assert "→ wechat:OPENID-H 「您的订单" in (told := await history(runtime, number))
    assert "：已发送（QQ（OneBot））" in told.split("wechat:OPENID-H", 1)[1]


async def test_many_applicants_messages_are_recorded_in_shared_commits(
        make_runtime: MakeRuntime, database_url: str, chat: WindowChat) -> None:
    runtime = await start(make_runtime, database_url, chat)
    accounts = [Account("qqbot", f"CROWD-{n}") for n in range(30)]
    await asyncio.gather(*(say(runtime, a, "你好", ref=f"r-{a.user_id}") for a in accounts))
    for account in accounts:
        reach = await reach_of(runtime, account)
        assert reach is not None
        assert reach.last_ref == f"r-{account.user_id}"
    assert runtime.chat_outbox.message_batches < len(accounts)  # not a commit each
