"""Conversations: a form in progress, one per chat account."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Conversation, utcnow


class Conversations:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, platform: str, user_id: str) -> Conversation | None:
        return await self.session.scalar(select(Conversation).where(
            Conversation.platform == platform, Conversation.user_id == user_id))

    async def save(self, platform: str, user_id: str, state: dict) -> None:
        """Runs after every chat message, so one UPDATE rather than a SELECT and a flush. A
        ``Conversation`` already loaded in this session is not refreshed: callers hold the
        state they save."""
        updated = await self.session.execute(
            update(Conversation)
            .where(Conversation.platform == platform, Conversation.user_id == user_id)
            .values(state=state, updated_at=utcnow())
            .execution_options(synchronize_session=False))
        if updated.rowcount == 0:
            self.session.add(Conversation(platform=platform, user_id=user_id, state=state))

    async def delete(self, platform: str, user_id: str) -> None:
        await self.session.execute(delete(Conversation).where(
            Conversation.platform == platform, Conversation.user_id == user_id))

    async def states(self) -> Sequence[dict]:
        return (await self.session.scalars(select(Conversation.state))).all()

    async def drop_idle(self, before: datetime) -> Sequence[dict]:
        """Delete the forms nobody answered since ``before``; their states, as they were."""
        idle = Conversation.updated_at < before
        states = (await self.session.scalars(select(Conversation.state).where(idle))).all()
        if states:
            await self.session.execute(delete(Conversation).where(idle)
                                       .execution_options(synchronize_session=False))
        return states
