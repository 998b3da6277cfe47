"""Webhook events by id: which process handles an event a platform posted more than once."""

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import WebhookEvent

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


class WebhookEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def first(self, source: str, event_id: str, now: datetime) -> bool:
        """Record the event; True when no process recorded it before (one statement: of two
        processes given it at once, one is first)."""
        insert = _INSERTS[self.session.bind.dialect.name](WebhookEvent)
        result = await self.session.execute(
            insert.values(source=source, event_id=event_id, received_at=now)
            .on_conflict_do_nothing())
        return result.rowcount == 1

    async def forget_before(self, before: datetime) -> int:
        """Forget the events received before then (a platform retries within minutes)."""
        result = await self.session.execute(
            delete(WebhookEvent).where(WebhookEvent.received_at < before))
        return result.rowcount or 0
