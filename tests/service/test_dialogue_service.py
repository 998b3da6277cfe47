"""The dialogue service without nonebot, on SQLite and PostgreSQL: concurrency, all-or-nothing
filing, number collisions."""

import asyncio
import random
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_uscc
from bot.services import filing
from bot.services.applications import dialogue
from bot.services.messages import Account
from storage.models import Attachment, Conversation, Order
from storage.repositories import Conversations
from tests.support.applicant import apply_until_summary, bind, say
from tests.support.helpers import MakeRuntime

RNG = random.Random(99)


@pytest.fixture
async def runtime(make_runtime: MakeRuntime, database_url: str) -> Runtime:
    return await make_runtime(f'[database]\nurl = "{database_url}"\n[fees]\ncertificate = 100\n')


async def test_many_applicants_at_once_do_not_cross_wires(runtime: Runtime) -> None:
    accounts = [Account("qq", str(n)) for n in range(8)]
    numbers = {a: fake_id_number(RNG) for a in accounts}

    async def one(account: Account) -> None:
        count = str(int(account.user_id) + 1)
        for text in ("你好", fake_uscc(RNG), f"测试公司{account.user_id}号有限公司", "同意",
                     "王小明", "13812345678", "取消", "是", "新办证书", "1", "临沂", count,
                     "张三", numbers[account]):
            await say(runtime, account, text)

    await asyncio.gather(*(one(a) for a in accounts))
    async with runtime.db.transaction() as session:
        for account in accounts:
            state = (await Conversations(session).get(account.platform, account.user_id)).state
            assert state["values"]["handler_id_number"] == numbers[account]
            assert state["values"]["company_name"] == f"测试公司{account.user_id}号有限公司"
            assert state["values"]["ukey_count"] == str(int(account.user_id) + 1)


async def test_messages_of_one_account_are_taken_in_order(runtime: Runtime,
                                                          scan_files: list[Path]) -> None:
    account = Account("qq", "42")
    await bind(runtime, account, fake_uscc(RNG), "临沂测试建设有限公司")
    for text in ("取消", "是", "新办证书", "1", "临沂",
                 "1", "张三", fake_id_number(RNG), "13812345678", "自取"):
        await say(runtime, account, text)
    # four images sent in quick succession arrive as four messages at once
    replies = await asyncio.gather(*(say(runtime, account, "", p) for p in scan_files))
    assert "请核对" in replies[-1]
    async with runtime.db.transaction() as session:
        state = (await Conversations(session).get("qq", "42")).state
    assert len({s["sha256"] for s in state["scans"].values()}) == 4


async def test_a_failed_submission_files_nothing_and_can_be_retried(
        runtime: Runtime, scan_files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    account = Account("qq", "7")
    await apply_until_summary(runtime, account, scan_files)

    async def broken_delete(self, platform: str, user_id: str) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(Conversations, "delete", broken_delete)
        with pytest.raises(OSError, match="disk full"):
            await say(runtime, account, "确认提交")
    async with runtime.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 0
        assert await session.scalar(select(func.count()).select_from(Attachment)) == 0
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 1
    assert "提交成功" in await say(runtime, account, "确认提交")


async def test_an_order_number_already_taken_is_drawn_again(
        runtime: Runtime, scan_files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter(["XB-261125-AAAA", "XB-261125-AAAA", "XB-261125-BBBB"])
    monkeypatch.setattr(filing, "new_order_number", lambda prefix, day: next(draws))
    first, second = Account("qq", "1"), Account("qq", "2")
    await apply_until_summary(runtime, first, scan_files)
    assert "XB-261125-AAAA" in await say(runtime, first, "确认提交")
    await apply_until_summary(runtime, second, scan_files)
    assert "XB-261125-BBBB" in await say(runtime, second, "确认提交")


async def test_a_scan_shared_with_a_filed_order_survives_a_cancel(
        runtime: Runtime, scan_files: list[Path]) -> None:
    filed, cancelled = Account("qq", "10"), Account("qq", "11")
    await apply_until_summary(runtime, filed, scan_files)
    await say(runtime, filed, "确认提交")
    await apply_until_summary(runtime, cancelled, scan_files)  # the very same images
    await say(runtime, cancelled, "取消")
    assert "已放弃" in await say(runtime, cancelled, "是")
    async with runtime.db.transaction() as session:
        for sha in (await session.scalars(select(Attachment.sha256))).all():
            assert runtime.scans.path(sha).exists()


async def test_two_handlers_registering_one_new_company_at_once(runtime: Runtime) -> None:
    uscc = fake_uscc(RNG)
    first, second = Account("qq", "501"), Account("qq", "502")
    for account in (first, second):
        for text in ("你好", uscc, "临沂同时注册有限公司", "同意", "王小明"):
            await say(runtime, account, text)
    replies = await asyncio.gather(say(runtime, first, "13812345678"),
                                   say(runtime, second, "13812345678"))
    assert all("待核验" in r and "【用户类型】" in r for r in replies)
    async with runtime.db.transaction() as session:
        from storage.models import Company, Handler

        assert await session.scalar(select(func.count()).select_from(Company)) == 1
        assert await session.scalar(select(func.count()).select_from(Handler)) == 2


async def test_commands_needing_a_verified_binding_ask_the_one_predicate(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    account = Account("qq", "verified-1")
    await bind(runtime, account, fake_uscc(RNG), "临沂核验测试有限公司")
    for text in ("取消", "是"):
        await say(runtime, account, text)
    for text in ("绑定密钥代理", "我的证书", "挂失"):  # pending: refused before anything else
        assert await say(runtime, account, text) == dialogue.not_verified(text)
    # not marked verified: answered (here that [email] is off)
    assert "暂未开通邮件通知" in await say(runtime, account, "邮箱")
    assert "【待核验】" in await say(runtime, account, "帮助")
    monkeypatch.setattr(dialogue, "is_verified", lambda handler: True)
    assert "暂未开通密钥代理" in await say(runtime, account, "绑定密钥代理")
    assert "【待核验】" not in await say(runtime, account, "帮助")
