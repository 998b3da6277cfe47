"""The bot's side of agent jobs, without processes: routing by company, identical resends,
the applicant told when no agent is there, expiry."""

import random
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.key_agent.protocol import AgentKeys
from bot.runtime import Runtime
from bot.samples import fake_uscc
from bot.services.messages import Account, Incoming
from storage.models import Agent, Order, TokenJob, utcnow
from tests.support.applicant import bind_verified
from tests.support.helpers import MakeRuntime

RNG = random.Random(77)


@pytest.fixture
async def runtime(make_runtime: MakeRuntime) -> Runtime:
    return await make_runtime('[staff]\ntechnicians = ["qq:900001"]\n[agents]\nenabled = true\n')


async def paired_company(runtime: Runtime, user: str) -> tuple[Account, Agent]:
    account = Account("qq", user)
    await bind_verified(runtime, account, fake_uscc(RNG), f"临沂{user}号测试有限公司")
    [reply] = await runtime.dialogue.handle(account, Incoming(text="绑定密钥代理"))
    keys = AgentKeys.generate().public()
    paired = await runtime.agents.pair(reply.split("--code ")[1].split()[0], keys["identity"],
                                       keys["sealing"])
    async with runtime.db.transaction() as session:
        return account, await session.get(Agent, paired.agent_id)


async def approved_unlock(runtime: Runtime, account: Account) -> Order:
    """An approved unlock order of the account's company (made directly: the chat form has its
    own tests)."""
    from bot.services.filing import file_order
    from storage.repositories import Handlers

    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(account.platform, account.user_id)
        order = await file_order(session, runtime.settings, order_type="unlock",
                                 values={"company_name": handler.company.name,
                                         "uscc": handler.company.uscc},
                                 scans={}, company_id=handler.company_id,
                                 handler_id=handler.id, actor=str(account))
        number = order.number
    await runtime.desk.execute(Account("qq", "900001"), f"通过 {number}", private=True)
    async with runtime.db.transaction() as session:
        return await session.scalar(select(Order).where(Order.number == number))


class FakeLink:
    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.closed = False

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    async def close(self) -> None:
        self.closed = True


async def test_jobs_go_to_the_company_agent_only_and_resend_unchanged(runtime: Runtime) -> None:
    account, mine = await paired_company(runtime, "1")
    _, theirs = await paired_company(runtime, "2")
    other, own = FakeLink(), FakeLink()
    await runtime.hub.connected(theirs, other.send, other.close)
    order = await approved_unlock(runtime, account)  # no agent of this company online yet
    assert any("等待您的密钥代理上线" in str(r) for _, r in runtime.chat_outbox.chat.sent)
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
    assert any("登记在其他单位名下" in r and "联系服务中心" in r for r in applicant)
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
