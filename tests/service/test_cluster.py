"""Two bot runtimes on one PostgreSQL ([cluster]), as two processes would be: one account's
messages wait for each other whichever runtime took them, every outbox message and every mail
of the mailbox is handled once, a job queued in one reaches an agent connected to the other and
its result lands once, CRL numbers never repeat."""

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from bot.config import ConfigError, load_settings
from bot.key_agent.protocol import HALL, AgentKeys
from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_uscc
from bot.services.messages import Account, Incoming
from storage.models import (
    Agent,
    Crl,
    InboundMail,
    Order,
    OrderEvent,
    OutgoingChat,
    TokenJob,
    WebhookEvent,
    utcnow,
)
from tests.support import mail_corpus as corpus
from tests.support.agent_links import FakeLink, approved_unlock, pair_agent, paired_company
from tests.support.applicant import DECLARANT, DECLARANT_MOBILE, say
from tests.support.dovecot import Dovecot
from tests.support.helpers import MakeRuntime, wait_for
from tests.support.smtp_sink import SmtpSink
from tests.support.unlock_mailbox import count, unlock_desk_config

RNG = random.Random(1616)
AGENTS = '[staff]\ntechnicians = ["qq:900001"]\n[agents]\nenabled = true\n'


def cluster_config(url: str, extra: str = "") -> str:
    """bot.toml of one of the processes: webhooks only (none here), a shared PostgreSQL."""
    return (f'[bot]\nadapters = []\n[database]\nurl = "{url}"\n'
            "[cluster]\nenabled = true\nagent_poll_seconds = 0.1\n" + extra)


StartTwo = Callable[..., Awaitable[tuple[Runtime, Runtime]]]


@pytest.fixture
def two(make_runtime: MakeRuntime, postgres: Callable[[], str]) -> StartTwo:
    """Start two runtimes on one new database (and one data directory) with ``extra``."""
    url = postgres()

    async def start(extra: str = '[staff]\ntechnicians = ["qq:900001"]\n'
                    ) -> tuple[Runtime, Runtime]:
        return (await make_runtime(cluster_config(url, extra)),
                await make_runtime(cluster_config(url, extra)))

    return start


@pytest.mark.parametrize(("text", "complaint"), [
    ("[cluster]\nenabled = true\n", "needs PostgreSQL"),
    ('[database]\nurl = "postgresql+asyncpg://u@h/db"\n[cluster]\nenabled = true\n',
     "lists console"),
    ('[bot]\nadapters = ["onebot"]\n[database]\nurl = "postgresql+asyncpg://u@h/db"\n'
     "[cluster]\nenabled = true\n", "lists onebot"),
])
def test_sqlite_onebot_and_the_console_mean_one_process(tmp_path: Path, text: str,
                                                       complaint: str) -> None:
    (tmp_path / "bot.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=complaint):
        load_settings(tmp_path / "bot.toml")


async def test_one_accounts_message_waits_for_the_other_process(two: StartTwo) -> None:
    a, b = await two()
    account = Account("qq", "4242")
    uscc = fake_uscc(RNG)
    assert "统一社会信用代码" in await say(a, account, "你好")
    # the first answer is being handled in A (held mid-way) when the second reaches B
    entered, release = asyncio.Event(), asyncio.Event()
    handle = a.dialogue._handle

    async def held(account: Account, incoming: Incoming) -> list:
        entered.set()
        await release.wait()
        return await handle(account, incoming)

    a.dialogue._handle = held  # type: ignore[method-assign]
    first = asyncio.create_task(say(a, account, uscc))
    await entered.wait()
    second = asyncio.create_task(say(b, account, "临沂集群测试有限公司"))
    await asyncio.sleep(0.5)
    assert not second.done()  # B waits for A's message, not answers from the state before it
    release.set()
    assert "单位名称" in await first
    assert "注册协议" in await second  # the company name taken as the name, after the USCC


async def test_a_binding_answered_through_both_processes_in_turn(two: StartTwo) -> None:
    """Each message read where the other process left the form: nothing kept in memory."""
    a, b = await two()
    account = Account("qq", "4343")
    replies = []
    for n, said in enumerate(("你好", fake_uscc(RNG), "临沂轮流测试有限公司", "同意", DECLARANT,
                              DECLARANT_MOBILE, "施工单位", fake_id_number(RNG))):
        replies.append(await say((a, b)[n % 2], account, said))
    assert ["单位名称" in replies[1], "注册协议" in replies[2], "【联系电话】" in replies[4],
            "【用户类型】" in replies[5]] == [True] * 4
    assert "附件" in replies[-1]  # the documents form asks for its scans: every answer taken


async def test_the_chat_outbox_sends_each_notice_once_in_order(two: StartTwo) -> None:
    a, b = await two()
    people = [Account("qq", str(5000 + n)) for n in range(4)]
    async with a.db.transaction() as session:
        for n in range(10):
            for person in people:
                a.chat_outbox.enqueue(session, person, [f"通知 {n}"])
    await asyncio.gather(*(box.deliver() for box in (a.chat_outbox, b.chat_outbox) * 3))
    sent = a.chat_outbox.chat.sent + b.chat_outbox.chat.sent
    assert len(sent) == 40
    for person in people:
        # whichever process sent each, one after the other in the queued order
        assert [text for to, text in sent if to == str(person)] == [f"通知 {n}"
                                                                    for n in range(10)]
    async with a.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(OutgoingChat).where(
            OutgoingChat.attempts != 1)) == 0


