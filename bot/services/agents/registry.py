"""Key agents on the bot's side: one-time pairing codes, the registry, revocation.

A pairing code is short (8 characters without look-alikes), lives for minutes, is stored only
as its SHA-256, and can be used once (one conditional UPDATE claims it, on every database).
Wrong codes are counted per remote address: after ``WRONG_CODES`` within ``WRONG_CODE_WINDOW``
the address is refused until the oldest falls out of the window. Pairing binds the agent's
public keys to the company of the handler who asked for the code; one company may have several
agents.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.key_agent.protocol import HALL, BotKey, unb64
from bot.pki.store import publish_once
from bot.services.notify import CompanyNotice, Notifier, company_notice
from bot.services.one_time_codes import (
    WRONG_TRIES,
    WRONG_TRY_WINDOW,
    WrongTries,
    code_hash,
    new_code,
)
from storage.db import Database
from storage.models import Agent, Handler, PairingCode, utcnow
from storage.repositories import Agents, Handlers, PairingCodes

WRONG_CODES = WRONG_TRIES  # wrong pairing codes allowed per address ...
WRONG_CODE_WINDOW = WRONG_TRY_WINDOW  # ... within this many seconds


class AgentRefused(Exception):
    """``code`` for logs, ``str`` for the person (Chinese)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Paired:
    agent_id: int
    company: str  # USCC
    bot_public: str


class WrongCodes(WrongTries):
    """Wrong pairing codes per remote address."""

    def check(self, address: str) -> None:
        """Refuses an address that has used up its wrong tries."""
        if self.used_up(address):
            minutes = round(self.window / 60)
            raise AgentRefused("too_many_attempts",
                               f"本机所在网络输错绑定码的次数过多，请 {minutes} 分钟后再试；"
                               "如绑定码已过期，请在聊天中重新发送「绑定密钥代理」。")


BOT_KEY_NAME = "bot-signing-key.raw"


def load_bot_key(data_dir: Path) -> BotKey:
    """The bot's signing key: made on first start, kept owner-readable in the data directory."""
    path = data_dir / BOT_KEY_NAME
    if not path.exists():  # two processes starting at once ([cluster]): the first one's key
        key = BotKey.generate()
        publish_once(path, key.key.private_bytes(Encoding.Raw, PrivateFormat.Raw,
                                                 NoEncryption()), mode=0o600)
    return BotKey(Ed25519PrivateKey.from_private_bytes(path.read_bytes()))


def agent_company(agent: Agent) -> str:
    """What the agent serves, as its jobs name it: a USCC, or HALL."""
    return HALL if agent.hall or agent.company is None else agent.company.uscc


def agent_owner(agent: Agent) -> str:
    """Who the agent serves, for people."""
    return "服务大厅（制证）" if agent.hall or agent.company is None else agent.company.name


class AgentRegistry:
    def __init__(self, settings: Settings, db: Database, bot_key: BotKey,
                 notifier: Notifier) -> None:
        self.settings = settings
        self.db = db
        self.bot_key = bot_key
        self.notifier = notifier
        self.wrong_codes = WrongCodes()
        self._telling: set[asyncio.Task[None]] = set()  # chat notices going out after pairing

    async def new_code(self, handler: Handler | None, requested_by: str) -> tuple[str, datetime]:
        """A code for an agent of the handler's company; without a handler (a technician's
        绑定制证代理), for the service hall's agent, which makes UKEYs for every company."""
        code = new_code()
        expires = utcnow() + timedelta(minutes=self.settings.agents.pairing_code_minutes)
        async with self.db.transaction() as session:
            session.add(PairingCode(code_hash=code_hash(code),
                                    company_id=handler.company_id if handler else None,
                                    hall=handler is None, requested_by=requested_by,
                                    expires_at=expires))
        return code, expires

    async def pair(self, code: str, identity: str, sealing: str,
                   address: str | None = None) -> Paired:
        """Pair an agent with a one-time code; ``address`` (the caller's) counts wrong codes."""
        if address is not None:
            self.wrong_codes.check(address)
        try:
            if len(unb64(identity)) != 32 or len(unb64(sealing)) != 32:
                raise ValueError
        except ValueError:
            raise AgentRefused("bad_keys", "公钥格式不正确") from None
        async with self.db.transaction() as session:
            row = await PairingCodes(session).claim(code_hash(code), utcnow())
            if row is None:
                logger.warning("agent pairing refused: unknown, used or expired code")
                if address is not None:
                    self.wrong_codes.wrong(address)
                raise AgentRefused("bad_code", "绑定码无效、已使用或已过期，"
                                   "请在聊天中重新发送「绑定密钥代理」。")
            agents = Agents(session)
            if await agents.by_identity(identity):  # the claim is rolled back with the refusal
                raise AgentRefused("already_paired", "这个密钥代理已经绑定过了。")
            agent = await agents.add(Agent(
                company_id=row.company_id, hall=row.hall, identity_key=identity,
                sealing_key=sealing, paired_by=row.requested_by))
            paired = Paired(agent.id, agent_company(agent), self.bot_key.public())
            told: Sequence[Handler] = ()
            notice = None
            if agent.company is not None:  # the hall's agent serves no one company
                told = await Handlers(session).verified_of(agent.company.id)
                notice = company_notice(CompanyNotice.AGENT_PAIRED, self.settings,
                                        company=agent.company.name, agent=str(agent.id),
                                        who=agent.paired_by)
                await self.notifier.notify_handlers(session, told, notice)
        logger.info(f"agent #{paired.agent_id} paired for {paired.company}")
        if notice is not None:
            # the agent's HTTP answer does not wait for the chat (which may be slow or down)
            task = asyncio.create_task(self.notifier.deliver())
            self._telling.add(task)
            task.add_done_callback(self._telling.discard)
        return paired

    async def notices_sent(self) -> None:
        """Wait for the chat notices of pairings still going out."""
        await asyncio.gather(*self._telling)

    async def of_company(self, company_id: int | None = None) -> Sequence[Agent]:
        async with self.db.transaction() as session:
            return await Agents(session).listed(company_id)

    async def revoke(self, agent_id: int, actor: str) -> Agent:
        async with self.db.transaction() as session:
            agent = await Agents(session).get(agent_id)
            if agent is None:
                raise AgentRefused("unknown_agent", f"没有编号为 {agent_id} 的密钥代理。")
            _revoke(agent, actor)
            return agent

    async def revoke_paired_by(self, session: AsyncSession, account: str, company_id: int,
                               actor: str) -> list[Agent]:
        """In the caller's transaction (a 解绑): the company's agents ``account`` paired are
        revoked, and its unused codes withdrawn. Cut the returned ones off after the commit."""
        now = utcnow()
        await PairingCodes(session).withdraw(account, now)
        revoked = [a for a in await Agents(session).paired_by(account)
                   if a.company_id == company_id and a.revoked_at is None]
        for agent in revoked:
            _revoke(agent, actor)
        return revoked


def _revoke(agent: Agent, actor: str) -> None:
    if agent.revoked_at is None:
        agent.revoked_at, agent.revoked_by = utcnow(), actor
    logger.warning(f"agent #{agent.id} revoked by {actor}")
