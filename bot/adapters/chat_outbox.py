"""The chat outbox: notices (approvals, payment QR codes, rejections, staff notices) are written
in the transaction of the change they report and delivered from here, like mail: retried while
the platform's bot is offline, each once, in order per recipient, dropped to the log only after
``[chat] max_age_hours``.

Delivery is at least once: a message is marked sent after the platform accepted it, so a crash
between the two sends it again at the next start (the one case of a repeat).
"""

import asyncio
import base64
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.periodic import Periodic
from bot.config import ChatSection
from bot.domain.masking import mask_personal_numbers
from bot.services.messages import Account, Picture, Reply
from bot.services.ports import ChatChannel
from storage.db import Database
from storage.models import OutgoingChat, utcnow
from storage.repositories import OutgoingChats

BATCH = 100


def to_row(reply: Reply) -> dict[str, Any]:
    if isinstance(reply, Picture):
        return {"image": base64.b64encode(reply.data).decode("ascii"), "alt": reply.alt}
    return {"text": reply}


def from_row(message: dict[str, Any]) -> Reply:
    if "image" in message:
        return Picture(base64.b64decode(message["image"]), str(message.get("alt", "")))
    return str(message["text"])


def _preview(message: dict[str, Any]) -> str:
    """For the log: masked, short."""
    text = message.get("text") or f"（图片：{message.get('alt', '')}）"
    return mask_personal_numbers(str(text))[:80]


class ChatOutbox:
    def __init__(self, db: Database, settings: ChatSection, chat: ChatChannel) -> None:
        self.db = db
        self.settings = settings
        self.chat = chat
        self._lock = asyncio.Lock()  # one delivery pass at a time: a message is sent once
        self._worker = Periodic("chat outbox", self.deliver, settings.retry_seconds)

    def enqueue(self, session: AsyncSession, to: Account, replies: Sequence[Reply], *,
                group: bool = False, order_id: int | None = None) -> None:
        """Queue inside the caller's transaction, one row per message (a picture after its
        text is its own row: a retry never repeats the text); ``deliver`` after the commit."""
        repository = OutgoingChats(session)
        for reply in replies:
            repository.add(OutgoingChat(platform=to.platform, recipient=to.user_id,
                                        is_group=group, message=to_row(reply),
                                        order_id=order_id))

    def start(self) -> None:
        self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()

    async def reconnected(self, platform: str) -> None:
        """A platform's bot (re)connected: what waited for it goes out now, not after backoff."""
        try:
            async with self.db.transaction() as session:
                due = await OutgoingChats(session).retry_now(platform, utcnow())
        except Exception as error:  # the worker retries on its own schedule
            logger.warning(f"chat outbox: {platform} reconnected, not rescheduled: {error}")
            return
        if due:
            logger.info(f"chat outbox: {platform} is back, {due} message(s) due now")
        self._worker.wake()

    async def deliver(self) -> int:
        """Send every message that is due, keeping each recipient's order; returns how many
        were sent. Never raises: a caller has already committed its change, and the worker
        tries again."""
        try:
            # and one in every process sharing the database ([cluster])
            async with self._lock, self.db.cluster.hold("chat outbox"):
                return await self._deliver()
        except Exception as error:
            logger.opt(exception=error).warning(f"chat outbox: delivery pass failed: {error}")
            return 0

    async def _deliver(self) -> int:
        sent, after, now = 0, 0, utcnow()
        blocked: set[tuple[str, str, bool]] = set()
        while True:  # page by id: a long backlog of one recipient starves nobody else
            async with self.db.transaction() as session:
                pending = await OutgoingChats(session).pending(after, BATCH)
            for row in pending:
                key = (row.platform, row.recipient, row.is_group)
                if key in blocked:
                    continue  # an earlier message to them waits: this one may not overtake it
                if now - row.created_at > timedelta(hours=self.settings.max_age_hours):
                    await self._drop(row.id)
                    continue
                if row.next_attempt_at > now:
                    blocked.add(key)
                    continue
                if await self._send(row):
                    await self._record(row.id, None)
                    sent += 1
                else:
                    blocked.add(key)
                    await self._record(row.id, "not delivered: no bot online or sending failed")
            if len(pending) < BATCH:
                return sent
            after = pending[-1].id

    async def _send(self, row: OutgoingChat) -> bool:
        to, replies = Account(row.platform, row.recipient), [from_row(row.message)]
        try:
            if row.is_group:
                return await self.chat.send_group(to, replies)
            return await self.chat.send(to, replies)
        except Exception as error:  # a platform's bug must not stop every notice behind it
            logger.opt(exception=error).warning(f"chat outbox: sending #{row.id} raised")
            return False

    async def _record(self, message_id: int, error: str | None) -> None:
        async with self.db.transaction() as session:
            row = await OutgoingChats(session).get(message_id)
            assert row is not None
            row.attempts += 1
            if error is None:
                row.sent_at, row.last_error = utcnow(), None
                return
            row.last_error = error
            wait = min(self.settings.retry_seconds * 2 ** (row.attempts - 1),
                       self.settings.max_retry_seconds)
            row.next_attempt_at = utcnow() + timedelta(seconds=wait)

    async def _drop(self, message_id: int) -> None:
        async with self.db.transaction() as session:
            row = await OutgoingChats(session).get(message_id)
            assert row is not None
            row.dropped_at = utcnow()
            logger.error(
                f"chat outbox: #{row.id} to {row.platform}:{row.recipient} dropped after "
                f"{row.attempts} attempts over {self.settings.max_age_hours:g} h: "
                f"{_preview(row.message)}")
