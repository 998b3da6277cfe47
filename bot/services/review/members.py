"""A company's chat accounts, for technicians: 成员 lists them with their state, 解绑 removes one.

A removed account (``HandlerStatus.REMOVED``) counts as not bound: it acts for no company. Its
form in progress is dropped, the agents it paired for the company are revoked (and cut off), its
unused pairing codes withdrawn; it and the company's verified handlers are told.

One person, several channels: 解绑 of the account that bound removes the person, so every account
joined to it too (each one's form dropped, agents revoked, each told; its join codes withdrawn).
解绑 of a joined account detaches that account alone (a channel the person did not join, or no
longer uses): the person and its other accounts keep their binding and are told.
"""

from collections.abc import Sequence
from datetime import datetime

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.masking import mask_account
from bot.domain.review import ReviewRefused
from bot.domain.trust import HandlerStatus
from bot.services.agents.hub import AgentHub
from bot.services.agents.registry import AgentRegistry
from bot.services.messages import Account
from bot.services.notify import CompanyNotice, Notifier, company_notice
from storage.db import Database
from storage.models import Agent, Company, Handler, JoinedAccount, utcnow
from storage.repositories import (
    Agents,
    Companies,
    Conversations,
    Handlers,
    JoinCodes,
    JoinedAccounts,
)
from storage.repositories.accounts import handler_accounts

UNBIND_USAGE = "解绑 账号（「成员 单位名称」里列出的账号，例如：解绑 qq:123456）"


def account_of(handler: Handler) -> str:
    return str(Account(handler.platform, handler.user_id))


def is_bound(handler: Handler | None) -> bool:
    """Whether the account acts for a company at all (pending or verified; not removed)."""
    return handler is not None and handler.status is not HandlerStatus.REMOVED


