"""The chat's batched database work: the group-commit writer of form states
(storage/state_writer.py) — many applicants' answers in one transaction, each caller answered
only once its own state is committed, a lone applicant not kept waiting, one unstorable state
failing alone — and the batched reads of accounts not in the memo (storage/account_reader.py)."""

import asyncio
from urllib.parse import urlsplit

import pytest

from bot.samples import fake_uscc
from storage.account_reader import AccountReader
from storage.db import Database
from storage.models import utcnow
from storage.repositories import Companies, Conversations, Handlers
from storage.state_writer import StateWriter
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
async def db(database_url: str):
    database = Database(database_url)
    await database.migrate()
    yield database
    await database.close()


async def saved_states(db: Database, users: range) -> dict[str, dict]:
    async with db.transaction() as session:
        rows = [await Conversations(session).form_of("qq", str(u)) for u in users]
    return {str(u): row.state for u, row in zip(users, rows, strict=True) if row is not None}


async def test_many_applicants_at_once_share_commits_and_each_state_is_kept(
        db: Database) -> None:
    writer = StateWriter(db)
    users = range(300)
    try:
        await asyncio.gather(*(writer.save("qq", str(u), {"answer": f"第{u}个"}, utcnow())
                               for u in users))
        # a second round: everyone's newer answer replaces the first
        await asyncio.gather(*(writer.save("qq", str(u), {"answer": f"第{u}个，改"}, utcnow())
                               for u in users))
    finally:
        await writer.close()
    assert await saved_states(db, users) == {str(u): {"answer": f"第{u}个，改"} for u in users}
    assert writer.batches <= 2 * len(users) // 10  # shared: not one commit per answer


async def test_a_lone_applicant_is_committed_at_once(db: Database) -> None:
    """Nobody else talking: the state is committed by itself, not held back for company."""
    writer = StateWriter(db)
    try:
        await asyncio.wait_for(writer.save("qq", "7", {"answer": "一"}, utcnow()), 10)
        assert writer.batches == 1
        await asyncio.wait_for(writer.save("qq", "7", {"answer": "二"}, utcnow()), 10)
        assert writer.batches == 2
    finally:
        await writer.close()
    assert await saved_states(db, range(7, 8)) == {"7": {"answer": "二"}}


async def test_a_state_that_cannot_be_stored_fails_alone(db: Database) -> None:
    writer = StateWriter(db)
    users = range(20)
    broken = 13

    async def save(user: int) -> None:
        state = {"answer": object() if user == broken else f"第{user}个"}
        await writer.save("qq", str(user), state, utcnow())

    try:
        results = await asyncio.gather(*(save(u) for u in users), return_exceptions=True)
    finally:
        await writer.close()
    failed = [u for u, r in zip(users, results, strict=True) if isinstance(r, Exception)]
    assert failed == [broken]
    assert await saved_states(db, users) == {
        str(u): {"answer": f"第{u}个"} for u in users if u != broken}


async def test_a_caller_that_goes_away_still_has_its_state_written(db: Database) -> None:
    """The handler's task cancelled (the connection dropped) after the answer was handed over:
    the state is written all the same, never half."""
    writer = StateWriter(db)
    try:
        saving = asyncio.create_task(writer.save("qq", "9", {"answer": "留下"}, utcnow()))
        await asyncio.sleep(0)
        saving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await saving
    finally:
        await writer.close()  # waits for what was handed over
    assert await saved_states(db, range(9, 10)) == {"9": {"answer": "留下"}}


async def test_a_crowd_of_unread_accounts_is_read_together_each_getting_its_own(
        db: Database) -> None:
    """After a restart 200 applicants write at once: their bindings and forms are read in a
    few transactions, and each gets exactly its own (bound or not, with a form or not)."""
    async with db.transaction() as session:
        company = await Companies(session).add(fake_uscc(), "临沂批量读取有限公司", None)
        for user in range(0, 200, 2):  # every other account bound
            await Handlers(session).bind("qq", str(user), company)
        for user in range(0, 200, 3):  # every third with a form
            await Conversations(session).save("qq", str(user), {"answer": f"第{user}个"})
    reader = AccountReader(db)
    try:
        rows = await asyncio.gather(*(reader.read(("qq", str(u))) for u in range(200)))
        again = await reader.read(("qq", "3"))  # alone: read at once
    finally:
        await reader.close()
    for user, row in enumerate(rows):
        assert (row.binding is not None) == (user % 2 == 0), user
        if row.binding is not None:
            assert row.binding.company_name == "临沂批量读取有限公司"
        assert (row.form.state if row.form else None) == (
            {"answer": f"第{user}个"} if user % 3 == 0 else None), user
    assert again.form is not None
    assert again.form.state == {"answer": "第3个"}
    assert reader.batches <= 20  # not one transaction each


async def test_the_writers_connection_dying_while_idle_costs_no_answer(postgres) -> None:
    """The writer keeps its own connection between batches. PostgreSQL restarted meanwhile
    (every open connection reset): the next answer is still saved, on a fresh connection, and
    nobody is told 「系统繁忙」 for it."""
    url = postgres()
    async with TcpProxy("127.0.0.1", urlsplit(url).port or 5432) as proxy:
        db = Database(url.replace(f":{urlsplit(url).port}/", f":{proxy.port}/"))
        await db.migrate()
        writer = StateWriter(db)
        try:
            crowd = range(2, 8)

            async def answers(word: str) -> None:  # a lone applicant's, then a crowd's
                await writer.save("qq", "1", {"answer": word}, utcnow())
                await asyncio.gather(*(writer.save("qq", str(u), {"answer": word}, utcnow())
                                       for u in crowd))

            await answers("停机前")
            batches = writer.batches
            await proxy.cut()
            await proxy.open()
            await answers("重启后")
            assert writer.batches - batches <= 3  # the crowd's answers still shared a commit
            assert await saved_states(db, range(1, 8)) == {
                str(u): {"answer": "重启后"} for u in range(1, 8)}
        finally:
            await writer.close()
            await db.close()
