"""Health at a glance: is each part the bot depends on working? One check, rendered three ways:
``/healthz`` (JSON) and ``/metrics`` (Prometheus) by plugins/health, ``状态`` in the technicians'
chat. Figures only: counts, times and states, never a person, an address or an order.

The overall status: ``down`` (HTTP 503) when the bot cannot serve anyone (database unreachable,
or no chat channel connected at all); ``degraded`` when a part is failing (a channel
disconnected, the mailbox not read for three poll intervals, an outbox late, the CRL expired);
``ok`` otherwise.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from loguru import logger
from sqlalchemy.exc import SQLAlchemyError

from bot.config import Settings
from bot.domain.text import duration
from bot.key_agent.protocol import HALL
from bot.services.agents.hub import AgentHub
from bot.services.ports import ChatChannel, MailboxProgress
from storage.db import Database, DatabaseUnavailable
from storage.models import utcnow
from storage.repositories import Crls, OutgoingChats, OutgoingMails

DATABASE_TIMEOUT = 2.0  # seconds: a health check must answer while the database hangs
STALE_POLLS = 3  # the mailbox is stale after this many poll intervals without progress
OUTBOX_LATE = timedelta(minutes=15)  # an outbox whose oldest item waited longer is late
# [bot] adapters → chat platforms
PLATFORM_NAMES = {"onebot": "qq", "console": "console", "qqbot": "qqbot", "wechat": "wechat"}
PLATFORM_LABELS = {"qq": "QQ", "console": "终端", "qqbot": "QQ 官方机器人", "wechat": "微信公众号"}


class Status(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


STATUS_LABELS = {Status.OK: "正常", Status.DEGRADED: "部分异常", Status.DOWN: "无法服务"}


def _ago(seconds: float) -> str:
    return "刚刚" if seconds < 60 else f"{duration(seconds)}前"


def _span(seconds: float) -> str:
    return f"{seconds:g} 秒" if seconds < 60 else duration(seconds)


@dataclass(frozen=True)
class MailboxHealth:
    last_success_at: datetime | None
    last_error: str | None  # the kind of the last failure since the last success
    waiting: int | None  # new mails seen and not yet filed; None: not yet looked
    fresh: bool
    stale_after_seconds: float


@dataclass(frozen=True)
class OutboxHealth:
    waiting: int
    oldest_at: datetime | None

    def late(self, now: datetime) -> bool:
        return self.oldest_at is not None and now - self.oldest_at > OUTBOX_LATE


@dataclass(frozen=True)
class AgentsHealth:
    online: int
    hall_online: bool


@dataclass(frozen=True)
class CrlHealth:
    number: int
    issued_at: datetime
    next_update: datetime


@dataclass(frozen=True)
class HealthReport:
    checked_at: datetime
    database: bool  # reachable
    database_seconds: float | None  # how long SELECT 1 took
    channels: dict[str, int]  # each configured platform: bots connected
    mailbox: MailboxHealth | None  # None: [mailbox] is off
    mail_outbox: OutboxHealth | None  # None: unknown (database unreachable)
    chat_outbox: OutboxHealth | None
    agents: AgentsHealth | None  # None: [agents] is off
    crl: CrlHealth | None  # None: [pki] off, none signed yet, or unknown
    pki: bool
    problems: tuple[str, ...]
    status: Status

    def as_json(self) -> dict[str, Any]:
        """The body of /healthz."""
        now = self.checked_at

        def at(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat(timespec="seconds")

        def age(moment: datetime | None) -> float | None:
            return None if moment is None else round((now - moment).total_seconds(), 1)

        def outbox(box: OutboxHealth | None) -> dict[str, Any] | None:
            return None if box is None else {
                "waiting": box.waiting, "oldest_seconds": age(box.oldest_at),
                "late": box.late(now)}

        mailbox = self.mailbox
        return {
            "status": self.status.value,
            "checked_at": at(now),
            "problems": list(self.problems),
            "database": {"reachable": self.database, "seconds": self.database_seconds},
            "chat": {platform: {"connected": count > 0, "bots": count}
                     for platform, count in self.channels.items()},
            "mailbox": None if mailbox is None else {
                "fresh": mailbox.fresh, "last_success_at": at(mailbox.last_success_at),
                "last_success_seconds": age(mailbox.last_success_at),
                "stale_after_seconds": mailbox.stale_after_seconds,
                "last_error": mailbox.last_error, "waiting": mailbox.waiting},
            "mail_outbox": outbox(self.mail_outbox),
            "chat_outbox": outbox(self.chat_outbox),
            "agents": None if self.agents is None else {
                "online": self.agents.online, "hall_online": self.agents.hall_online},
            "crl": None if self.crl is None else {
                "number": self.crl.number, "issued_at": at(self.crl.issued_at),
                "age_seconds": age(self.crl.issued_at), "next_update": at(self.crl.next_update),
                "expired": now > self.crl.next_update},
        }

    def summary(self, tz: ZoneInfo) -> str:
        """What 状态 tells a technician, in Chinese."""
        now = self.checked_at
        lines = [f"运行状况：{STATUS_LABELS[self.status]}",
                 f"数据库：{'正常' if self.database else '无法连接'}"]
        for platform, count in self.channels.items():
            label = PLATFORM_LABELS.get(platform, platform)
            lines.append(f"{label}：{'已连接' if count else '未连接'}")
        if (mailbox := self.mailbox) is not None:
            read = ("尚未成功收信" if mailbox.last_success_at is None
                    else f"{_ago((now - mailbox.last_success_at).total_seconds())}收信成功")
            if not mailbox.fresh:
                read += (f"（已超过 {_span(mailbox.stale_after_seconds)}没有收信，请检查邮箱"
                         "服务器和密码）")
            waiting = "未知" if mailbox.waiting is None else f"{mailbox.waiting} 封"
            lines.append(f"邮箱：{read}，待处理 {waiting}")
        lines.append(self._outbox_line("邮件发送", self.mail_outbox, "封"))
        lines.append(self._outbox_line("聊天通知", self.chat_outbox, "条"))
        if self.agents is not None:
            hall = "在线" if self.agents.hall_online else "离线"
            lines.append(f"密钥代理：在线 {self.agents.online} 个（服务大厅：{hall}）")
        if self.pki:
            lines.append(self._crl_line(tz))
        return "\n".join(lines)

    def _outbox_line(self, label: str, box: OutboxHealth | None, unit: str) -> str:
        if box is None:
            return f"{label}：未知"
        if not box.waiting or box.oldest_at is None:
            return f"{label}：没有积压"
        waited = duration((self.checked_at - box.oldest_at).total_seconds())
        late = "，已超时" if box.late(self.checked_at) else ""
        return f"{label}：待发 {box.waiting} {unit}，最早的已等待 {waited}{late}"

    def _crl_line(self, tz: ZoneInfo) -> str:
        crl = self.crl
        if crl is None:
            return "吊销列表：未知" if not self.database else "吊销列表：尚未签发"
        issued = _ago((self.checked_at - crl.issued_at).total_seconds())
        next_update = crl.next_update.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        expired = "，已过期！" if self.checked_at > crl.next_update else ""
        return f"吊销列表：第 {crl.number} 号，{issued}签发，下次更新 {next_update}{expired}"


@dataclass(frozen=True)
class _Stored:
    """What the database says (None where it did not answer)."""

    seconds: float | None = None
    mail: OutboxHealth | None = None
    chat: OutboxHealth | None = None
    crl: CrlHealth | None = None


class Health:
    """Checks the parts of the running bot; cheap enough to run on every request."""

    def __init__(self, settings: Settings, db: Database, chat: ChatChannel,
                 mailbox: MailboxProgress, hub: AgentHub,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.db = db
        self.chat = chat
        self.mailbox = mailbox
        self.hub = hub
        self.clock = clock
        self.started_at = clock()  # the mailbox is not stale before its first poll had time

    async def check(self) -> HealthReport:
        now = self.clock()
        stored = await self._stored()
        connected = self.chat.connected()
        channels = {PLATFORM_NAMES[a]: connected.get(PLATFORM_NAMES[a], 0)
                    for a in self.settings.bot.adapters}
        mailbox = self._mailbox(now) if self.settings.mailbox.enabled else None
        agents = None
        if self.settings.agents.enabled:
            # the agents connected here; the hall's anywhere ([cluster]: another process's too)
            agents = AgentsHealth(len(self.hub.online), self.hub.company_online(HALL))
        problems = []
        if stored.seconds is None:
            problems.append("database unreachable")
        problems += [f"{platform} disconnected" for platform, n in channels.items() if not n]
        if mailbox is not None and not mailbox.fresh:
            problems.append("mailbox stale")
        for name, box in (("mail outbox", stored.mail), ("chat outbox", stored.chat)):
            if box is not None and box.late(now):
                problems.append(f"{name} late")
        if stored.crl is not None and now > stored.crl.next_update:
            problems.append("crl expired")
        down = stored.seconds is None or (channels and not any(channels.values()))
        status = Status.DOWN if down else Status.DEGRADED if problems else Status.OK
        return HealthReport(now, stored.seconds is not None, stored.seconds, channels, mailbox,
                            stored.mail, stored.chat, agents, stored.crl,
                            self.settings.pki.enabled, tuple(problems), status)

    async def _stored(self) -> _Stored:
        try:
            async with asyncio.timeout(DATABASE_TIMEOUT):
                started = time.monotonic()
                await self.db.ping()
                seconds = round(time.monotonic() - started, 4)
                async with self.db.transaction() as session:
                    mail = OutboxHealth(*await OutgoingMails(session).backlog())
                    chat = OutboxHealth(*await OutgoingChats(session).backlog())
                    newest = await Crls(session).newest() if self.settings.pki.enabled else None
        except (DatabaseUnavailable, SQLAlchemyError, OSError, TimeoutError) as error:
            logger.warning(f"health check: database unreachable ({type(error).__name__})")
            return _Stored()
        crl = None if newest is None else CrlHealth(newest.number, newest.issued_at,
                                                    newest.next_update)
        return _Stored(seconds, mail, chat, crl)

    def _mailbox(self, now: datetime) -> MailboxHealth:
        progress = self.mailbox
        stale_after = STALE_POLLS * self.settings.mailbox.poll_seconds
        alive = max(t for t in (progress.last_success_at, progress.last_filed_at,
                                self.started_at) if t is not None)
        return MailboxHealth(progress.last_success_at, progress.last_error, progress.waiting,
                             (now - alive).total_seconds() <= stale_after, stale_after)
