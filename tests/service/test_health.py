"""Health at a glance: the technicians' 状态, /metrics and /healthz over the bot's own FastAPI
app (nonebug), their figures, who may read them, and that none of them names a person; the
mailbox poller's account of its backlog."""

import asyncio
import json
import random
from datetime import timedelta

import nonebot
import pytest
from async_asgi_testclient import TestClient
from nonebug import App
from prometheus_client.parser import text_string_to_metric_families

from bot.adapters import mailbox
from bot.key_agent.protocol import AgentKeys
from bot.runtime import Runtime, get_runtime
from bot.samples import fake_id_number, fake_uscc
from bot.services.health import Health
from bot.services.messages import Account, Incoming
from bot.services.ports import MailboxProgress
from storage.db import Database
from storage.models import Agent, OutgoingMail, utcnow
from tests.support import mail_corpus as corpus
from tests.support.applicant import DECLARANT, DECLARANT_MOBILE, bind_verified
from tests.support.dovecot import Dovecot
from tests.support.helpers import MakeRuntime, RecordingChat, free_port
from tests.support.smtp_sink import SmtpSink
from tests.support.unlock_mailbox import poller_of, unlock_desk_config

RNG = random.Random(1414)
TECHNICIAN = Account("qq", "900001")
APPLICANT = Account("qq", "31337")
COMPANY = "临沂健康检查测试有限公司"
CONFIG = """
[bot]
adapters = ["onebot", "console"]
[onebot]
access_token = "t"
[staff]
technicians = ["qq:900001"]
[agents]
enabled = true
[pki]
enabled = true
"""
LOOPBACK, ELSEWHERE = ("127.0.0.1", 40001), ("203.0.113.7", 40001)


class FakeLink:
    async def send(self, message: dict) -> None: ...

    async def close(self) -> None: ...


@pytest.fixture
async def runtime(make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    """A bot with certificates on, a company with a paired agent online, QQ disconnected and a
    mail with an ID number waiting 20 minutes in the outbox."""
    monkeypatch.setenv("CADESK_SO_MASTER", "5a" * 32)
    chat = RecordingChat()
    chat.bots = {"qq": 0, "console": 1}
    runtime = await make_runtime(CONFIG, chat)
    uscc = fake_uscc(RNG)
    await bind_verified(runtime, APPLICANT, uscc, COMPANY)
    [reply] = await runtime.dialogue.handle(APPLICANT, Incoming(text="绑定密钥代理"))
    keys = AgentKeys.generate().public()
    paired = await runtime.agents.pair(reply.split("--code ")[1].split()[0], keys["identity"],
                                       keys["sealing"])
    async with runtime.db.transaction() as session:
        agent = await session.get(Agent, paired.agent_id)
        session.add(OutgoingMail(to_address="wang@example.test", subject=f"{COMPANY} 解锁",
                                 body=f"身份证号 {fake_id_number(RNG)}，统一社会信用代码 {uscc}",
                                 created_at=utcnow() - timedelta(minutes=20)))
    link = FakeLink()
    await runtime.hub.connected(agent, link.send, link.close)
    await runtime.chat_outbox.deliver()  # the notices of the binding and the pairing
    return runtime


def personal(runtime: Runtime) -> list[str]:
    """What must never appear in a health answer."""
    return [COMPANY, APPLICANT.user_id, DECLARANT, DECLARANT_MOBILE, "wang@example.test",
            "example.test"]


async def test_the_technicians_status_names_each_part_in_chinese(runtime: Runtime) -> None:
    await wait_for_crl(runtime)

    [text] = await runtime.desk.execute(TECHNICIAN, "状态", private=False)

    lines = text.splitlines()
    assert lines[0] == "运行状况：部分异常"
    assert "数据库：正常" in lines
    assert "QQ：未连接" in lines
    assert "终端：已连接" in lines
    assert "邮件发送：待发 1 封，最早的已等待 20 分钟，已超时" in lines
    assert "聊天通知：没有积压" in lines
    assert "密钥代理：在线 1 个（服务大厅：离线）" in lines
    assert any(line.startswith("吊销列表：第 1 号，刚刚签发，下次更新 ") for line in lines)
    assert not any(word in text for word in personal(runtime))


async def test_healthz_json_names_no_one(runtime: Runtime) -> None:
    report = await runtime.health.check()
    body = json.dumps(report.as_json(), ensure_ascii=False)
    assert report.as_json()["mail_outbox"]["late"] is True
    assert report.problems == ("qq disconnected", "mail outbox late")
    assert not any(word in body for word in personal(runtime))


@pytest.mark.parametrize(("minutes", "line"), [
    (2, "邮箱：2 分钟前收信成功，待处理 3 封"),
    (10, "邮箱：10 分钟前收信成功（已超过 3 分钟没有收信，请检查邮箱服务器和密码），待处理 3 封"),
])
async def test_status_tells_when_the_mailbox_was_last_read(runtime: Runtime, minutes: int,
                                                           line: str) -> None:
    settings = runtime.settings.model_copy(deep=True)
    settings.mailbox.enabled, settings.mailbox.poll_seconds = True, 60
    now = utcnow()
    progress = MailboxProgress(last_success_at=now - timedelta(minutes=minutes),
                               last_error="ConnectionRefusedError", waiting=3)
    health = Health(settings, runtime.db, RecordingChat(), progress, runtime.hub,
                    clock=lambda: now - timedelta(hours=1))  # started an hour ago
    health.clock = lambda: now

    report = await health.check()

    assert line in report.summary(settings.tz).splitlines()
    assert ("mailbox stale" in report.problems) is (minutes > 3)


async def test_status_is_for_technicians_only(runtime: Runtime) -> None:
    [text] = await runtime.desk.execute(APPLICANT, "状态", private=True)
    assert "技术人员命令" in text
    assert "数据库" not in text


async def test_metrics_carry_the_figures_of_the_check(runtime: Runtime) -> None:
    await wait_for_crl(runtime)

    text = (await runtime.metrics.render()).decode()

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("cadesk_status", (("status", "degraded"),))] == 1
    assert samples[("cadesk_status", (("status", "ok"),))] == 0
    assert samples[("cadesk_database_up", ())] == 1
    assert samples[("cadesk_chat_bots_connected", (("platform", "qq"),))] == 0
    assert samples[("cadesk_chat_bots_connected", (("platform", "console"),))] == 1
    assert samples[("cadesk_outbox_waiting", (("outbox", "mail"),))] == 1
    assert samples[("cadesk_outbox_oldest_seconds", (("outbox", "mail"),))] >= 20 * 60
    assert samples[("cadesk_outbox_waiting", (("outbox", "chat"),))] == 0
    assert samples[("cadesk_agents_online", ())] == 1
    assert samples[("cadesk_hall_agent_online", ())] == 0
    assert samples[("cadesk_crl_number", ())] == 1
    assert samples[("cadesk_crl_next_update_timestamp_seconds", ())] > utcnow().timestamp()
    assert not any(word in text for word in personal(runtime))


