"""What the applicant's commands share: what a handler is given, who counts as verified, and the
menu drawn from the table (the table itself sits beside its handlers, in ``dialogue``)."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.domain.order_numbers import looks_like_order_number, parse_order_number
from bot.domain.trust import HandlerStatus
from bot.services.centre import please_contact
from bot.services.commands import Command
from bot.services.messages import Account
from storage.models import Handler, Order

# what a pending account may not do, and how it gets verified (docs/conversation.md)
NOT_VERIFIED = (
    "您与本单位的绑定尚未核验，暂不能办理「{word}」。核验通过前不能查看本单位已有的订单和证书，"
    "不能挂失/解挂、续期或绑定密钥代理。\n"
    "如何核验：本单位已有已核验的经办人的，由其回复「同意绑定 编号」确认；本单位还没有的，"
    "请提交写明您为经办人并加盖公章的单位授权书和营业执照，由技术人员核对后通过。\n"
    "回复「认证进度」查看您的绑定申请；还没有申请的，回复「申请核验」开始。\n"
    "核验前您仍可办理新办证书、补办证书、解锁，并查看您自己提交的订单。")


@dataclass(frozen=True)
class Asked:
    """One command as sent: who sent it, their binding, and the argument after its word."""

    account: Account
    handler: Handler | None  # None only for a command that needs no binding
    argument: str = ""

    @property
    def bound(self) -> Handler:
        assert self.handler is not None, "a command that needs a binding ran without one"
        return self.handler


def is_verified(handler: Handler) -> bool:
    """Whether a binding may run the commands marked ``verified`` and see the company's orders
    (this is the one place that decides; see bot/domain/trust.py)."""
    return handler.status is HandlerStatus.VERIFIED


def no_certificates(settings: Settings) -> str:
    """The refusal of a ``pki`` command while [pki] is off."""
    return f"本服务暂未开通在线续期和挂失，办理{please_contact(settings)}"


def not_verified(word: str) -> str:
    """The refusal of a command marked ``verified``, saying how to get verified."""
    return NOT_VERIFIED.format(word=word)


def may_see(handler: Handler, order: Order | None) -> bool:
    """A verified account sees its company's orders; a pending one only those it filed itself."""
    if order is None or order.company_id != handler.company_id:
        return False
    return is_verified(handler) or order.handler_id == handler.id


def not_found(number: str) -> str:
    """An order number the account cannot see (none such, or another company's), as typed."""
    return f"没有找到本单位的订单 {number}，请核对订单号。回复「我的订单」查看全部订单。"


def order_number_of(word: str, typed: str) -> tuple[str | None, str]:
    """The order number typed after ``word`` (canonical), or why there is none: one shaped like
    a number that no order can have is not found; anything else is asked again, with how."""
    typed = typed.strip()
    if number := parse_order_number(typed):
        return number, ""
    if looks_like_order_number(typed):
        return None, not_found(typed)
    return None, (f"请在「{word}」后面写上订单号，例如「{word} XB-261125-7KQ3」。"
                  "回复「我的订单」查看订单号。")


def order_argument(typed: str) -> str | None:
    """A command's order number: canonical when valid; as typed when only shaped like one (the
    handler answers 没有找到); None when it is no number (「修改 3」 is the summary's)."""
    return parse_order_number(typed) or (typed.strip() if looks_like_order_number(typed) else None)


def menu_lines(commands: Iterable[Command[Any]]) -> list[str]:
    """One line per command; neighbours sharing a help text share its line (挂失 / 解挂)."""
    lines: list[tuple[list[str], str]] = []
    for c in commands:
        if lines and lines[-1][1] == c.help:
            lines[-1][0].append(c.usage)
        else:
            lines.append(([c.usage], c.help))
    return [f"· {' / '.join(usages)} — {help}" for usages, help in lines]
