"""The chat outbox: notices (approvals, payment QR codes, rejections, staff notices) are written
in the transaction of the change they report and delivered from here, like mail: retried while
the platform's bot is offline, each once, in order per recipient, dropped to the log only after
``[chat] max_age_hours``.

Delivery is at least once: a message is marked sent after the platform accepted it, so a crash
between the two sends it again at the next start (the one case of a repeat).

Each notice goes by the best path its channel's rules (bot/services/channels.py) leave open
now, among the person's joined accounts: an always-open channel; a reply inside the window of
their last message, while replies are left; a push (QQ's proactive message, WeChat's template
message) while this month's allowance lasts. When none is open the notice is **held**: mailed
at once where the person gave an address, and handed over with the answer to their next
message (``with_held``: 「您有 N 条新通知：……」, at most once: marked delivered with the
answer), or dropped after ``[chat] held_days``. A held notice is looked at again when a new
month brings new pushes.
"""

import asyncio
import base64
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.periodic import Periodic
from bot.config import ChatSection
from bot.domain.masking import mask_personal_numbers
from bot.services.channels import (
    BY_PLATFORM,
    WAITING,
    ChannelRules,
    Delivery,
    OpenPath,
    Standing,
    may_push_later,
    month_of,
    next_month,
    open_paths,
    path_of,
    rules_in,
)
from bot.services.messages import Account, Picture, Reply
from bot.services.ports import ChatChannel, MailQueue, NoticeMail
from storage.batching import Batcher
from storage.db import Database, outages
from storage.models import OutgoingChat, utcnow
from storage.repositories import ChatReaches, Handlers, OutgoingChats, accounts_of
from storage.repositories.chat_reach import MessageRow, record_messages

