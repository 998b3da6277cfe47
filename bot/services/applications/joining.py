"""One person, several channels (docs/conversation.md): a handler asks on an account it has for
a 渠道绑定码 (「绑定其他渠道」), and 「绑定 码」 on an unbound account of any channel joins that
account to it. A joined account acts as the handler: the same company, the same standing
(pending stays pending, verified stays verified, and a later verification counts for both), the
same orders (``JoinedAccount``; ``Handlers.get`` resolves it).

A code is one handler's, made on one of its accounts: short-lived, kept hashed, claimed once by a
conditional UPDATE (concurrent redemptions join one account), and guessing is limited per
redeeming account (``WrongTries``). The handler's other accounts are told at once (chat, and
mail where an address is set), so a join the person did not make is noticed.
"""

from datetime import timedelta

from loguru import logger
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.masking import mask_account
from bot.domain.trust import HandlerStatus
from bot.services.centre import please_contact
from bot.services.messages import Account
from bot.services.notify import CompanyNotice, Notifier, company_notice
from bot.services.one_time_codes import WrongTries, code_hash, new_code
from storage.db import Database
from storage.models import Handler, JoinCode, utcnow
from storage.repositories import (
    Conversations,
    Handlers,
    JoinCodes,
    JoinedAccounts,
    accounts_of,
)

GET_A_CODE = "绑定其他渠道"
REDEEM = "绑定"


class Joining:
    def __init__(self, settings: Settings, db: Database, notifier: Notifier) -> None:
        self.settings = settings
        self.db = db
        self.notifier = notifier
        self.wrong = WrongTries()  # per redeeming account

    @property
    def minutes(self) -> int:
        return int(self.settings.dialogue.join_code_minutes)

    async def code_for(self, account: Account, handler: Handler) -> str:
        """A new code for the handler, asked on ``account``; its earlier unused codes lapse
        (only the latest one told is good)."""
        code, now = new_code(), utcnow()
        async with self.db.transaction() as session:
            codes = JoinCodes(session)
            await codes.withdraw(handler.id, now)
            codes.add(JoinCode(code_hash=code_hash(code), handler_id=handler.id,
                               requested_by=str(account),
                               expires_at=now + timedelta(minutes=self.minutes)))
        logger.info(f"{account} asked for a join code")
        standing = handler.status.label
        return (f"渠道绑定码：{code}（{self.minutes} 分钟内有效，只能使用一次，请勿告诉他人）。\n"
                f"在另一个渠道（微信公众号/QQ）向机器人发送：{REDEEM} {code}\n"
                f"绑定后，那个账号与本账号是同一位经办人：代表【{handler.company.name}】"
                f"（{standing}），可以查看和办理同样的订单"
                + ("，核验通过后两边同时生效" if handler.status is HandlerStatus.PENDING else "")
                + "。绑定成功时这里会收到通知。")

    async def join(self, account: Account, typed: str) -> tuple[str, Handler | None]:
        """「绑定 码」 on ``account``: the answer, and the handler it now acts as (None: refused,
        nothing changed)."""
        guesser = str(account)
        if self.wrong.used_up(guesser):
            return (f"渠道绑定码输错的次数过多，请 {round(self.wrong.window / 60)} 分钟后再试。"
                    f"绑定码请在您已绑定的渠道发送「{GET_A_CODE}」获取。"), None
        try:
            async with self.db.transaction() as session:
                handlers = Handlers(session)
                current = await handlers.get(account.platform, account.user_id)
                if current is not None and current.status is not HandlerStatus.REMOVED:
                    return self._already_bound(current), None
                code = await JoinCodes(session).claim(code_hash(typed), utcnow(), guesser)
                if code is None:
                    handler = None
                else:
                    handler = await handlers.by_id(code.handler_id)
                    assert handler is not None
                    maker = await handlers.get(*_parts(code.requested_by))  # still it?
                    if handler.status is HandlerStatus.REMOVED or (
                            maker is None or maker.id != handler.id):
                        return ("这个渠道绑定码已失效：申请它的账号已解绑。"
                                f"如有疑问{please_contact(self.settings)}"), None
                    joined = JoinedAccounts(session)
                    if (left := await joined.get(account.platform, account.user_id)) is not None:
                        await joined.leave([left])  # a join to someone since unbound ends here
                    await joined.join(handler, account, code.requested_by)
                    await Conversations(session).delete(account.platform, account.user_id)
                    await self._tell_the_others(session, account, handler)
        except IntegrityError:  # this account was joined or bound at this very instant elsewhere
            return "本账号刚刚已经绑定，请回复「帮助」查看可以办理的业务。", None
        if handler is None:
            self.wrong.wrong(guesser)
            logger.info(f"{account} sent a wrong, used or expired join code")
            return (f"渠道绑定码不正确、已使用或已过期，本账号没有绑定。请在您已绑定的渠道（QQ/微信"
                    f"公众号等）发送「{GET_A_CODE}」获取新的绑定码（{self.minutes} 分钟内有效），"
                    f"再在这里发送「{REDEEM} 绑定码」。"
                    "还没有在任何渠道绑定过单位的，请按提示绑定单位。"), None
        logger.info(f"{account} joined handler #{handler.id} ({code.requested_by}'s code)")
        # what waited for the person's next message may go through the channel just joined
        await self.notifier.chat.recheck_held([Account(handler.platform, handler.user_id)])
        await self.notifier.deliver()
        pending = ("绑定尚待核验，核验通过后所有渠道同时生效。" if handler.status is
                   HandlerStatus.PENDING else "")
        return (f"绑定成功：本账号与 {mask_account(code.requested_by)} 是同一位经办人，代表"
                f"【{handler.company.name}】（{handler.status.label}）。{pending}"
                "在这里也可以查看订单、继续办理和接收通知。"), handler

    def _already_bound(self, current: Handler) -> str:
        return (f"本账号已绑定【{current.company.name}】（{current.status.label}）。渠道绑定码要在"
                "另一个还没有绑定的账号上发送。一个账号只代表一位经办人：如需把本账号改为与其他"
                f"渠道的账号合并，请先联系技术人员「解绑」本账号（{please_contact(self.settings)}），"
                f"解绑后再发送「{REDEEM} 绑定码」。")

    async def _tell_the_others(self, session: AsyncSession, account: Account,
                               handler: Handler) -> None:
        """The handler's other accounts, each in chat, and its mail address: a channel joined
        them (in the join's transaction)."""
        notice = company_notice(CompanyNotice.CHANNEL_JOINED, self.settings,
                                company=handler.company.name, who=str(account))
        for other in await accounts_of(session, account):
            if other != account:
                await self.notifier.notify_account(session, other, notice.replies)
        await self.notifier.queue_handler_mail(session, [handler], notice)


def _parts(account: str) -> tuple[str, str]:
    parsed = Account.parse(account)
    return parsed.platform, parsed.user_id
