"""QQ's official bot platform (nonebot-adapter-qq, webhook mode): C2C private chat, and an
answer to an @-mention in a group (bot/services/group_mentions.py).

What differs from OneBot, kept here so chat delivery and the plugins hook it in with a line:
- Events arrive as HTTP POSTs to /qq/webhook, signed with Ed25519 over the timestamp header and
  the body (a key seeded by the bot's AppSecret). ``WebhookAdapter`` checks every request
  before the adapter reads it, and answers the platform's callback-URL validation (op 13)
  only for a token shaped like the platform's: the adapter would sign any text it is sent,
  which makes it a signing oracle for forged events.
- A reply names the user's message (``msg_id``, with a ``msg_seq`` unique per message); the
  platform allows a few replies per message (``channels.py``), so a dialogue's texts are
  joined into as few messages as fit, and each picture goes as a rich-media upload
  (/v2/users/{openid}/files) captioned by the text before it.
- Attachment URLs are the platform's: fetched from public addresses only, unless the host is
  one ``[qqbot] media_hosts`` trusts (a test's local stand-in).
"""

import binascii
import json
import re
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from loguru import logger
from nonebot.adapters import Bot as BaseBot
from nonebot.adapters.qq import (
    Adapter,
    Bot,
    C2CMessageCreateEvent,
    GroupAtMessageCreateEvent,
    Message,
    MessageSegment,
)
from nonebot.adapters.qq.exception import AuditException
from nonebot.drivers import Driver, Request, Response
from nonebot.exception import ActionFailed, ApiNotAvailable, NetworkError
from yarl import URL

from bot.adapters.webhook_events import SharedEvents
from bot.config import QqBotSection
from bot.services.channels import rules_of
from bot.services.messages import Account, ImageSource, Incoming, Picture, Reply
from storage.db import DatabaseUnavailable

PLATFORM = "qqbot"
ADAPTER_NAME = Adapter.get_name()  # "QQ"
MAX_TEXT = 2000  # characters in one message; the platform does not publish its limit
_VERIFY_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")
_VERIFY_TS = re.compile(r"[0-9]{1,20}")
_SEQ_KEPT = 4096  # messages whose reply numbers are remembered
_EVENTS_KEPT = 4096  # webhook events remembered, so that one delivered again is handled once


def configure(config: Any, section: QqBotSection) -> None:
    """The adapter's settings on nonebot's ``config``: one bot, webhook mode, C2C messages.
    Set after ``nonebot.init``, which logs the options it is given at DEBUG, secret and all."""
    config.qq_bots = [{"id": section.app_id, "secret": section.secret, "use_websocket": False,
                       "intent": {"c2c_group_at_messages": True}}]
    config.qq_api_base = section.api_base
    config.qq_auth_base = section.auth_base
    config.qq_verify_webhook = True


# --- webhook signatures -------------------------------------------------------------------

def signing_key(secret: str) -> Ed25519PrivateKey:
    """The platform's key: the AppSecret repeated to a 32-byte Ed25519 seed."""
    seed = secret.encode()
    while len(seed) < 32:
        seed += seed
    return Ed25519PrivateKey.from_private_bytes(seed[:32])


