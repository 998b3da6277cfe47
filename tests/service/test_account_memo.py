"""The chat keeps each account's binding and form in memory between messages
(storage/account_memo.py): every change to a binding shows on the very next message, and a
write that failed leaves nothing in memory ahead of the database."""

import random
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.trust import HandlerStatus
from bot.runtime import Runtime
from bot.samples import fake_uscc, sample_scan
from bot.services.applications.dialogue import DATABASE_BUSY, PENDING_LINE, WELCOME
from bot.services.messages import Account, Reply
from storage.account_memo import AccountMemo, AccountRows, BindingRow
from storage.db import Database
from storage.models import utcnow
from storage.repositories import Companies, Conversations, Handlers
from tests.support.applicant import bind, bind_verified, say, send_binding_documents
from tests.support.helpers import MakeRuntime

RNG = random.Random(1515)
TECHNICIAN = Account("qq", "900001")
APPLICANT = Account("qq", "31337")
COMPANY = "临沂内存测试建设有限公司"


@pytest.fixture
async def runtime(make_runtime: MakeRuntime, database_url: str) -> Runtime:
    return await make_runtime(f'[database]\nurl = "{database_url}"\n'
                              '[staff]\ntechnicians = ["qq:900001"]\n')


async def technician(runtime: Runtime, text: str) -> str:
    replies: list[Reply] = await runtime.desk.execute(TECHNICIAN, text, private=True)
    return "\n".join(str(r) for r in replies)


async def test_an_account_a_technician_unbinds_is_refused_at_the_very_next_message(
        runtime: Runtime) -> None:
    await bind_verified(runtime, APPLICANT, fake_uscc(RNG), COMPANY)
    assert f"当前单位：{COMPANY}" in await say(runtime, APPLICANT, "你好")  # kept in memory
    assert "请选择【证书年限】" in await say(runtime, APPLICANT, "新办证书")  # a form, kept too
    assert "已解除账号" in await technician(runtime, f"解绑 {APPLICANT}")
    reply = await say(runtime, APPLICANT, "1")  # no answer to the form 解绑 deleted
    assert WELCOME in reply
    assert "【证书年限】" not in reply
    assert "我的订单" not in await say(runtime, APPLICANT, "你好")


async def test_a_verification_shows_on_the_very_next_message(runtime: Runtime,
                                                             tmp_path: Path) -> None:
    await bind(runtime, APPLICANT, fake_uscc(RNG), COMPANY)
    scans = []
    for n in range(2):
        scans.append(tmp_path / f"doc{n}.jpg")
        scans[-1].write_bytes(sample_scan(f"memo doc {n}"))
    number = await send_binding_documents(runtime, APPLICANT, scans, RNG)
    assert PENDING_LINE in await say(runtime, APPLICANT, "你好")
    assert "已通过绑定申请" in await technician(runtime, f"通过 {number}")
    menu = await say(runtime, APPLICANT, "你好")
    assert PENDING_LINE not in menu
    assert "· 绑定密钥代理" in menu


async def test_a_write_that_failed_leaves_nothing_in_memory_ahead_of_the_database(
        make_runtime: MakeRuntime) -> None:
    """SQLite held by another writer past the busy timeout: the answer is refused, and the next
    message is answered from the form as the database has it, not as the refused answer left
    it in memory."""
    runtime = await make_runtime()
    await bind_verified(runtime, APPLICANT, fake_uscc(RNG), COMPANY)
    assert "请选择【证书年限】" in await say(runtime, APPLICANT, "新办证书")
    holder = sqlite3.connect(runtime.settings.data_dir / "cadesk.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        assert await say(runtime, APPLICANT, "1") == DATABASE_BUSY
        holder.execute("COMMIT")
    finally:
        holder.close()
    assert runtime.db.memo.peek((APPLICANT.platform, APPLICANT.user_id)) is None
    reply = await say(runtime, APPLICANT, "")  # asked again where the database says it is
    assert "【证书年限】" in reply
    assert "【项目所属地区】" not in reply
    assert "【项目所属地区】" in await say(runtime, APPLICANT, "1")


async def test_every_write_to_a_binding_or_a_form_forgets_the_account(
        database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    key, other = ("qq", "1"), ("qq", "2")
    try:
        async with db.transaction() as session:
            company = await Companies(session).add(fake_uscc(RNG), COMPANY, None)
            handler_id = (await Handlers(session).bind(*key, company)).id
            await Handlers(session).bind(*other, company)
            for k in (key, other):
                await Conversations(session).save(*k, {"form": "x"})

        async def kept() -> set[tuple[str, str]]:
            """Both accounts read and kept as the chat does; those kept after ``write``."""
            for k in (key, other):
                since = db.memo.generation
                async with db.transaction() as session:
                    rows = AccountRows(await Handlers(session).binding_of(*k),
                                       await Conversations(session).form_of(*k))
                db.memo.keep(k, rows, since)
            assert len(db.memo) == 2
            return {k for k in (key, other) if db.memo.peek(k) is not None}

        writes = {
            "a form saved": lambda s: Conversations(s).save(*key, {"form": "y"}),
            "a form deleted": lambda s: Conversations(s).delete(*key),
            "a verification": lambda s: _set_status(s, key, HandlerStatus.VERIFIED),
            "a 解绑": lambda s: _set_status(s, key, HandlerStatus.REMOVED),
            "an email": lambda s: Handlers(s).set_email(handler_id, "a@example.com"),
        }
        for what, write in writes.items():
            await kept()
            async with db.transaction() as session:
                await write(session)
            assert db.memo.peek(key) is None, what
            assert db.memo.peek(other) is not None, what  # the others stay

        await kept()
        async with db.transaction() as session:  # a company renamed: every binding of it
            found = await Companies(session).by_uscc(company.uscc)
            assert found is not None
            found.name = "临沂改名建设有限公司"
        assert len(db.memo) == 0
        await kept()
        async with db.transaction() as session:  # idle forms dropped: which, no statement says
            await Conversations(session).drop_idle(utcnow() + timedelta(days=1))
        assert len(db.memo) == 0
        await kept()
        async with db.transaction() as session:  # the chat's own write: it keeps what it wrote
            await Conversations(session).save(*key, {"form": "z"}, written_through=True)
        assert len(db.memo) == 2
    finally:
        await db.close()


async def _set_status(session: AsyncSession, key: tuple[str, str], status: HandlerStatus) -> None:
    handler = await Handlers(session).get(*key)
    assert handler is not None
    handler.status = status


def test_a_read_that_overlapped_a_write_is_not_kept() -> None:
    memo = AccountMemo()
    rows = AccountRows(BindingRow(1, 1, COMPANY, HandlerStatus.VERIFIED), None)
    since = memo.generation
    memo.forget([("qq", "other")])  # a write committed while the read was in flight
    memo.keep(("qq", "1"), rows, since)
    assert memo.peek(("qq", "1")) is None
    memo.keep(("qq", "1"), rows, memo.generation)
    assert memo.peek(("qq", "1")) == rows


def test_the_memo_keeps_the_accounts_that_talked_last() -> None:
    memo = AccountMemo(size=2)
    rows = AccountRows(None, None)
    for user in ("1", "2", "3"):
        memo.keep(("qq", user), rows, memo.generation)
    memo.keep(("qq", "2"), rows, memo.generation)  # talked again: kept longest
    memo.keep(("qq", "4"), rows, memo.generation)
    assert [memo.peek(("qq", u)) is not None for u in "1234"] == [False, True, False, True]