async def test_the_mail_outbox_sends_each_mail_once(two: StartTwo, smtp: SmtpSink) -> None:
    a, b = await two(f'[email]\nenabled = true\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                     'security = "none"\npoll_seconds = 60\n')
    async with a.db.transaction() as session:
        for n in range(12):
            await a.mail.enqueue(session, f"user{n}@example.test", f"通知 {n}", "正文")
    await asyncio.gather(a.mail.send_due(), b.mail.send_due(), a.mail.send_due(),
                         b.mail.send_due())
    await asyncio.sleep(0.3)
    assert sorted(m["To"] for m in smtp.messages) == sorted(
        f"user{n}@example.test" for n in range(12))


async def test_one_unlock_mail_is_filed_once_with_both_polling(two: StartTwo, dovecot: Dovecot,
                                                              smtp: SmtpSink) -> None:
    a, b = await two(unlock_desk_config(dovecot, smtp))
    uscc = fake_uscc(RNG)
    for n in range(1, 4):
        dovecot.deliver(corpus.qq_mail(uscc, n).replace(b"zhangsan@", f"user{n}@".encode()))
    # one polls, the other finds it polling and skips its pass (not fetching and reading the
    # same mails only to find them filed, nor racing it to the folder's first state row)
    assert sorted(await asyncio.gather(a.poller.poll_once(), b.poller.poll_once())) == [0, 3]
    for _ in range(2):
        await asyncio.gather(a.poller.poll_once(), b.poller.poll_once())
    assert await count(a, InboundMail) == 3
    assert await count(a, Order) == 3
    await wait_for(lambda: len(smtp.messages) == 3)
    assert sorted(m["To"] for m in smtp.messages) == [f"user{n}@qq.test" for n in (1, 2, 3)]
    assert dovecot.folder("INBOX") == ["\\Seen CadeskFiled"] * 3
    assert dovecot.folder("待人工处理") == []
    await asyncio.sleep(0.3)
    assert len(smtp.messages) == 3


async def test_a_job_queued_in_one_process_reaches_the_agent_on_the_other(two: StartTwo) -> None:
    a, b = await two(AGENTS)
    account, agent = await paired_company(a, "6161")
    link = FakeLink()
    await b.hub.connected(agent, link.send, link.close)  # the agent is B's
    await wait_for(lambda: a.hub.company_online(agent.company_id), 5)  # and A knows it
    order = await approved_unlock(a, account)  # queued in A, where no agent is
    await wait_for(lambda: len(link.sent) == 1, 5)
    job = link.sent[0]["job"]
    assert job["kind"] == "token_info"
    await asyncio.sleep(0.5)
    assert len(link.sent) == 1  # sent once, not again at every poll
    # the same answer reaching both (the agent reconnected to A and sent its journal again)
    answer = {"id": job["id"], "ok": True, "token": {"serial": "SN-CLUSTER-1"}}
    await asyncio.gather(b.hub.result(agent.id, answer), a.hub.result(agent.id, answer))
    async with a.db.transaction() as session:
        logged = await session.scalar(select(func.count()).select_from(OrderEvent).where(
            OrderEvent.order_id == order.id, OrderEvent.event == "token_job"))
        jobs = (await session.scalars(select(TokenJob).where(
            TokenJob.order_id == order.id))).all()
    assert logged == 1
    assert [j.status for j in jobs] == ["done"]
    b.hub.disconnected(agent.id)
    await wait_for(lambda: not a.hub.company_online(agent.company_id), 5)


async def test_two_processes_never_give_one_job_to_two_agents(two: StartTwo) -> None:
    a, b = await two(AGENTS)
    account, first = await paired_company(a, "6262")
    second = await pair_agent(a, account)
    on_a, on_b = FakeLink(), FakeLink()
    await approved_unlock(a, account)
    # both of the company's agents come online at once, each to another process
    a.hub.online[first.id] = (first.company_id, on_a.send)
    b.hub.online[second.id] = (second.company_id, on_b.send)
    await asyncio.gather(a.hub.deliver(first.company_id), b.hub.deliver(second.company_id))
    await asyncio.sleep(0.5)  # and the polls that follow
    assert len(on_a.sent) + len(on_b.sent) == 1


async def test_crl_numbers_never_repeat_across_processes(two: StartTwo) -> None:
    a, b = await two("[agents]\nenabled = true\n[pki]\nenabled = true\n")
    assert None not in (a.certificates, b.certificates)
    await asyncio.gather(*(r.certificates.office.publish_crl() for r in (a, b, a, b)))
    async with a.db.transaction() as session:
        numbers = (await session.scalars(select(Crl.number).order_by(Crl.number))).all()
    assert len(numbers) >= 4  # and the schedule's, at start
    assert len(set(numbers)) == len(numbers)


async def test_the_crl_file_is_never_put_back_to_an_older_crl(two: StartTwo) -> None:
    a, b = await two("[agents]\nenabled = true\n[pki]\nenabled = true\n")
    assert None not in (a.certificates, b.certificates)
    older = await a.certificates.office.publish_crl()
    newer = await b.certificates.office.publish_crl()
    # A's write of its CRL comes only now, after B signed and wrote a newer one: the file in
    # the one data directory stays the newest
    await a.certificates.office._write_file(older)
    assert a.certificates.office.crl_file.read_bytes() == newer


async def test_a_job_expires_once_with_both_sweeping(two: StartTwo) -> None:
    a, b = await two(AGENTS)
    account, _ = await paired_company(a, "6363")
    order = await approved_unlock(a, account)
    async with a.db.transaction() as session:
        await session.execute(update(TokenJob).values(expires_at=utcnow() - timedelta(minutes=1)))
    assert sorted(await asyncio.gather(a.hub.expire_due(), b.hub.expire_due())) == [0, 1]
    async with a.db.transaction() as session:
        expired = await session.scalar(select(func.count()).select_from(OrderEvent).where(
            OrderEvent.order_id == order.id, OrderEvent.event == "token_job"))
    assert expired == 1  # one expiry on the order's log, its applicant and staff told once


async def test_a_pass_that_runs_once_is_skipped_while_another_process_runs_it(
        two: StartTwo) -> None:
    a, b = await two()
    running, finish, runs = asyncio.Event(), asyncio.Event(), []

    async def long_pass() -> str:
        runs.append("a")
        running.set()
        await finish.wait()
        return "done"

    async def quick_pass() -> str:
        runs.append("b")
        return "done"

    first = asyncio.create_task(a.db.cluster.once("purge", long_pass)())
    await running.wait()
    assert await b.db.cluster.once("purge", quick_pass)() is None  # skipped: A runs it
    finish.set()
    assert await first == "done"
    assert await b.db.cluster.once("purge", quick_pass)() == "done"  # A let go
    assert runs == ["a", "b"]


async def test_an_accounts_lock_is_let_go_on_every_path(two: StartTwo) -> None:
    a, b = await two()
    lock = ("qq", "4444")

    async def other_process_gets_it() -> None:
        async with asyncio.timeout(3), b.db.cluster.account(*lock):
            pass

    with pytest.raises(RuntimeError):  # the handling failed
        async with a.db.cluster.account(*lock):
            raise RuntimeError("the handling failed")
    await other_process_gets_it()

    entered = asyncio.Event()

    async def held_until_cancelled() -> None:
        async with a.db.cluster.account(*lock):
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(held_until_cancelled())  # e.g. the bot shutting down
    await entered.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await other_process_gets_it()

    # cancelled while waiting for the other process: never left holding it once granted
    async with b.db.cluster.account(*lock):
        waiting = asyncio.create_task(a.db.cluster.account(*lock).__aenter__())
        await asyncio.sleep(0.3)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
    await other_process_gets_it()
    async with asyncio.timeout(3), a.db.cluster.account(*lock):
        pass


async def test_a_webhook_event_is_taken_by_one_process(two: StartTwo) -> None:
    a, b = await two()
    assert a.webhook_events is not None
    assert b.webhook_events is not None
    for runtime in (a, b):  # the hourly prune is driven by hand here, not raced
        assert runtime.pruner is not None
        await runtime.pruner.stop()
    taken = await asyncio.gather(a.webhook_events.first("qqbot", "C2C:1"),
                                 b.webhook_events.first("qqbot", "C2C:1"))
    assert sorted(taken) == [False, True]  # delivered to both at once: one handles it
    assert await b.webhook_events.first("qqbot", "C2C:1") is False  # a retry, later
    assert await a.webhook_events.first("qqbot", "C2C:2") is True
    async with a.db.transaction() as session:
        await session.execute(update(WebhookEvent).where(WebhookEvent.event_id == "C2C:1")
                              .values(received_at=utcnow() - timedelta(days=2)))
    assert await b.webhook_events.prune() == 1  # a day later it is forgotten
    assert await a.webhook_events.first("qqbot", "C2C:1") is True


async def test_a_lock_whose_connection_broke_ends_the_work_quietly(two: StartTwo) -> None:
    """The database dropped the lock's connection while the message was handled (a restart, an
    administrator): the lock went with it, the handling's result stands, nothing raises."""
    a, b = await two()
    async with a.db.cluster.account("qq", "4545"), b.db.transaction() as session:
        await session.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND "
            "granted AND pid <> pg_backend_pid() AND database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())"))
    async with asyncio.timeout(3), b.db.cluster.account("qq", "4545"):
        pass
    async with asyncio.timeout(3), a.db.cluster.account("qq", "4545"):  # and A's pool is sound
        pass


async def test_every_process_reports_the_halls_agent_online_wherever_it_is_connected(
        two: StartTwo) -> None:
    a, b = await two(AGENTS + "[pki]\nenabled = true\n")
    [reply] = await a.desk.execute(Account("qq", "900001"), "绑定制证代理", private=True)
    keys = AgentKeys.generate().public()
    paired = await a.agents.pair(reply.split("--code ")[1].split()[0], keys["identity"],
                                 keys["sealing"])
    async with a.db.transaction() as session:
        hall = await session.get(Agent, paired.agent_id)
    link = FakeLink()
    await b.hub.connected(hall, link.send, link.close)
    await wait_for(lambda: a.hub.company_online(HALL), 5)
    here, there = (await a.health.check()).agents, (await b.health.check()).agents
    assert (here.online, here.hall_online) == (0, True)  # 状态 in A: none here, the hall's up
    assert (there.online, there.hall_online) == (1, True)
