"""What the applicant's commands share: what a handler is given, who counts as verified, and the
menu drawn from the table (the table itself sits beside its handlers, in ``dialogue``)."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.services.commands import Command
from bot.services.messages import Account
from storage.models import Handler

NO_CERTIFICATES = "本服务暂未开通在线续期和挂失，请联系技术人员办理。"
NOT_VERIFIED = "您与本单位的绑定尚未核验，暂不能办理此项。请联系技术人员。"


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
    """Whether a binding may run the commands marked ``verified``: every binding, for now (the
    trust work switches it on; this is the one place that decides)."""
    return True


def menu_lines(commands: Iterable[Command[Any]]) -> list[str]:
    """One line per command; neighbours sharing a help text share its line (挂失 / 解挂)."""
    lines: list[tuple[list[str], str]] = []
    for c in commands:
        if lines and lines[-1][1] == c.help:
            lines[-1][0].append(c.usage)
        else:
            lines.append(([c.usage], c.help))
    return [f"· {' / '.join(usages)} — {help}" for usages, help in lines]
