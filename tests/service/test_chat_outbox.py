"""The chat outbox: notices written with the change they report, delivered once the chat is
back, once each, in order per account, dropped only after [chat] max_age_hours — on SQLite and
PostgreSQL."""

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from loguru import logger
from sqlalchemy import func, select, update

from bot.runtime import Runtime
from bot.services.messages import Account, Picture
from storage.models import OutgoingChat, utcnow
from tests.support.applicant import apply_until_summary, say
from tests.support.helpers import MakeRuntime

TECHNICIAN = Account("qq", "900001")
CONFIG = """
[database]
url = "{url}"
[staff]
technicians = ["qq:900001"]
[fees]
certificate = 260
[chat]
retry_seconds = 3600
"""


class FlakyChat:
    """A ``ChatChannel`` that is offline until told otherwise (the QQ connection dropped), or
    refuses one account."""

    def __init__(self) -> None:
        self.online = False
        self.refused: set[str] = set()
        self.sent: list[tuple[str, object]] = []

    async def send(self, account: object, replies: Sequence[object], *,
                   reply_to: str | None = None) -> bool:
        if not self.online or str(account) in self.refused:
            return False
        self.sent += [(str(account), reply) for reply in replies]
        return True

    async def push(self, account: object, replies: Sequence[object]) -> bool:
        return await self.send(account, replies)

    async def send_group(self, group: object, replies: Sequence[object]) -> bool:
        return await self.send(f"group {group}", replies)

    def connected(self) -> dict[str, int]:
        return {"qq": int(self.online)}

    def to(self, account: Account) -> list[object]:
        return [reply for who, reply in self.sent if who == str(account)]


@pytest.fixture
def chat() -> FlakyChat:
    return FlakyChat()


@pytest.fixture
async def runtime(make_runtime: MakeRuntime, database_url: str, chat: FlakyChat) -> Runtime:
    return await make_runtime(CONFIG.format(url=database_url), chat=chat)


async def submit(runtime: Runtime, account: Account, scans: list[Path]) -> str:
    await apply_until_summary(runtime, account, scans)
    reply = await say(runtime, account, "确认提交")
    return reply.split("订单号：", 1)[1].split("\n", 1)[0]


async def pending(runtime: Runtime) -> int:
    async with runtime.db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(OutgoingChat).where(
            OutgoingChat.sent_at.is_(None), OutgoingChat.dropped_at.is_(None)))


async def test_an_approval_made_while_the_chat_is_down_arrives_once_it_is_back(
        runtime: Runtime, chat: FlakyChat, scan_files: list[Path]) -> None:
    applicant = Account("qq", "1")
    number = await submit(runtime, applicant, scan_files)
    replies = await runtime.desk.execute(TECHNICIAN, f"通过 {number}", private=True)
    assert f"已通过订单 {number}" in replies[0]
    assert chat.sent == []  # nothing got through, and nothing is lost
    assert await pending(runtime) == 3  # the staff's 新订单, the approval's text and QR code

    chat.online = True
    await runtime.chat_outbox.reconnected("qq")  # the bot's connection came back
    await runtime.chat_outbox.deliver()
    told = chat.to(applicant)
    assert len(told) == 2
    assert f"您的订单 {number}（证书新办）已审核通过" in str(told[0])
    assert isinstance(told[1], Picture)
    assert told[1].data.startswith(b"\x89PNG")  # the payment QR code, byte for byte a PNG
    assert any(f"{number} 新订单待审核" in str(r) for r in chat.to(TECHNICIAN))

    await runtime.chat_outbox.reconnected("qq")
    await runtime.chat_outbox.deliver()
    assert len(chat.to(applicant)) == 2  # delivered once
    assert await pending(runtime) == 0


async def test_one_account_waiting_keeps_its_order_and_holds_up_nobody_else(
        runtime: Runtime, chat: FlakyChat, scan_files: list[Path]) -> None:
    first, second = Account("qq", "1"), Account("qq", "2")
    one = await submit(runtime, first, scan_files)
    two = await submit(runtime, second, scan_files)
    chat.online, chat.refused = True, {str(first)}
    await runtime.desk.execute(TECHNICIAN, f"驳回 {one} 附件二不清晰", private=True)
    await runtime.desk.execute(TECHNICIAN, f"通过 {two}", private=True)
    await runtime.desk.execute(TECHNICIAN, f"查看 {one}", private=True)
    assert chat.to(first) == []
    assert "已审核通过" in str(chat.to(second)[0])  # not held up by the first account

    # the first account's rejection, then its next notice: they must arrive in that order
    await say(runtime, first, f"修改 {one}")
    await say(runtime, first, "", scan_files[2])  # another photo: the same one is no change
    await say(runtime, first, "确认提交")
    await runtime.desk.execute(TECHNICIAN, f"通过 {one}", private=True)
    chat.refused = set()
    await runtime.chat_outbox.reconnected("qq")
    await runtime.chat_outbox.deliver()
    texts = [str(r) for r in chat.to(first)]
    assert "未通过审核" in texts[0]
    assert "已审核通过" in texts[1]


async def test_a_change_that_fails_sends_no_notice(
        runtime: Runtime, chat: FlakyChat, scan_files: list[Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    applicant = Account("qq", "1")
    number = await submit(runtime, applicant, scan_files)
    chat.online = True
    await runtime.chat_outbox.reconnected("qq")
    await runtime.chat_outbox.deliver()
    before = len(chat.sent)

    from bot.services.review import desk

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(desk, "record_claimed_company", broken)
    with pytest.raises(OSError, match="disk full"):
        await runtime.desk.execute(TECHNICIAN, f"通过 {number}", private=True)
    await runtime.chat_outbox.deliver()
    assert len(chat.sent) == before  # the applicant is not told of an approval that did not happen
    assert await pending(runtime) == 0


async def test_a_notice_undeliverable_for_too_long_is_dropped_to_the_log(
        runtime: Runtime, chat: FlakyChat, scan_files: list[Path]) -> None:
    applicant = Account("qq", "1")
    number = await submit(runtime, applicant, scan_files)
    await runtime.desk.execute(TECHNICIAN, f"通过 {number}", private=True)
    async with runtime.db.transaction() as session:
        await session.execute(update(OutgoingChat).values(
            created_at=utcnow() - timedelta(hours=73)))
    lines: list[str] = []
    sink = logger.add(lines.append, level="ERROR", format="{message}")
    try:
        chat.online = True
        await runtime.chat_outbox.reconnected("qq")
        await runtime.chat_outbox.deliver()
    finally:
        logger.remove(sink)
    assert chat.sent == []
    assert await pending(runtime) == 0
    dropped = [line for line in lines if "dropped" in line]
    assert len(dropped) == 3
    assert any(f"{number}（证书新办）已审核通过" in line for line in dropped)
