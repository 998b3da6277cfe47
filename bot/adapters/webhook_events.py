"""[cluster]: the webhook events every process has taken, shared through the database, so a
platform's retry (or a replay) that the balancer sends to another process than the first is
acknowledged there and not handled again. One process alone remembers them in memory."""

from datetime import timedelta

from storage.db import Database
from storage.models import utcnow
from storage.repositories import WebhookEvents

KEPT = timedelta(days=1)  # platforms retry within minutes; a replay later is refused as stale


class SharedEvents:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def first(self, source: str, event_id: str) -> bool:
        """Record the event; True when no process took it before. Raises
        ``DatabaseUnavailable`` (then the platform is asked to try again later)."""
        async with self.db.transaction() as session:
            return await WebhookEvents(session).first(source, event_id, utcnow())

    async def prune(self) -> int:
        async with self.db.transaction() as session:
            return await WebhookEvents(session).forget_before(utcnow() - KEPT)