async def test_the_check_is_down_when_the_database_is_unreachable(runtime: Runtime) -> None:
    unreachable = Database(f"postgresql+asyncpg://cadesk:x@127.0.0.1:{free_port()}/cadesk")
    health = Health(runtime.settings, unreachable, RecordingChat(), MailboxProgress(),
                    runtime.hub)
    try:
        report = await health.check()
    finally:
        await unreachable.close()

    assert report.status == "down"
    assert report.as_json()["database"] == {"reachable": False, "seconds": None}
    assert report.problems == ("database unreachable",)
    assert "数据库：无法连接" in report.summary(runtime.settings.tz).splitlines()
    assert report.as_json()["mail_outbox"] is None  # unknown, not "nothing waiting"


async def wait_for_crl(runtime: Runtime) -> None:
    """The CRL worker signs the first CRL just after start."""
    async with asyncio.timeout(10):
        while (await runtime.health.check()).crl is None:  # noqa: ASYNC110 - another task's
            await asyncio.sleep(0.05)


# --- over HTTP: the bot's own FastAPI app, as nonebug runs it --------------------------------
async def get(path: str, client: tuple[str, int], **headers: str):
    return await TestClient(nonebot.get_app(), scope={"client": client}).get(
        path, headers=headers)


async def test_healthz_answers_this_machine(app: App) -> None:
    response = await get("/healthz", LOOPBACK)
    body = response.json()
    # nonebug's bots connect only inside a test's matcher: no chat channel, nobody served
    assert response.status_code == 503
    assert body["status"] == "down"
    assert body["problems"] == ["qq disconnected", "console disconnected"]
    assert body["database"]["reachable"] is True
    assert body["chat"] == {"qq": {"connected": False, "bots": 0},
                            "console": {"connected": False, "bots": 0}}
    assert body["mail_outbox"]["waiting"] == 0
    assert body["mailbox"] is None  # [mailbox] is off in the test configuration
    assert (await get("/healthz", ("::ffff:127.0.0.1", 40001))).status_code == 503
    head = await TestClient(nonebot.get_app(), scope={"client": LOOPBACK}).open(
        "/healthz", method="HEAD")
    assert head.status_code == 503  # some monitors ask for the status code alone


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
async def test_elsewhere_is_refused_without_a_configured_token(app: App, path: str) -> None:
    response = await get(path, ELSEWHERE)
    assert response.status_code == 403
    assert "health_token" in response.json()["error"]
    assert "database" not in response.text


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
async def test_elsewhere_needs_the_token(app: App, path: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_runtime().settings.server, "health_token", "s3cret-token")
    assert (await get(path, ELSEWHERE)).status_code == 401
    assert (await get(path, ELSEWHERE, Authorization="Bearer wrong")).status_code == 401
    answered = await get(path, ELSEWHERE, Authorization="Bearer s3cret-token")
    assert answered.status_code in (200, 503)
    assert "database" in answered.text


