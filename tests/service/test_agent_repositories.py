"""The queries behind pairing and the token-job queue, on SQLite and on PostgreSQL: a pairing
code is claimed once, and only while fresh, even by 20 agents at once; each agent sees its own
open jobs, oldest first."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.adapters.chat_outbox import ChatOutbox
from bot.adapters.mail import MailOutbox
from bot.config import Settings
from bot.domain.lifecycle import OrderType
from bot.key_agent.protocol import AgentKeys, BotKey
from bot.samples import fake_uscc
from bot.services.agents.registry import AgentRefused, AgentRegistry, Paired
from bot.services.filing import file_order
from bot.services.notify import Notifier
from storage.db import Database
from storage.models import PairingCode, TokenJob, utcnow
from storage.repositories import Companies, PairingCodes, TokenJobs
from tests.support.helpers import RecordingChat


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await db.migrate()
    yield db
    await db.close()


async def test_a_pairing_code_is_claimed_once_and_only_while_fresh(db: Database) -> None:
    now = utcnow()
    async with db.transaction() as session:
        session.add_all([PairingCode(code_hash=name, requested_by="qq:1",
                                     expires_at=now + timedelta(minutes=minutes))
                         for name, minutes in (("fresh", 5), ("stale", -1))])

    async def claim_then_refuse() -> None:
        async with db.transaction() as session:
            assert await PairingCodes(session).claim("fresh", now) is not None
            raise RuntimeError("refused after the claim")

    with pytest.raises(RuntimeError):  # the refusal rolls the claim back
        await claim_then_refuse()
    async with db.transaction() as session:
        codes = PairingCodes(session)
        assert await codes.claim("unknown", now) is None
        assert await codes.claim("stale", now) is None
        claimed = await codes.claim("fresh", now)
        assert claimed is not None
        assert claimed.used_at == now
    async with db.transaction() as session:
        assert await PairingCodes(session).claim("fresh", now) is None


async def test_twenty_agents_pairing_at_once_with_one_code_pair_exactly_one(
        db: Database, settings: Settings) -> None:
    """Each pairing in its own transaction, all at once: the conditional UPDATE lets one
    through (SQLite ignores FOR UPDATE: a read-then-write paired 15 of 20 here)."""
    notifier = Notifier(settings, db, ChatOutbox(db, settings.chat, RecordingChat()),
                        MailOutbox(db, settings.email))
    registry = AgentRegistry(settings, db, BotKey.generate(), notifier)
    code, _ = await registry.new_code(None, "qq:900001")
    keys = [AgentKeys.generate().public() for _ in range(20)]
    outcomes = await asyncio.gather(
        *(registry.pair(code, k["identity"], k["sealing"]) for k in keys),
        return_exceptions=True)
    assert [type(o) for o in outcomes].count(Paired) == 1, outcomes
    assert all(isinstance(o, Paired) or (isinstance(o, AgentRefused) and o.code == "bad_code")
               for o in outcomes), outcomes
    assert len(await registry.of_company()) == 1


async def test_each_agent_gets_its_own_open_jobs_oldest_first(
        db: Database, settings: Settings) -> None:
    now = utcnow()
    async with db.transaction() as session:
        ours = await Companies(session).add(fake_uscc(), "临沂任务测试有限公司", None)
        theirs = await Companies(session).add(fake_uscc(), "临沂别家任务有限公司", None)
        orders = [await file_order(session, settings, order_type=OrderType.UNLOCK,
                                   values={}, scans={}, company_id=company.id, actor="test")
                  for company in (ours, theirs)]
        ours_id, theirs_id, order_id = ours.id, theirs.id, orders[0].id

        def job(name: str, order: int, *, minutes: int = 10, status: str = "queued",
                hall: bool = False, age: int = 0) -> TokenJob:
            company = ours_id if order == 0 else theirs_id
            return TokenJob(id=name, order_id=orders[order].id, company_id=company,
                            kind="token_info", hall=hall, status=status,
                            created_at=now - timedelta(minutes=age),
                            expires_at=now + timedelta(minutes=minutes))
        session.add_all([
            job("ours-new", 0, status="sent"), job("ours-old", 0, age=5),
            job("ours-done", 0, status="done"), job("ours-expired", 0, minutes=-1),
            job("hall", 0, hall=True), job("theirs", 1)])

    async with db.transaction() as session:
        jobs = TokenJobs(session)
        assert [j.id for j in await jobs.due_for_agents(ours_id, now)] == ["ours-old", "ours-new"]
        assert [j.id for j in await jobs.due_for_agents(theirs_id, now)] == ["theirs"]
        assert [j.id for j in await jobs.due_for_agents(None, now)] == ["hall"]
        assert [j.id for j in await jobs.overdue(now)] == ["ours-expired"]
        assert await jobs.open_for_order(order_id, now)
        assert not await jobs.open_for_order(order_id, now + timedelta(minutes=11))
        assert len(await jobs.of_order(order_id)) == 5
