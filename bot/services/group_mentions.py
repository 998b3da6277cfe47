"""What the bot says when someone @-mentions it in a group that is not the staff group.

Certificates are applied for in private chat: every form asks for ID numbers, phone numbers and
scans, which a group would show to everyone in it. So a mention in a group is answered with the
way to a private chat (the channel's ``private_hint``), never with the dialogue, and nothing of
what was written is repeated. Someone who has just put an ID number or a mobile number in the
group is told to recall it. The way to a private chat is said once per person and group in
``QUIET`` (a busy group should not fill with the same answer); the recall warning every time.
"""

import time
from collections import OrderedDict

from bot.domain.masking import has_personal_numbers
from bot.services.channels import rules_of

QUIET = 600.0  # seconds: the way to a private chat, once per person and group
_KEPT = 4096  # (group, person) pairs remembered

RECALL = "⚠ 您刚才的消息里有身份证号或手机号，群里的人都能看到，请尽快撤回。"
PRIVATE = ("您好！证书新办、续期、密码解锁、挂失都要填写证件信息，为保护您的资料，请{hint}办理，"
           "发送「帮助」查看可办理的业务。")


class GroupMentions:
    """The answers to mentions in groups, remembering (in this process) whom it told when."""

    def __init__(self, quiet: float = QUIET) -> None:
        self.quiet = quiet
        self._told: OrderedDict[tuple[str, str, str], float] = OrderedDict()

    def answer(self, platform: str, group: str, user: str, text: str,
               now: float | None = None) -> list[str]:
        """The replies to ``user``'s mention in ``group`` on ``platform`` (none: stay quiet)."""
        now = time.monotonic() if now is None else now
        replies = [RECALL] if has_personal_numbers(text) else []
        key = (platform, group, user)
        told = self._told.get(key)
        if told is None or now - told >= self.quiet:
            replies.append(PRIVATE.format(hint=rules_of(platform).private_hint))
            self._told.pop(key, None)
            self._told[key] = now
            while len(self._told) > _KEPT:
                self._told.popitem(last=False)
        return replies