def signature_valid(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    try:
        raw = binascii.unhexlify(signature)
        signing_key(secret).public_key().verify(raw, timestamp.encode() + body)
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class Refusal:
    status: int
    why: str


def webhook_refusal(secret: str, headers: dict[str, str] | Any, body: bytes) -> Refusal | None:
    """Why a webhook request may not reach the adapter; None when it may. Every event must be
    signed; the callback validation (op 13), which the documentation does not say is signed, is
    answered only for a token of the platform's shape (and refused when its signature is bad)."""
    signature = headers.get("X-Signature-Ed25519") or ""
    timestamp = headers.get("X-Signature-Timestamp") or ""
    if signature and timestamp:
        if not signature_valid(secret, timestamp, body, signature):
            return Refusal(401, "bad signature")
        signed = True
    else:
        signed = False
    try:
        payload = json.loads(body)
    except ValueError:
        return Refusal(400, "not JSON")
    if not isinstance(payload, dict):
        return Refusal(400, "not a payload")
    if payload.get("op") == 13:
        data = payload.get("d")
        if not (isinstance(data, dict) and isinstance(data.get("plain_token"), str)
                and isinstance(data.get("event_ts"), str)
                and _VERIFY_TOKEN.fullmatch(data["plain_token"])
                and _VERIFY_TS.fullmatch(data["event_ts"])):
            return Refusal(400, "callback validation of an unexpected shape")
        return None
    return None if signed else Refusal(401, "unsigned")


def event_id(body: bytes) -> str | None:
    """The id of a (checked) event, the same in the platform's retries of it."""
    payload = json.loads(body)
    return payload.get("id") if payload.get("op") == 0 else None


class WebhookAdapter(Adapter):
    """nonebot-adapter-qq with every webhook request checked first (``webhook_refusal``), an
    event the platform delivers again (its retry when the answer came late, or a replay)
    acknowledged without being handled twice, and its webhook bots connected at start (a push
    after a restart needs no incoming message)."""

    def __init__(self, driver: Driver, **kwargs: Any) -> None:
        super().__init__(driver, **kwargs)
        self._seen: OrderedDict[str, None] = OrderedDict()
        # [cluster]: the events every process took (bot/adapters/webhook_events.py), set by
        # bot/app.py at start: a retry reaching another process than the first is dropped too
        self.shared: SharedEvents | None = None

    async def _handle_http(self, request: Request) -> Response:
        by_app = {bot.id: bot.secret for bot in self.qq_config.qq_bots}
        secret = by_app.get(request.headers.get("X-Bot-Appid") or "")
        if secret is None:
            logger.warning("QQ webhook: request for an unknown AppID refused")
            return Response(403, content="unknown bot")
        body = request.content or b""
        body = body.encode() if isinstance(body, str) else body
        if refusal := webhook_refusal(secret, request.headers, body):
            logger.warning(f"QQ webhook: request refused ({refusal.why})")
            return Response(refusal.status, content=refusal.why)
        if (event := event_id(body)) is not None:
            try:
                again = event in self._seen or (
                    self.shared is not None and not await self.shared.first(PLATFORM, event))
            except DatabaseUnavailable:  # not known whether another process took it
                return Response(503, content="try again later")
            if again:
                logger.info(f"QQ webhook: event {event} delivered again, handled once")
                return Response(200)
            self._seen[event] = None
            while len(self._seen) > _EVENTS_KEPT:
                self._seen.popitem(last=False)
        return await super()._handle_http(request)

    async def startup(self) -> None:
        await super().startup()
        for info in self.qq_config.qq_bots:
            if not info.use_websocket and info.id not in self.bots:
                self.bot_connect(Bot(self, info.id, info))


# --- messages in ---------------------------------------------------------------------------

def is_private(event: object) -> bool:
    return isinstance(event, C2CMessageCreateEvent)


def is_group_mention(event: object) -> bool:
    """A message in a group that @-mentions the bot (the only group messages it is sent)."""
    return isinstance(event, GroupAtMessageCreateEvent)


def incoming(event: C2CMessageCreateEvent, media_hosts: Sequence[str]) -> Incoming:
    """The user's text, their photos (attachments) and the message's id, for replies."""
    message = event.get_message()
    text = message.extract_plain_text()
    images = tuple(
        ImageSource(url=url, public_only=not trusted(url, media_hosts))
        for segment in message if segment.type == "image" and (url := segment.data.get("url")))
    return Incoming(text=text.strip(), images=images, ref=event.id)


def trusted(url: str, media_hosts: Sequence[str]) -> bool:
    """Whether ``url``'s host is one ``[qqbot] media_hosts`` names ("host" or "host:port")."""
    parsed = URL(url)
    host = (parsed.host or "").lower()
    return host in media_hosts or f"{host}:{parsed.port}" in media_hosts


# --- messages out --------------------------------------------------------------------------

@dataclass(frozen=True)
class Outgoing:
    """One message on the platform: text, or a picture captioned by the text."""

    text: str
    picture: bytes | None = None


def batched(replies: Sequence[Reply], max_text: int = MAX_TEXT) -> list[Outgoing]:
    """The replies in as few messages as fit: texts joined by a blank line up to ``max_text``,
    each picture with the texts before it (and its own name) as its caption."""
    out: list[Outgoing] = []
    pending = ""
    for reply in replies:
        if isinstance(reply, Picture):
            caption = f"{pending}\n\n{reply.alt}" if pending else reply.alt
            if pending and len(caption) > max_text:
                out.append(Outgoing(pending))
                caption = reply.alt
            out.append(Outgoing(caption, reply.data))
            pending = ""
            continue
        for piece in _pieces(reply, max_text):
            if pending and len(pending) + 2 + len(piece) <= max_text:
                pending = f"{pending}\n\n{piece}"
            else:
                if pending:
                    out.append(Outgoing(pending))
                pending = piece
    if pending:
        out.append(Outgoing(pending))
    return out


def _pieces(text: str, max_text: int) -> list[str]:
    """``text`` cut at line ends into parts of at most ``max_text`` characters."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > max_text:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:max_text])
            line = line[max_text:]
        if current and len(current) + 1 + len(line) > max_text:
            pieces.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current or not pieces:
        pieces.append(current)
    return pieces


def message_of(outgoing: Outgoing) -> Message:
    message = Message(MessageSegment.text(outgoing.text)) if outgoing.text else Message()
    if outgoing.picture is not None:
        message.append(MessageSegment.file_image(outgoing.picture))
    return message


class ReplyNumbers:
    """The ``msg_seq`` of each reply to a user's message: the platform refuses a second reply
    with the same ``msg_id`` and ``msg_seq``, whether it is an answer in the dialogue or a
    notice the outbox sends later. Counted per process; numbered from a base drawn at random
    per process (the platform asks only that they differ), so a notice sent after a restart,
    or by another process, does not repeat a number the answer used."""

    def __init__(self, base: int | None = None) -> None:
        self._used: OrderedDict[str, int] = OrderedDict()
        self.base = secrets.randbelow(1 << 20) << 4 if base is None else base

    def used(self, msg_id: str) -> int:
        """How many replies this process sent to ``msg_id``."""
        return self._used.get(msg_id, 0)

    def next(self, msg_id: str) -> int:
        number = self._used.pop(msg_id, 0) + 1
        self._used[msg_id] = number
        while len(self._used) > _SEQ_KEPT:
            self._used.popitem(last=False)
        return self.base + number


REPLY_NUMBERS = ReplyNumbers()


def _replies_allowed() -> int:
    return rules_of(PLATFORM).replies_per_message or 1_000_000


async def send(bot: BaseBot, account: Account, replies: Sequence[Reply], *,
               reply_to: str | None = None) -> bool:
    """``replies`` to ``account``: as replies to its message ``reply_to`` while that allows
    more (what does not fit goes as proactive messages), else all proactively."""
    qq = cast(Bot, bot)
    for outgoing in batched(replies):
        if reply_to is not None and REPLY_NUMBERS.used(reply_to) < _replies_allowed():
            post = qq.send_to_c2c(openid=account.user_id, message=message_of(outgoing),
                                  msg_id=reply_to, msg_seq=REPLY_NUMBERS.next(reply_to))
        else:
            post = qq.send_to_c2c(openid=account.user_id, message=message_of(outgoing))
        if not await _posted(post, str(account)):
            return False
    return True


async def _posted(post: Awaitable[object], to: str) -> bool:
    """One message to the platform; False when it failed (one held for review is sent)."""
    try:
        await post
    except AuditException as held:  # the platform reviews it and sends it itself
        logger.info(f"message to {to} held for the platform's review ({held.audit_id})")
    except (ActionFailed, ApiNotAvailable, NetworkError) as error:
        logger.warning(f"sending to {to} failed: {error}")
        return False
    return True


async def push(bot: BaseBot, account: Account, replies: Sequence[Reply]) -> bool:
    """A proactive message (no ``msg_id``): counted against the user's monthly allowance."""
    return await send(bot, account, replies)


async def reply(bot: BaseBot, event: C2CMessageCreateEvent, replies: Sequence[Reply]) -> None:
    """The answer to the user's message ``event`` (a failure is logged by ``send``)."""
    await send(bot, Account(PLATFORM, event.get_user_id()), replies, reply_to=event.id)


async def reply_group(bot: BaseBot, event: GroupAtMessageCreateEvent,
                      replies: Sequence[str]) -> None:
    """Texts answering a mention in a group, each a reply to it (a group message without
    ``msg_id`` is a proactive one, which the platform allows only sparingly)."""
    qq = cast(Bot, bot)
    for outgoing in batched(replies):
        if REPLY_NUMBERS.used(event.id) >= _replies_allowed():
            return
        post = qq.send_to_group(group_openid=event.group_openid, message=message_of(outgoing),
                                msg_id=event.id, msg_seq=REPLY_NUMBERS.next(event.id))
        if not await _posted(post, "a group"):
            return