BATCH = 100
HELD_MAIL_SUBJECT = "CA 数字证书服务：您有一条新通知"


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
    def __init__(self, db: Database, settings: ChatSection, chat: ChatChannel,
                 mail: MailQueue | None = None,
                 rules: Mapping[str, ChannelRules] = BY_PLATFORM) -> None:
        self.db = db
        self.settings = settings
        self.chat = chat
        self.mail = mail  # a held notice is mailed at once through it (None: never)
        self.rules = rules  # the channels' rules, with bot.toml's [channels] terms
        self._lock = asyncio.Lock()  # one delivery pass at a time: a message is sent once
        self._worker = Periodic("chat outbox", self.deliver, settings.retry_seconds)
        # users' messages on windowed channels, recorded in group commits (storage/batching.py)
        self._messages: Batcher[MessageRow, None] = Batcher("chat reach", self._record_messages)

    def enqueue(self, session: AsyncSession, to: Account, replies: Sequence[Reply], *,
                group: bool = False, order_id: int | None = None,
                mail: NoticeMail = NoticeMail.MAY) -> None:
        """Queue inside the caller's transaction, one row per message (a picture after its
        text is its own row: a retry never repeats the text); ``deliver`` after the commit."""
        repository = OutgoingChats(session)
        for n, reply in enumerate(replies):
            # a later text of the same notice (the menu after 绑定已核验) is no notice of its own
            message = to_row(reply) | ({"follows": True} if n and isinstance(reply, str) else {})
            repository.add(OutgoingChat(platform=to.platform, recipient=to.user_id,
                                        is_group=group, message=message,
                                        order_id=order_id, mail=mail.value))

    def _rules(self, platform: str) -> ChannelRules:
        return rules_in(self.rules, platform)

    async def with_held(self, account: Account, ref: str | None,
                        answer: Sequence[Reply]) -> list[Reply]:
        """The answer to the user's message, after what was held for them; on a windowed
        channel the message is recorded (one upsert) with the replies it is answered with.
        An always-open channel costs nothing here."""
        if self._rules(account.platform).always_open:
            return list(answer)
        now = utcnow()
        try:
            async with self.db.transaction() as session:  # mostly a read: is anything held?
                accounts = await accounts_of(session, account)
                held = await OutgoingChats(session).held_for(
                    [(a.platform, a.user_id) for a in accounts])
                for row in held:  # delivered with this answer: at most once, never twice
                    row.path = path_of(Delivery.NEXT, account.platform, row.platform)
                    row.sent_at, row.last_error, row.attempts = now, None, row.attempts + 1
                first = held_digest(held)
                if held:  # recorded with what it hands over
                    await ChatReaches(session).message(account.platform, account.user_id, now,
                                                       ref, len(first) + len(answer))
            if not held:  # the usual case: one upsert, committed with other accounts' ones
                await self._messages.submit((account.platform, account.user_id, now, ref,
                                             len(answer)))
        except Exception as error:  # the answer goes out regardless; held notices keep waiting
            logger.opt(exception=error).warning(
                f"chat outbox: {account}'s message not recorded: {error}")
            return list(answer)
        if held:
            logger.info(f"chat outbox: {len(held)} held message(s) delivered to {account} "
                        "with the answer to their message")
            self._worker.wake()  # what was queued behind them may go now
        return [*first, *answer]

    async def recheck_held(self, accounts: Sequence[Account]) -> None:
        """What was held for these accounts is looked at again now: a path may have opened
        (the accounts were joined with an always-open one). Never raises: they still come with
        the next message."""
        try:
            async with self.db.transaction() as session:
                await OutgoingChats(session).recheck_held(
                    [(a.platform, a.user_id) for a in accounts], utcnow())
        except Exception as error:
            logger.warning(f"chat outbox: held notices not looked at again: {error}")
            return
        self._worker.wake()

    def start(self) -> None:
        self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()
        await self._messages.close()

    @property
    def message_batches(self) -> int:
        """Commits that recorded users' messages (the tests' view of the group commit)."""
        return self._messages.batches

    async def _record_messages(self, rows: list[MessageRow]) -> list[None]:
        latest = {(row[0], row[1]): row for row in rows}  # one statement touches a row once
        connection = await self.db.connect()
        try:
            async with outages(), connection.begin():
                await record_messages(connection, list(latest.values()))
        finally:
            await connection.close()
        return [None] * len(rows)

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
        blocked: set[tuple[str, str, bool]] = set()  # an earlier message waits for a retry
        holding: set[tuple[str, str, bool]] = set()  # an earlier message is held
        max_age = timedelta(hours=self.settings.max_age_hours)
        held_age = timedelta(days=self.settings.held_days)
        while True:  # page by id: a long backlog of one recipient starves nobody else
            async with self.db.transaction() as session:
                pending = await OutgoingChats(session).pending(after, BATCH)
            for row in pending:
                key = (row.platform, row.recipient, row.is_group)
                if key in blocked:
                    continue  # an earlier message to them waits: this one may not overtake it
                held = row.path in WAITING
                if now - row.created_at > (held_age if held else max_age):
                    await self._drop(row.id)
                    continue
                if row.next_attempt_at > now:
                    (holding if held else blocked).add(key)
                    continue
                if key in holding:  # may not overtake a held one: waits with it (reminded)
                    reminder = await self._send(row, now, reminder_only=True)
                    await self._hold(row, now, reminder if isinstance(reminder, OpenPath)
                                     else None)
                    continue
                outcome = await self._send(row, now)
                if isinstance(outcome, OpenPath) and outcome.delivery is not Delivery.SUMMARY:
                    await self._record(row.id, None, outcome)
                    sent += 1
                elif outcome is None or isinstance(outcome, OpenPath):  # held, maybe told so
                    holding.add(key)
                    await self._hold(row, now, outcome)
                else:
                    blocked.add(key)
                    await self._record(row.id, "not delivered: no bot online or sending failed")
            if len(pending) < BATCH:
                return sent
            after = pending[-1].id

    async def _paths(self, row: OutgoingChat, now: datetime) -> list[OpenPath]:
        """The paths open to the person now, best first."""
        recipient = Account(row.platform, row.recipient)
        if self._rules(row.platform).always_open:  # the best path there is: nothing to read
            return [OpenPath(recipient, Delivery.OPEN)]
        async with self.db.transaction() as session:
            accounts = await accounts_of(session, recipient)
            windowed = [(a.platform, a.user_id) for a in accounts
                        if not self._rules(a.platform).always_open]
            reaches = await ChatReaches(session).of(windowed) if windowed else []
        month = month_of(now)
        standing = {Account(r.platform, r.user_id): Standing(
            r.last_message_at, r.last_ref, r.replies_used,
            r.pushes_used if r.push_month == month else 0) for r in reaches}
        return open_paths(accounts, standing, self.rules, now)

    async def _send(self, row: OutgoingChat, now: datetime,
                    reminder_only: bool = False) -> OpenPath | bool | None:
        """The path it went by (SUMMARY: a push told them it waits: hold it); None: no path
        open (hold it); False: sending failed (retry). ``reminder_only``: nothing but a summary
        push (it waits behind a held one)."""
        replies = [from_row(row.message)]
        try:
            if row.is_group:
                group = Account(row.platform, row.recipient)
                return OpenPath(group, Delivery.OPEN) if await self.chat.send_group(
                    group, replies) else False
            for path in await self._paths(row, now):
                if reminder_only and not (path.delivery is Delivery.PUSH and self._rules(
                        path.account.platform).push_summary):
                    continue
                if path.delivery is Delivery.PUSH:
                    summary = self._rules(path.account.platform).push_summary
                    if summary and (row.path == Delivery.SUMMARY or "text" not in row.message):
                        continue  # told already (a picture: by its text's push)
                    if await self.chat.push(path.account, replies):
                        return replace(path, delivery=Delivery.SUMMARY) if summary else path
                    continue  # refused or not set up: the next path, else held
                if await self.chat.send(path.account, replies, reply_to=path.reply_to):
                    return path
                return False  # the platform is offline: retried, the window looked at again
            return None
        except Exception as error:  # a platform's bug must not stop every notice behind it
            logger.opt(exception=error).warning(f"chat outbox: sending #{row.id} raised")
            return False

    async def _hold(self, row: OutgoingChat, now: datetime,
                    pushed: OpenPath | None = None) -> None:
        """No path can carry it: wait for their next message (or a new month's pushes), and go
        by mail at once where they gave an address. ``pushed``: a summary push told them."""
        mailed = False
        async with self.db.transaction() as session:
            held = await OutgoingChats(session).get(row.id)
            assert held is not None
            accounts = await accounts_of(session, Account(row.platform, row.recipient))
            first_time = held.path not in WAITING
            summary = pushed is not None or held.path == Delivery.SUMMARY
            held.path = (Delivery.SUMMARY if summary else Delivery.HELD).value
            held.last_error = None
            if pushed is not None:
                await self._count(session, pushed, now)
            held.next_attempt_at = (
                next_month(now) if not summary and may_push_later(accounts, self.rules)
                else held.created_at + timedelta(days=self.settings.held_days))
            if (held.mail == NoticeMail.MAY and "text" in held.message  # not a QR code alone
                    and not held.message.get("follows")  # mailed with the notice's first text
                    and self.mail is not None and self.mail.enabled):
                mailed = await self._mail_held(session, held, accounts)
        if first_time:
            logger.info(f"chat outbox: #{row.id} to {row.platform}:{row.recipient} held for "
                        f"their next message{', mailed' if mailed else ''}: "
                        f"{_preview(row.message)}")
        if mailed:
            assert self.mail is not None
            self.mail.wake()

    async def _mail_held(self, session: AsyncSession, row: OutgoingChat,
                         accounts: Sequence[Account]) -> bool:
        """The held notice's text to the person's addresses; whether any was queued."""
        assert self.mail is not None
        handlers = [await Handlers(session).get(a.platform, a.user_id) for a in accounts]
        addresses = sorted({h.email for h in handlers if h is not None and h.email})
        if not addresses:
            return False
        channel = self._rules(row.platform).name
        body = (f"{row.message['text']}\n\n（这条通知暂时无法在{channel}中发给您：平台只允许在"
                f"您发消息后的一段时间内回复。您下次在{channel}给我们发消息时，它会一并发给您。）")
        for address in addresses:
            await self.mail.enqueue(session, address, HELD_MAIL_SUBJECT, body,
                                    order_id=row.order_id)
        row.mail = NoticeMail.SENT.value
        return True

    async def _record(self, message_id: int, error: str | None,
                      path: OpenPath | None = None) -> None:
        async with self.db.transaction() as session:
            row = await OutgoingChats(session).get(message_id)
            assert row is not None
            row.attempts += 1
            if error is None:
                row.sent_at, row.last_error = utcnow(), None
                if path is not None:
                    row.path = path_of(path.delivery, path.account.platform, row.platform)
                    await self._count(session, path, row.sent_at)
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
            why = (f"held {self.settings.held_days:g} days for their next message"
                   if row.path in WAITING else
                   f"{row.attempts} attempts over {self.settings.max_age_hours:g} h")
            mailed = " (mailed)" if row.mail == NoticeMail.SENT else ""
            logger.error(
                f"chat outbox: #{row.id} to {row.platform}:{row.recipient} dropped after "
                f"{why}{mailed}: {_preview(row.message)}")

    async def _count(self, session: AsyncSession, path: OpenPath, at: datetime) -> None:
        """A reply or a push used up, where the platform counts them."""
        account = path.account
        if path.delivery is Delivery.REPLY:
            await ChatReaches(session).count_reply(account.platform, account.user_id)
        elif path.delivery in (Delivery.PUSH, Delivery.SUMMARY):
            await ChatReaches(session).count_push(account.platform, account.user_id,
                                                  month_of(at))


def held_digest(held: Sequence[OutgoingChat]) -> list[Reply]:
    """Held notices as one message, numbered in order (「您有 2 条新通知：……」), their pictures
    (a payment QR code) after it."""
    texts: list[str] = []
    for row in held:
        if "text" not in row.message:
            continue
        if row.message.get("follows") and texts:
            texts[-1] += "\n" + str(row.message["text"])
        else:
            texts.append(str(row.message["text"]))
    pictures = [from_row(row.message) for row in held if "image" in row.message]
    if not texts:
        return pictures
    numbered = "\n".join(f"{i}. {text}" for i, text in enumerate(texts, 1))
    return [f"您有 {len(texts)} 条新通知：\n{numbered}", *pictures]
