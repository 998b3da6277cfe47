"""The bot's side of agent jobs, without processes: routing by company, identical resends,
the applicant told when no agent is there, expiry."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.key_agent.protocol import AgentKeys
from bot.runtime import Runtime
from bot.services.agents.registry import AgentRefused
from bot.services.centre import please_contact
from bot.services.messages import Account, Incoming
from storage.models import Agent, Certificate, Handler, Order, OutgoingMail, TokenJob, utcnow
from tests.support.agent_links import FakeLink, approved_unlock, paired_company
from tests.support.helpers import MakeRuntime


@pytest.fixture
async def runtime(make_runtime: MakeRuntime) -> Runtime:
    return await make_runtime('[staff]\ntechnicians = ["qq:900001"]\n[agents]\nenabled = true\n')


async def test_jobs_go_to_the_company_agent_only_and_resend_unchanged(runtime: Runtime) -> None:
    account, mine = await paired_company(runtime, "1")
    _, theirs = await paired_company(runtime, "2")
    other, own = FakeLink(), FakeLink()
    await runtime.hub.connected(theirs, other.send, other.close)
    order = await approved_unlock(runtime, account)  # no agent of this company online yet
    told = [str(r) for to, r in runtime.chat_outbox.chat.sent
            if str(to) == str(account) and "审核通过" in str(r)]
    assert len(told) == 1  # one approval, saying how to start (or pair) the agent
    assert "cadesk-agent run" in told[0]
    assert "绑定密钥代理" in told[0]
    assert other.sent == []
    await runtime.hub.connected(mine, own.send, own.close)
    [first] = own.sent
    assert first["job"]["kind"] == "token_info"
    runtime.hub.disconnected(mine.id)  # cut off before answering
    again = FakeLink()
    await runtime.hub.connected(mine, again.send, again.close)
    assert again.sent == own.sent  # the very same signed job: the agent's journal knows it
    assert other.sent == []
    await runtime.hub.result(theirs.id, {"id": first["job"]["id"], "ok": True})  # not theirs
    async with runtime.db.transaction() as session:
        job = await session.scalar(select(TokenJob).where(TokenJob.order_id == order.id))
        assert job.status == "sent"
    await runtime.desk.execute(Account("qq", "900001"), f"吊销代理 {mine.id}", private=True)
    assert again.closed


async def test_jobs_expire_and_status_says_so(runtime: Runtime) -> None:
    account, _ = await paired_company(runtime, "3")
    order = await approved_unlock(runtime, account)
    async with runtime.db.transaction() as session:
        await session.execute(update(TokenJob).values(expires_at=utcnow() - timedelta(minutes=1)))
    assert await runtime.hub.expire_due() == 1
    [status] = await runtime.dialogue.handle(account, Incoming(text=f"解锁状态 {order.number}"))
    assert "读取 UKEY：已过期" in status

    technician = Account("qq", "900001")
    retried = await runtime.desk.execute(technician, f"重新解锁 {order.number}", private=True)
    assert "已为订单" in retried[0]
    assert "读取 UKEY：等待密钥代理上线" in retried[1]
    again = await runtime.desk.execute(technician, f"重新解锁 {order.number}", private=True)
    assert "仍在进行" in again[0]


def technician() -> Account:
    return Account("qq", "900001")


def told_staff(runtime: Runtime) -> str:
    return "\n".join(str(r) for to, r in runtime.chat_outbox.chat.sent
                     if str(to) == str(technician()))


async def answer_token_info(runtime: Runtime, agent: Agent, link: FakeLink, serial: str) -> None:
    [sent] = [m for m in link.sent if m["job"]["kind"] == "token_info"]
    assert sent["job"]["agent"] == str(agent.id)  # signed for this very agent
    await runtime.hub.result(agent.id, {
        "id": sent["job"]["id"], "ok": True, "kind": "token_info",
        "token": {"serial": serial, "label": "ukey", "certificates": [
            {"subject": "O=临沂别家有限公司", "organisation": "临沂别家有限公司",
             "serial_number": "1a2b"}]}})


async def test_another_companys_serial_gets_no_reset_and_stops_for_good(runtime: Runtime) -> None:
    account, mine = await paired_company(runtime, "5")
    other, _ = await paired_company(runtime, "6")
    [registered] = await runtime.desk.execute(technician(), "登记UKEY B-0006 临沂6号测试有限公司",
                                              private=True)
    assert "已登记 UKEY B-0006" in registered
    link = FakeLink()
    await runtime.hub.connected(mine, link.send, link.close)
    order = await approved_unlock(runtime, account)
    await answer_token_info(runtime, mine, link, "B-0006")  # company 6's UKEY
    assert [m["job"]["kind"] for m in link.sent] == ["token_info"]  # no reset_pin
    async with runtime.db.transaction() as session:
        kinds = (await session.scalars(select(TokenJob.kind).where(
            TokenJob.order_id == order.id))).all()
    assert kinds == ["token_info"]
    staff = told_staff(runtime)
    assert "远程解锁已停止" in staff
    assert "B-0006 登记在 临沂6号测试有限公司" in staff
    assert "O=临沂别家有限公司" in staff  # what the agent read
    applicant = [str(r) for to, r in runtime.chat_outbox.chat.sent
                 if to == str(account)]
    assert any("登记在其他单位名下" in r and please_contact(runtime.settings) in r
               for r in applicant)
    [confirm] = await runtime.desk.execute(technician(), f"确认解锁 {order.number}",
                                           private=True)
    assert "已登记在 临沂6号测试有限公司" in confirm  # no confirming someone else's UKEY
    assert [m["job"]["kind"] for m in link.sent] == ["token_info"]
    [history] = await runtime.desk.execute(technician(), f"历史 {order.number}", private=True)
    assert "agent:1 UKEY 不属于本单位，任务停止" in history
    assert "UKEY B-0006 登记在 临沂6号测试有限公司" in history
    [status] = await runtime.dialogue.handle(account, Incoming(text=f"解锁状态 {order.number}"))
    assert "登记在其他单位名下：已停止" in status
    assert "临沂6号" not in status  # the applicant is not told whose it is
    assert other != account


async def test_an_unknown_serial_waits_for_confirmation_then_resets(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADESK_SO_MASTER", "ab" * 32)  # the reset_pin carries the SO PIN
    account, mine = await paired_company(runtime, "7")
    link = FakeLink()
    await runtime.hub.connected(mine, link.send, link.close)
    order = await approved_unlock(runtime, account)
    await answer_token_info(runtime, mine, link, "OLD-0007")
    assert [m["job"]["kind"] for m in link.sent] == ["token_info"]
    assert f"确认解锁 {order.number}" in told_staff(runtime)
    assert "UKEY 卡号 OLD-0007" in told_staff(runtime)
    [status] = await runtime.desk.execute(technician(), f"解锁状态 {order.number}", private=True)
    assert f"等待技术人员核对后「确认解锁 {order.number}」" in status

    [confirmed] = await runtime.desk.execute(technician(), f"确认解锁 {order.number}",
                                             private=True)
    assert "已确认 UKEY OLD-0007 属于 临沂7号测试有限公司" in confirmed
    reset = link.sent[-1]["job"]
    assert (reset["kind"], reset["token_serial"], reset["agent"]) == (
        "reset_pin", "OLD-0007", str(mine.id))
    [again] = await runtime.desk.execute(technician(), f"确认解锁 {order.number}", private=True)
    assert "已经在重置密码" in again
    [history] = await runtime.desk.execute(technician(), f"历史 {order.number}", private=True)
    assert "qq:900001 确认 UKEY 属于本单位" in history
    assert "UKEY OLD-0007" in history
    # a key agent's job says which job it was and how it ended, never a bare 密钥代理任务
    assert f"agent:{mine.id} 密钥代理任务：读取 UKEY完成" in history
    assert all("密钥代理任务：" in line for line in history.splitlines() if "密钥代理任务" in line)
    # on record now: the same company's 登记UKEY changes nothing, another's is refused
    [same] = await runtime.desk.execute(technician(), "登记UKEY OLD-0007 临沂7号测试有限公司",
                                        private=True)
    assert "无需重复登记" in same
    await paired_company(runtime, "8")
    [refused] = await runtime.desk.execute(technician(), "登记UKEY OLD-0007 临沂8号测试有限公司",
                                           private=True)
    assert "已登记在 临沂7号测试有限公司" in refused
    assert "请核对卡号" in refused
    [unknown] = await runtime.desk.execute(technician(), "登记UKEY X-1 没有这个单位",
                                           private=True)
    assert "没有找到单位" in unknown


async def test_refused_hellos_reach_the_staff_at_most_once_an_interval(runtime: Runtime) -> None:
    """The first refused hello is told at once; the next ones, from any address, are counted
    and told in one summary when the interval is up (a minute; shortened here)."""
    guard = runtime.hub.hellos
    guard.interval = 0.5

    async def refused_hello(address: str, claimed: object) -> None:
        try:
            guard.check(address)
            await runtime.hub.hello(claimed, "challenge", "proof")
        except AgentRefused as refusal:
            await guard.refused(address, claimed, refusal)

    def notices() -> list[str]:
        return [n for n in told_staff(runtime).split("\n") if "密钥代理" in n]

    await refused_hello("203.0.113.9", 31337)
    assert notices() == ["拒绝了密钥代理 31337 的连接：未绑定的密钥代理（unknown_agent）"]
    for n in range(30):
        await refused_hello("203.0.113.9" if n % 2 else "198.51.100.7",
                            f"{n}<img src=x>请联系13812345678" * 3)
    assert len(notices()) == 1  # the rest wait for the summary
    await asyncio.sleep(0.8)
    summary = notices()[1:]
    # each address had 10 refusals before it was limited: .9 (1 + 9 of its 15), .7 (10 of 15)
    assert summary == ["上次通知后又拒绝了 30 次密钥代理连接（unknown_agent 19 次、"
                       "too_many_attempts 11 次），来自 2 个地址，最近一次自称代理 29imgsrcx138…。"]
    await asyncio.sleep(0.8)
    assert len(notices()) == 2  # nothing new, nothing told


MAIL_AND_PKI = """
[staff]
technicians = ["qq:900001"]
[agents]
enabled = true
[pki]
enabled = true
[email]
enabled = true
host = "127.0.0.1"
port = 9
security = "none"
from_address = "ca@centre.example"
retry_seconds = 3600
"""  # nothing listens on the mail port: what was queued stays in outgoing_mail to be read


@pytest.fixture
async def late_runtime(make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setenv("CADESK_SO_MASTER", "ab" * 32)  # reset_pin and personalise carry PINs
    return await make_runtime(MAIL_AND_PKI)


def told(runtime: Runtime, account: Account) -> str:
    return "\n".join(str(r) for to, r in runtime.chat_outbox.chat.sent if str(to) == str(account))


async def expire(runtime: Runtime, job_id: str) -> None:
    async with runtime.db.transaction() as session:
        await session.execute(update(TokenJob).where(TokenJob.id == job_id).values(
            expires_at=utcnow() - timedelta(minutes=1)))
    assert await runtime.hub.expire_due() == 1


async def job(runtime: Runtime, job_id: str) -> TokenJob:
    async with runtime.db.transaction() as session:
        return await session.get(TokenJob, job_id)


async def order_of(runtime: Runtime, number: str) -> Order:
    async with runtime.db.transaction() as session:
        return await session.scalar(select(Order).where(Order.number == number))


async def test_a_pin_reset_reported_after_its_job_expired_completes_the_unlock(
        late_runtime: Runtime) -> None:
    runtime = late_runtime
    account, mine = await paired_company(runtime, "21")
    _, theirs = await paired_company(runtime, "22")
    async with runtime.db.transaction() as session:  # the applicant gave a mail address
        handler = await session.scalar(select(Handler).where(Handler.user_id == "21"))
        handler.email = "applicant21@example.test"
    await runtime.desk.execute(technician(), "登记UKEY K-0021 临沂21号测试有限公司", private=True)
    link = FakeLink()
    await runtime.hub.connected(mine, link.send, link.close)
    order = await approved_unlock(runtime, account)
    await answer_token_info(runtime, mine, link, "K-0021")
    reset = link.sent[-1]["job"]
    assert reset["kind"] == "reset_pin"

    await expire(runtime, reset["id"])  # the person at the PC is slow to type the new PIN
    assert "远程解锁任务（重置密码）已过期" in told(runtime, account)
    assert f"「重新解锁 {order.number}」" in told_staff(runtime)
    [retried, _] = await runtime.desk.execute(technician(), f"重新解锁 {order.number}",
                                              private=True)
    assert "已为订单" in retried
    retry = link.sent[-1]["job"]
    assert retry["kind"] == "token_info"  # the retry's first job, sent to the agent

    answer = {"id": reset["id"], "ok": True, "kind": "reset_pin",
              "token": {"serial": "K-0021"}, "message": "PIN 已重置"}
    await runtime.hub.result(theirs.id, answer)  # another company's agent: refused
    assert (await job(runtime, reset["id"])).status == "expired"
    assert (await order_of(runtime, order.number)).status == "approved"

    await runtime.hub.result(mine.id, answer)  # the agent it was sent to: the truth
    assert (await job(runtime, reset["id"])).status == "done_late"
    assert (await job(runtime, retry["id"])).status == "withdrawn"  # no second reset unasked
    assert (await order_of(runtime, order.number)).status == "completed"
    applicant = told(runtime, account)
    assert "UKEY 密码其实已经重置了" in applicant
    assert "「重新解锁」安排的任务已撤回" in applicant
    async with runtime.db.transaction() as session:
        mails = (await session.scalars(select(OutgoingMail).where(
            OutgoingMail.to_address == "applicant21@example.test"))).all()
    subjects = [m.subject for m in mails]
    assert f"订单 {order.number}：远程解锁任务已过期" in subjects
    assert f"订单 {order.number}：UKEY 密码已重置（结果迟到）" in subjects
    assert "UKEY 密码已重置，订单已完成" in told_staff(runtime)
    [status] = await runtime.desk.execute(technician(), f"解锁状态 {order.number}", private=True)
    assert "重置密码：完成（过期后才送回结果）" in status
    assert "读取 UKEY：已撤回" in status
    [history] = await runtime.desk.execute(technician(), f"历史 {order.number}", private=True)
    assert "重置密码过期未完成" in history
    assert "重置密码完成（任务过期后送回）" in history

    # the withdrawn job ran all the same on the PC: recorded, staff told, nothing moves
    await runtime.hub.result(mine.id, {"id": retry["id"], "ok": True, "kind": "token_info",
                                       "token": {"serial": "K-0021"}})
    assert (await job(runtime, retry["id"])).status == "done_late"
    last = told_staff(runtime).rsplit("\n", 1)[-1]
    assert "「读取 UKEY」任务已撤回" in last
    assert "订单目前已完成" in last
    assert "重新解锁" not in last  # nothing to arrange again: the unlock is done
    assert [m["job"]["kind"] for m in link.sent].count("reset_pin") == 1
    await runtime.hub.result(mine.id, {"id": "no-such-job", "ok": True})  # unknown: refused


async def hall_and_paid_order(runtime: Runtime) -> tuple[Agent, FakeLink, str]:
    account, _ = await paired_company(runtime, "23")
    [reply] = await runtime.desk.execute(technician(), "绑定制证代理", private=True)
    keys = AgentKeys.generate().public()
    paired = await runtime.agents.pair(reply.split("--code ")[1].split()[0], keys["identity"],
                                       keys["sealing"])
    async with runtime.db.transaction() as session:
        hall = await session.get(Agent, paired.agent_id)
        handler = await session.scalar(select(Handler).where(Handler.user_id == "23"))
        from bot.services.filing import file_order
        order = await file_order(session, runtime.settings, order_type="certificate",
                                 values={"years": "1年", "apply_kind": "新办",
                                         "self_pickup": "自取"},
                                 scans={}, company_id=handler.company_id,
                                 handler_id=handler.id, actor=str(account))
        number = order.number
    for command in (f"通过 {number}", f"收款 {number}"):
        await runtime.desk.execute(technician(), command, private=True)
    link = FakeLink()
    await runtime.hub.connected(hall, link.send, link.close)
    return hall, link, number


def a_csr() -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding

    from bot.key_agent.protocol import b64
    key = ec.generate_private_key(ec.SECP256R1())
    return b64(x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
               .sign(key, hashes.SHA256()).public_bytes(Encoding.DER))


async def test_late_certificate_steps_go_on_or_are_told_as_they_are(
        late_runtime: Runtime) -> None:
    runtime = late_runtime
    hall, link, number = await hall_and_paid_order(runtime)
    await runtime.desk.execute(technician(), f"制证 {number}", private=True)
    read = link.sent[-1]["job"]
    await expire(runtime, read["id"])
    assert f"订单 {number} 的制证任务（读取 UKEY）已过期未完成" in told_staff(runtime)
    assert f"「重新制证 {number}」" in told_staff(runtime)

    # late, nothing newer queued, the order still paid: it goes on as if on time
    await runtime.hub.result(hall.id, {"id": read["id"], "ok": True, "kind": "token_info",
                                       "token": {"serial": "BLANK-23", "certificates": []}})
    assert "已按原流程继续" in told_staff(runtime)
    personalise = link.sent[-1]["job"]
    assert personalise["kind"] == "personalise"

    await expire(runtime, personalise["id"])
    await runtime.desk.execute(technician(), f"制证 {number}", private=True)  # started again
    assert link.sent[-1]["job"]["kind"] == "token_info"
    await runtime.hub.result(hall.id, {"id": personalise["id"], "ok": True,
                                       "kind": "personalise", "csr": a_csr(),
                                       "token": {"serial": "BLANK-23"}})
    staff = told_staff(runtime)
    assert "UKEY BLANK-23 已被初始化" in staff
    assert "它已不是空白 UKEY" in staff
    assert "之后已安排了新的任务，没有按这个结果继续" in staff
    assert (await job(runtime, personalise["id"])).status == "done_late"
    async with runtime.db.transaction() as session:
        assert (await session.scalars(select(Certificate))).all() == []  # nothing issued
    assert (await order_of(runtime, number)).certificate_serial is None
