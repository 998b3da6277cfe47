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
    assert any("等待您的密钥代理上线" in str(r) for _, r in runtime.desk.notifier.chat.sent)
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
