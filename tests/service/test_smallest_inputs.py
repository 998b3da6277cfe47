"""The smallest, most broken input each door takes from outside: each ends in a refusal with a
reason, and whatever reads it goes on with the next one.
- chat: a 1×1 image (JPEG, PNG, GIF, BMP) and an empty file, then a proper scan;
- the unlock mailbox: a mail cut after a few bytes, inside its headers, inside its base64,
  ahead of a good one in a real Dovecot;
- a key agent: its own job answered with a field missing or of the wrong kind, then a proper
  answer to the retried job."""

import io
import random
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from bot.key_agent.protocol import AgentKeys, result_problem
from bot.runtime import Runtime
from bot.samples import fake_uscc
from bot.services.messages import Account, Incoming
from storage.models import Agent, InboundMail, Order, OrderEvent, TokenJob
from tests.support import mail_corpus as corpus
from tests.support.applicant import bind_verified, say
from tests.support.dovecot import Dovecot
from tests.support.helpers import MakeRuntime
from tests.support.smtp_sink import SmtpSink
from tests.support.unlock_mailbox import poller_of, unlock_desk_config

RNG = random.Random(11)
TECHNICIAN = Account("qq", "900001")


def one_pixel(kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), "white").save(buffer, kind)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["JPEG", "PNG", "GIF", "BMP", "empty"])
async def test_a_one_pixel_image_is_refused_with_the_reason_and_the_form_goes_on(
        make_runtime: MakeRuntime, tmp_path: Path, scan_files: list[Path], kind: str) -> None:
    runtime = await make_runtime("")
    clerk = Account("qq", "7001")
    await bind_verified(runtime, clerk, fake_uscc(RNG), "临沂一像素测试有限公司")
    for text in ("新办证书", "1", "临沂", "1", "张三", "370102199003071238", "13812345678",
                 "自取"):
        await say(runtime, clerk, text)
    tiny = tmp_path / f"tiny.{kind.lower()}"
    tiny.write_bytes(b"" if kind == "empty" else one_pixel(kind))
    refused = await say(runtime, clerk, "", tiny)
    assert "已收到" not in refused
    assert "图片" in refused  # the reason, in Chinese: too small, empty, damaged …
    assert "【附件一" in refused  # and the same scan is asked again
    assert "已收到【附件一" in await say(runtime, clerk, "", scan_files[0])  # it goes on


@pytest.fixture
async def mail_runtime(make_runtime: MakeRuntime, dovecot: Dovecot, smtp: SmtpSink) -> Runtime:
    return await make_runtime(unlock_desk_config(dovecot, smtp))


