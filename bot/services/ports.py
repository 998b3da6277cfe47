"""What the services need from the world outside, as interfaces: the adapters in
``bot/adapters/`` implement them and ``bot/runtime.py`` hands them in. A service never imports
an adapter, so each can be replaced (a recorder in tests, another chat platform, another store)
without touching a use case."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.messages import Account, ImageSource, MailAttachment, Reply


class NoticeMail(StrEnum):
    """A chat notice's mail (``outgoing_chat.mail``): whether the outbox may mail it when no
    chat path is open."""

    MAY = "may"  # not mailed with its change: mailed if it has to be held
    SENT = "sent"  # mailed (with its change, or when held)
    NEVER = "never"  # never mailed (an initial PIN)


class FetchError(Exception):
    """An image could not be fetched; ``str(error)`` is shown to the applicant."""


class ImageFetching(Protocol):
    """Downloads a chat image (``bot/adapters/fetch.py``)."""

    async def fetch(self, source: ImageSource) -> bytes:
        """The image's bytes; raises ``FetchError`` saying what went wrong."""
        ...


class ScanStorage(Protocol):
    """Scans kept by their SHA-256 (``bot/adapters/scan_store.py``). Blocking file I/O: call
    from a worker thread where the loop must not wait."""

    def save(self, sha256: str, data: bytes) -> Path: ...

    def write(self, sha256: str, data: bytes) -> list[Path]: ...

    def sync_directories(self, directories: Iterable[Path]) -> None: ...

    def read(self, sha256: str) -> bytes: ...

    def discard(self, sha256: str) -> None: ...


class MailQueue(Protocol):
    """Outgoing e-mail queued in the database with the change it reports
    (``bot/adapters/mail.py``)."""

    @property
    def enabled(self) -> bool: ...

    async def enqueue(self, session: AsyncSession, to: str, subject: str, body: str, *,
                      order_id: int | None = None,
                      headers: dict[str, str] | None = None,
                      attachments: Sequence[MailAttachment] = ()) -> None:
        """Queue a mail inside the caller's transaction; call ``wake`` after it commits.
        ``attachments`` are read from the scan store when the mail is sent."""
        ...

    def wake(self) -> None: ...


class ChatChannel(Protocol):
    """Delivers replies to a person or a group (``bot/adapters/chat_delivery.py``)."""

    async def send(self, account: Account, replies: Sequence[Reply], *,
                   reply_to: str | None = None) -> bool:
        """Inside the channel's reply window (always, on an always-open channel); ``reply_to``
        is the user's last message id where the platform ties a reply to it (QQ's passive
        reply)."""
        ...

    async def push(self, account: Account, replies: Sequence[Reply]) -> bool:
        """Outside the reply window: QQ's proactive message, WeChat's template message (a
        summary telling them to open the chat). False when the platform refuses it or it is
        not set up."""
        ...

    async def send_group(self, group: Account, replies: Sequence[Reply]) -> bool: ...

    def connected(self) -> Mapping[str, int]:
        """How many bots each platform ("qq", "console") has connected now (for health)."""
        ...


class ChatQueue(Protocol):
    """Chat notices queued in the database with the change they report, delivered in order per
    recipient and retried while the platform is offline (``bot/adapters/chat_outbox.py``)."""

    def enqueue(self, session: AsyncSession, to: Account, replies: Sequence[Reply], *,
                group: bool = False, order_id: int | None = None,
                mail: NoticeMail = NoticeMail.MAY) -> None:
        """Queue inside the caller's transaction; call ``deliver`` after it commits. ``mail``:
        whether the notice went by mail with its change, or must never (the outbox mails a
        notice it has to hold, unless so)."""
        ...

    async def recheck_held(self, accounts: Sequence[Account]) -> None:
        """What was held for these accounts is looked at again now (a path may have opened:
        the accounts were just joined)."""
        ...

    async def with_held(self, account: Account, ref: str | None,
                        answer: Sequence[Reply]) -> list[Reply]:
        """The answer to a user's message, after the notices held for them (no path was open:
        「您有 N 条新通知：……」, one message); records the message where the channel counts its
        reply window from. Never raises: the answer alone when the database fails."""
        ...

    async def deliver(self) -> int:
        """Send what is due now (never raises; the outbox's worker retries)."""
        ...


@dataclass
class MailboxProgress:
    """What the unlock mailbox's poller last achieved, kept up to date by the poller
    (``bot/adapters/mailbox.py``) and read by the health check. Times are UTC."""

    last_success_at: datetime | None = None  # the end of the last poll that read every new mail
    last_filed_at: datetime | None = None  # the last mail filed (a long poll is alive)
    last_failure_at: datetime | None = None
    last_error: str | None = None  # the last failure's kind (e.g. ConnectionRefusedError)
    waiting: int | None = None  # new mails seen in the folder and not yet filed; None: unknown