class Members:
    def __init__(self, settings: Settings, db: Database, notifier: Notifier,
                 agents: AgentRegistry, hub: AgentHub) -> None:
        self.settings = settings
        self.db = db
        self.notifier = notifier
        self.agents = agents
        self.hub = hub

    async def bound(self, account: Account) -> bool:
        return await self.binding(account) is not None

    async def binding(self, account: Account) -> Handler | None:
        """The account's binding to a company, if it acts for one (a technician may)."""
        async with self.db.transaction() as session:
            handler = await Handlers(session).get(account.platform, account.user_id)
        return handler if is_bound(handler) else None

    # --- 成员 ---------------------------------------------------------------------------------
    async def listing(self, wanted: str, *, private: bool) -> str:
        """成员 [单位]: the company's accounts; without one, the companies with accounts to
        verify. In a group the accounts are shortened."""
        async with self.db.transaction() as session:
            if not wanted:
                return await self._pending(session)
            companies = await Companies(session).find(wanted)
            exact = [c for c in companies if wanted in (c.name, c.uscc)]
            if not companies:
                raise ReviewRefused(f"没有找到单位「{wanted}」，请写单位全称或统一社会信用代码。")
            if len(companies) > 1 and len(exact) != 1:
                names = "\n".join(f"· {c.name}（{c.uscc}）" for c in companies[:10])
                raise ReviewRefused(f"「{wanted}」对应多个单位，请写全称或信用代码：\n{names}")
            company = exact[0] if exact else companies[0]
            handlers = await Handlers(session).of_company(company.id)
            agents = await Agents(session).listed(company.id)
            joined = await JoinedAccounts(session).of_handlers([h.id for h in handlers])
        return self._company(company, handlers, agents, joined, private)

    async def _pending(self, session: AsyncSession) -> str:
        companies = await Companies(session).with_pending_handlers()
        if not companies:
            return "没有待核验的账号。查看某个单位的账号：「成员 单位名称或信用代码」。"
        lines = [f"有待核验账号的单位（{len(companies)} 个）："]
        for i, c in enumerate(companies, 1):
            pending = [h for h in await Handlers(session).of_company(c.id)
                       if h.status is HandlerStatus.PENDING]
            lines.append(f"{i}. {c.name}（{c.uscc}）待核验 {len(pending)} 个")
        lines.append("查看账号：「成员 单位名称或信用代码」。")
        return "\n".join(lines)

    def _company(self, company: Company, handlers: Sequence[Handler], agents: Sequence[Agent],
                 joined: Sequence[JoinedAccount], private: bool) -> str:
        if not handlers:
            return f"【{company.name}】（{company.uscc}）没有绑定的账号。"
        show = (lambda account: account) if private else mask_account
        lines = [f"【{company.name}】（{company.uscc}）的账号（{len(handlers)} 个）："]
        for i, h in enumerate(handlers, 1):
            account = account_of(h)
            state = h.status.label
            if h.status is HandlerStatus.VERIFIED and h.verified_at:
                state += f"（{self._when(h.verified_at)} 由 {show(h.verified_by or '')} 核验）"
            if h.status is HandlerStatus.REMOVED and h.removed_at:
                state += f"（{self._when(h.removed_at)} 由 {show(h.removed_by or '')} 解绑）"
            lines.append(f"{i}. {show(account)} {state}；绑定于 {self._when(h.created_at)}；"
                         f"邮箱{'已设置' if h.email else '未设置'}；"
                         f"绑定的密钥代理：{_paired(agents, account)}")
            for j in (j for j in joined if j.handler_id == h.id):
                other = f"{j.platform}:{j.user_id}"
                lines.append(f"   同一人的其他渠道：{show(other)}（{self._when(j.joined_at)} 用 "
                             f"{show(j.joined_from)} 的绑定码绑定）；"
                             f"绑定的密钥代理：{_paired(agents, other)}")
        lines.append("解绑：「解绑 账号」" if private else
                     "群里隐去了账号中间几位；解绑请私聊发送「成员 单位」查看完整账号。")
        return "\n".join(lines)

    def _when(self, at: datetime) -> str:
        return f"{at.astimezone(self.settings.tz):%Y-%m-%d %H:%M}"

    # --- 解绑 ---------------------------------------------------------------------------------
    async def remove(self, actor: str, wanted: str, *, private: bool) -> str:
        platform, colon, user_id = wanted.strip().partition(":")
        if not colon or not platform or not user_id:
            raise ReviewRefused(f"请写上要解绑的账号。用法：{UNBIND_USAGE}")
        account = Account(platform, user_id)
        async with self.db.transaction() as session:
            handler = await Handlers(session).get(platform, user_id)
            if handler is None:
                raise ReviewRefused(f"账号 {account} 没有绑定任何单位，请核对"
                                    "（「成员 单位名称」可查看单位的账号）。")
            if handler.status is HandlerStatus.REMOVED:
                assert handler.removed_at is not None
                raise ReviewRefused(f"账号 {account} 已于 {self._when(handler.removed_at)} "
                                    f"由 {handler.removed_by} 解绑，无需再解绑。")
            joined = await JoinedAccounts(session).get(platform, user_id)
            if joined is not None and joined.handler_id == handler.id:
                revoked, answer = await self._detach(session, actor, account, handler, joined,
                                                     private)
            else:
                revoked, answer = await self._remove_person(session, actor, account, handler,
                                                            private)
        return await self._after(revoked, answer)

    async def _remove_person(self, session: AsyncSession, actor: str, account: Account,
                             handler: Handler, private: bool) -> tuple[list[Agent], str]:
        """解绑 of the account that bound: the person is removed, with every channel of it (in
        the caller's transaction: the agents revoked and the answer returned, for after it)."""
        company = handler.company
        handler.status = HandlerStatus.REMOVED
        handler.removed_at, handler.removed_by = utcnow(), actor
        # the joins stay (the person's orders are still its own, for 删除我的资料 from any of
        # its accounts) until one of them binds anew
        accounts = handler_accounts(handler, await JoinedAccounts(session).of_handler(handler.id))
        await JoinCodes(session).withdraw(handler.id, utcnow())
        revoked: list[Agent] = []
        for each in accounts:
            await Conversations(session).delete(each.platform, each.user_id)
            revoked += await self.agents.revoke_paired_by(session, str(each), handler.company_id,
                                                          actor)
        await session.flush()
        told = [h for h in await Handlers(session).verified_of(company.id) if h.id != handler.id]
        values = {"company": company.name, "who": "、".join(str(a) for a in accounts),
                  "agents": str(len(revoked))}
        to_company = company_notice(CompanyNotice.HANDLER_REMOVED, self.settings, **values)
        to_removed = company_notice(CompanyNotice.YOU_ARE_REMOVED, self.settings, **values)
        for each in accounts:  # each channel loses its binding: each is told
            await self.notifier.notify_account(session, each, to_removed.replies)
        await self.notifier.queue_handler_mail(session, [handler], to_removed)
        await self.notifier.notify_handlers(session, told, to_company)
        logger.warning(f"{values['who']} removed from company #{company.id} by {actor}; "
                       f"agents revoked: {[a.id for a in revoked]}")
        also = "、".join(self._shown(a, private) for a in accounts if a != account)
        also = f"（连同同一人的其他渠道 {also}）" if also else ""
        return revoked, (f"已解除账号 {self._shown(account, private)}{also}与【{company.name}】"
                         f"的绑定，{self._agents(revoked)}；"
                         f"已通知该账号和本单位 {len(told)} 位已核验经办人。")

    async def _after(self, revoked: Sequence[Agent], answer: str) -> str:
        """After the commit: the revoked agents cut off, the notices sent."""
        for agent in revoked:
            await self.hub.cut_off(agent.id)
        await self.notifier.deliver()
        return answer

    async def _detach(self, session: AsyncSession, actor: str, account: Account,
                      handler: Handler, joined: JoinedAccount,
                      private: bool) -> tuple[list[Agent], str]:
        """解绑 of a joined account: it alone stops acting as the person (in the caller's
        transaction: the agents revoked and the answer returned, for after the commit)."""
        company = handler.company
        await JoinedAccounts(session).leave([joined])
        await Conversations(session).delete(account.platform, account.user_id)
        revoked = await self.agents.revoke_paired_by(session, str(account), handler.company_id,
                                                     actor)
        values = {"company": company.name, "who": str(account), "agents": str(len(revoked))}
        to_removed = company_notice(CompanyNotice.YOU_ARE_REMOVED, self.settings, **values)
        to_person = company_notice(CompanyNotice.CHANNEL_REMOVED, self.settings, **values)
        await self.notifier.notify_account(session, account, to_removed.replies)
        others = handler_accounts(handler, await JoinedAccounts(session).of_handler(handler.id))
        for other in others:
            await self.notifier.notify_account(session, other, to_person.replies)
        await self.notifier.queue_handler_mail(session, [handler], to_person)
        logger.warning(f"{account} detached from handler #{handler.id} by {actor}; "
                       f"agents revoked: {[a.id for a in revoked]}")
        return revoked, (f"已解绑账号 {self._shown(account, private)}：它不再与 "
                f"{self._shown(Account(handler.platform, handler.user_id), private)} 是同一位"
                f"经办人，不能再代表【{company.name}】办理业务，{self._agents(revoked)}；"
                "该经办人的其他渠道不受影响，已通知该账号和该经办人。")

    @staticmethod
    def _shown(account: Account, private: bool) -> str:
        return str(account) if private else mask_account(str(account))

    @staticmethod
    def _agents(revoked: Sequence[Agent]) -> str:
        return (f"吊销了它绑定的密钥代理 {'、'.join(str(a.id) for a in revoked)}（已断开）"
                if revoked else "它没有绑定密钥代理")


def _paired(agents: Sequence[Agent], account: str) -> str:
    """The agents ``account`` paired (with a code it asked for), for 成员."""
    return "、".join(f"{a.id}{'（已吊销）' if a.revoked_at else ''}"
                    for a in agents if a.paired_by == account) or "无"