async def test_cut_mails_ahead_of_a_good_one_are_answered_or_set_aside_and_it_is_filed(
        mail_runtime: Runtime, dovecot: Dovecot) -> None:
    uscc = fake_uscc(RNG)
    whole = corpus.qq_mail(uscc, 1)
    body = whole.index(b"\r\n\r\n")
    cuts = [whole[:7], whole[:body // 2], whole[:body + 40], whole[:len(whole) // 2]]
    for n, cut in enumerate(cuts, start=2):
        dovecot.deliver(cut.replace(b"<qq-1@", f"<cut-{n}@".encode()))
    dovecot.deliver(corpus.qq_mail(uscc, 9))  # the good one, behind them all
    assert await poller_of(mail_runtime).poll_once() == len(cuts) + 1
    assert await poller_of(mail_runtime).poll_once() == 0  # every UID moved on
    async with mail_runtime.db.transaction() as session:
        kept = (await session.scalars(select(InboundMail).order_by(InboundMail.uid))).all()
    assert len(kept) == len(cuts) + 1  # each cut mail recorded once, with its outcome
    assert all(r.outcome in ("filed", "incomplete", "for_humans", "ignored") for r in kept)
    assert all(r.reason for r in kept if r.outcome == "for_humans")  # a person reads why
    assert kept[-1].outcome == "filed"
    assert kept[-1].message_id == "<qq-9@qq.test>"


@pytest.fixture
async def agent_runtime(make_runtime: MakeRuntime) -> Runtime:
    return await make_runtime('[staff]\ntechnicians = ["qq:900001"]\n[agents]\nenabled = true\n')


async def unlock_sent_to_an_agent(runtime: Runtime) -> tuple[Account, Order, Agent, list[dict]]:
    from bot.services.filing import file_order
    from storage.repositories import Handlers

    account = Account("qq", "7101")
    await bind_verified(runtime, account, fake_uscc(RNG), "临沂坏回复测试有限公司")
    [reply] = await runtime.dialogue.handle(account, Incoming(text="绑定密钥代理"))
    keys = AgentKeys.generate().public()
    paired = await runtime.agents.pair(reply.split("--code ")[1].split()[0], keys["identity"],
                                       keys["sealing"])
    async with runtime.db.transaction() as session:
        agent = await session.get(Agent, paired.agent_id)
        handler = await Handlers(session).get(account.platform, account.user_id)
        order = await file_order(session, runtime.settings, order_type="unlock",
                                 values={"company_name": handler.company.name,
                                         "uscc": handler.company.uscc},
                                 scans={}, company_id=handler.company_id,
                                 handler_id=handler.id, actor=str(account))
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def close() -> None:
        return None

    await runtime.hub.connected(agent, send, close)
    await runtime.desk.execute(TECHNICIAN, f"通过 {order.number}", private=True)
    return account, order, agent, sent


BROKEN = {
    "ok missing": lambda job: {"id": job},
    "ok not a yes or no": lambda job: {"id": job, "ok": "yes"},
    "no token": lambda job: {"id": job, "ok": True},
    "token not an object": lambda job: {"id": job, "ok": True, "token": "UKEY-1"},
    "serial empty": lambda job: {"id": job, "ok": True, "token": {"serial": ""}},
    "certificates not a list": lambda job: {"id": job, "ok": True,
                                            "token": {"serial": "S1", "certificates": "x"}},
    "message not text": lambda job: {"id": job, "ok": False, "message": {"a": 1}},
}


@pytest.mark.parametrize("broken", list(BROKEN), ids=list(range(len(BROKEN))))
async def test_a_broken_answer_from_the_agent_fails_the_step_and_a_retry_goes_on(
        agent_runtime: Runtime, broken: str) -> None:
    runtime = agent_runtime
    account, order, agent, sent = await unlock_sent_to_an_agent(runtime)
    [first] = sent
    await runtime.hub.result(agent.id, BROKEN[broken](first["job"]["id"]))  # must not raise
    async with runtime.db.transaction() as session:
        job = await session.get(TokenJob, first["job"]["id"])
        assert job is not None
        assert (job.status, (job.result or {}).get("code")) == ("failed", "malformed_result")
        logged = (await session.scalars(select(OrderEvent).where(
            OrderEvent.order_id == order.id))).all()
    assert any((e.detail or {}).get("code") == "malformed_result" for e in logged)
    told = [str(r) for to, r in runtime.chat_outbox.chat.sent if str(to) == str(account)]
    assert any("密钥代理的回复不完整" in t for t in told)  # the applicant hears why

    retried = await runtime.desk.execute(TECHNICIAN, f"重新解锁 {order.number}", private=True)
    assert "已为订单" in retried[0]
    second = sent[-1]["job"]
    assert second["id"] != first["job"]["id"]
    await runtime.hub.result(agent.id, {"id": second["id"], "ok": True, "kind": "token_info",
                                        "token": {"serial": "S-UNKNOWN", "certificates": []}})
    async with runtime.db.transaction() as session:
        job = await session.get(TokenJob, second["id"])
        assert job is not None
        assert job.status == "done"  # the worker went on: the proper answer is taken


@pytest.mark.parametrize("frame", [{}, [], "text", None, 5, {"id": 5}, {"id": "no-such-job"}])
async def test_an_answer_to_no_job_of_that_agent_is_dropped(agent_runtime: Runtime,
                                                            frame: object) -> None:
    _, _, agent, sent = await unlock_sent_to_an_agent(agent_runtime)
    await agent_runtime.hub.result(agent.id, frame)  # type: ignore[arg-type]
    async with agent_runtime.db.transaction() as session:
        job = await session.get(TokenJob, sent[0]["job"]["id"])
        assert job is not None
        assert job.status == "sent"  # untouched, still waiting for its agent


def test_the_agents_own_answers_have_the_shape_the_bot_checks() -> None:
    ok = {"id": "j", "ok": True, "kind": "token_info",
          "token": {"serial": "S1", "certificates": [{"serial_number": "1f"}]}}
    assert result_problem(ok, "token_info") is None
    assert result_problem({"id": "j", "ok": False, "code": "wrong_pin", "message": "密码错"},
                          "reset_pin") is None
    assert result_problem({**ok, "csr": "AAAA"}, "request") == (
        "csr missing or not a certificate request")