@pytest.mark.parametrize("header", ["X-Forwarded-For", "X-Real-IP", "Forwarded"])
async def test_a_request_through_a_local_proxy_needs_the_token(app: App, header: str,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """A reverse proxy on this machine connects from loopback: its forwarding header, whatever
    it says (here: loopback), takes the exemption away."""
    monkeypatch.setattr(get_runtime().settings.server, "health_token", "s3cret-token")
    refused = await get("/healthz", LOOPBACK, **{header: "127.0.0.1"})
    assert refused.status_code == 401
    answered = await get("/healthz", LOOPBACK, Authorization="Bearer s3cret-token",
                         **{header: "127.0.0.1"})
    assert answered.json()["database"]["reachable"] is True


async def test_metrics_count_the_requests_answered(app: App) -> None:
    def requests(text: str, route: str, status: str) -> float:
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "cadesk_http_requests_total" and s.labels["route"] == route
                   and s.labels["status"] == status)

    before = (await get("/metrics", LOOPBACK)).text
    await get("/healthz", LOOPBACK)
    await get("/healthz", LOOPBACK)
    await get("/healthz", ELSEWHERE)
    await get("/forms/nothing-here.pdf", LOOPBACK)
    response = await get("/metrics", LOOPBACK)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert requests(after, "/healthz", "503") == requests(before, "/healthz", "503") + 2
    assert requests(after, "/healthz", "403") == requests(before, "/healthz", "403") + 1
    assert requests(after, "/forms/{slug}.pdf", "404") == (
        requests(before, "/forms/{slug}.pdf", "404") + 1)  # the route, not the path asked
    assert "nothing-here" not in after
    families = {f.name for f in text_string_to_metric_families(after)}
    assert {"cadesk_status", "cadesk_database_up", "cadesk_chat_bots_connected",
            "cadesk_outbox_waiting", "cadesk_http_requests"} <= families


# --- the mailbox poller's own account of its progress ----------------------------------------
async def test_the_poller_reports_its_backlog_and_its_last_success(
        make_runtime: MakeRuntime, dovecot: Dovecot, smtp: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = await make_runtime(unlock_desk_config(dovecot, smtp))
    uscc = fake_uscc(RNG)
    for n in range(1, 4):
        dovecot.deliver(corpus.qq_mail(uscc, n).replace(b"zhangsan@", f"user{n}@".encode()))
    monkeypatch.setattr(mailbox, "FILE_BATCH", 1)  # a batch a mail: one commits, one fails
    poller = poller_of(runtime)
    file, filed = runtime.inbox.file_batch, []

    async def file_once(*args: object, **kwargs: object) -> object:
        if filed:
            raise RuntimeError("the second mail fails")
        filed.append(await file(*args, **kwargs))
        return filed[-1]

    monkeypatch.setattr(runtime.inbox, "file_batch", file_once)
    with pytest.raises(RuntimeError):
        await poller.poll_once()
    assert poller.progress.waiting == 2  # one of three filed
    assert poller.progress.last_error == "RuntimeError"
    assert poller.progress.last_success_at is None
    assert poller.progress.last_filed_at is not None

    monkeypatch.setattr(runtime.inbox, "file_batch", file)
    assert await poller.poll_once() == 2
    assert poller.progress.waiting == 0
    assert poller.progress.last_error is None
    assert poller.progress.last_success_at is not None
