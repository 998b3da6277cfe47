"""Conversations: a form in progress, one per chat account."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import Executable

from storage.account_memo import ACCOUNT, WRITTEN_THROUGH, FormRow
from storage.models import Conversation, utcnow
from storage.repositories.upserts import account_upsert

_UPDATED = ("state", "updated_at")


def _upsert(dialect: str) -> Executable:
    return account_upsert(Conversation.__table__, dialect, _UPDATED)


async def save_states(connection: AsyncConnection,
                      rows: Sequence[tuple[str, str, dict, datetime]]) -> None:
    """``Conversations.save`` for many accounts in one statement, on a Core connection (the
    group commit's batch, storage/state_writer.py): each row (platform, user_id, state, at).
    One row is one statement execution (an autocommitting connection commits it by itself);
    more are an executemany, which the caller wraps in a transaction."""
    params = [{"platform": platform, "user_id": user_id, "state": state, "updated_at": at}
              for platform, user_id, state, at in rows]
    await connection.execute(_upsert(connection.dialect.name),
                             params[0] if len(params) == 1 else params)


class Conversations:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, platform: str, user_id: str) -> Conversation | None:
        return await self.session.scalar(select(Conversation).where(
            Conversation.platform == platform, Conversation.user_id == user_id))

    async def form_of(self, platform: str, user_id: str) -> FormRow | None:
        """The account's form as saved, read with one Core statement (no ORM object)."""
        row = (await self.session.execute(
            select(Conversation.state, Conversation.updated_at).where(
                Conversation.platform == platform, Conversation.user_id == user_id))).first()
        return FormRow(row.state, row.updated_at) if row is not None else None

    async def forms_of(self, accounts: Sequence[tuple[str, str]]
                       ) -> dict[tuple[str, str], FormRow]:
        """``form_of`` for many accounts in one statement: those with a form, by account."""
        rows = await self.session.execute(
            select(Conversation.platform, Conversation.user_id, Conversation.state,
                   Conversation.updated_at)
            .where(tuple_(Conversation.platform, Conversation.user_id).in_(accounts)))
        return {(platform, user_id): FormRow(state, at) for platform, user_id, state, at in rows}

    async def save(self, platform: str, user_id: str, state: dict,
                   at: datetime | None = None, *, written_through: bool = False) -> None:
        """Runs after every chat message, so one statement: an INSERT … ON CONFLICT DO UPDATE.
        A ``Conversation`` already loaded in this session is not refreshed: callers hold the
        state they save. ``written_through``: the caller puts this very state in the account
        memo after the commit (storage/account_memo.py), so the write does not make the memo
        forget the account."""
        await self.session.execute(
            _upsert(self.session.bind.dialect.name).execution_options(
                **{ACCOUNT: (platform, user_id), WRITTEN_THROUGH: written_through}),
            {"platform": platform, "user_id": user_id, "state": state,
             "updated_at": at or utcnow()})

    async def delete(self, platform: str, user_id: str) -> None:
        await self.session.execute(delete(Conversation).where(
            Conversation.platform == platform, Conversation.user_id == user_id)
            .execution_options(**{ACCOUNT: (platform, user_id)}))

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
