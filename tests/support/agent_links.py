"""A key agent's bot side without the agent: a company with a paired agent, an approved
unlock for it, and a link standing for the agent's WebSocket."""

import random

from sqlalchemy import select

from bot.key_agent.protocol import AgentKeys
from bot.runtime import Runtime
from bot.samples import fake_uscc
from bot.services.filing import file_order
from bot.services.messages import Account, Incoming
from storage.models import Agent, Order
from storage.repositories import Handlers
from tests.support.applicant import bind_verified

RNG = random.Random(77)


async def pair_agent(runtime: Runtime, account: Account) -> Agent:
    """Another agent paired by the account (verified) for its company."""
    [reply] = await runtime.dialogue.handle(account, Incoming(text="绑定密钥代理"))
    keys = AgentKeys.generate().public()
    paired = await runtime.agents.pair(reply.split("--code ")[1].split()[0], keys["identity"],
                                       keys["sealing"])
    async with runtime.db.transaction() as session:
        agent = await session.get(Agent, paired.agent_id)
    assert agent is not None
    return agent


async def paired_company(runtime: Runtime, user: str) -> tuple[Account, Agent]:
    account = Account("qq", user)
    await bind_verified(runtime, account, fake_uscc(RNG), f"临沂{user}号测试有限公司")
    return account, await pair_agent(runtime, account)


async def approved_unlock(runtime: Runtime, account: Account) -> Order:
    """An approved unlock order of the account's company (made directly: the chat form has its
    own tests)."""
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
