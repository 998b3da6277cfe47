"""Key agents (a company's, or the service hall's) and the one-time codes that pair them."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Agent, PairingCode
from storage.repositories.codes import claim


class PairingCodes:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, code_hash: str, now: datetime) -> PairingCode | None:
        """The code, marked used, when it is unused and unexpired (``codes.claim``)."""
        return await claim(self.session, PairingCode, code_hash, now)

    async def withdraw(self, requested_by: str, now: datetime) -> None:
        """The unused codes the account asked for can no longer pair an agent."""
        await self.session.execute(
            update(PairingCode)
            .where(PairingCode.requested_by == requested_by, PairingCode.used_at.is_(None),
                   PairingCode.expires_at > now)
            .values(expires_at=now).execution_options(synchronize_session=False))


class Agents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, agent_id: int) -> Agent | None:
        return await self.session.get(Agent, agent_id)

    async def revoked_among(self, agent_ids: Sequence[int]) -> Sequence[int]:
        """Which of these agents are revoked."""
        return (await self.session.scalars(select(Agent.id).where(
            Agent.id.in_(agent_ids), Agent.revoked_at.is_not(None)))).all()

    async def seen(self, agent_ids: Sequence[int], now: datetime) -> None:
        """These agents are connected now."""
        await self.session.execute(update(Agent).where(Agent.id.in_(agent_ids))
                                   .values(last_seen_at=now))

    async def seen_since(self, since: datetime) -> Sequence[tuple[bool, int | None]]:
        """Whom the agents seen since then serve: (hall, company id) of each, revoked ones
        left out."""
        rows = await self.session.execute(select(Agent.hall, Agent.company_id).where(
            Agent.last_seen_at >= since, Agent.revoked_at.is_(None)))
        return [(hall, company_id) for hall, company_id in rows]

    async def by_identity(self, identity_key: str) -> Agent | None:
        return await self.session.scalar(select(Agent).where(Agent.identity_key == identity_key))

    async def add(self, agent: Agent) -> Agent:
        """Written now, so it has its id, and with its company loaded."""
        self.session.add(agent)
        await self.session.flush()
        await self.session.refresh(agent, ["company"])
        return agent

    async def paired_by(self, account: str) -> Sequence[Agent]:
        """The agents an account paired (its pairing code), in pairing order."""
        return (await self.session.scalars(
            select(Agent).where(Agent.paired_by == account).order_by(Agent.id))).unique().all()

    async def listed(self, company_id: int | None = None) -> Sequence[Agent]:
        """Every agent, or a company's, in pairing order."""
        query = select(Agent).order_by(Agent.id)
        if company_id is not None:
            query = query.where(Agent.company_id == company_id)
        return (await self.session.scalars(query)).unique().all()
