"""Sending to chat accounts and groups through whichever nonebot bot serves the platform.

Used by the plugins (replies) and by the notifier (messages nobody asked for: an approval, a
rejection, a staff notice).
"""

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import nonebot
from loguru import logger
from nonebot.adapters import Bot, Event
from nonebot.adapters.onebot.v11 import GroupMessageEvent
from nonebot.adapters.onebot.v11 import Message as OneBotMessage
from nonebot.adapters.onebot.v11 import MessageSegment as OneBotSegment
from nonebot.exception import ActionFailed, NetworkError

from bot.adapters import qq_official, wechat
from bot.adapters.wechat.delivery import message_of as wechat_message
from bot.services.keyed_locks import KeyedLocks
from bot.services.messages import Account, Picture, Reply

PLATFORMS = {"OneBot V11": "qq", "Console": "console", qq_official.ADAPTER_NAME: "qqbot",
             wechat.NAME: "wechat"}


def platform_of(bot: Bot) -> str:
    name = bot.adapter.get_name()
    return PLATFORMS.get(name, name)


def account_of(bot: Bot, event: Event) -> Account:
    return Account(platform_of(bot), event.get_user_id())


# Each account's replies in the order of its messages. The dialogue answers an account's messages
# one at a time but sends after it lets go: the first answer's second text waits for the client
# to take the first, and meanwhile the next answer could go out between them. The plugin takes
# the account's lock with no await between the answer and it (asyncio's lock is fair and an
# uncontended one is taken at once), so the next message cannot take its turn first.
SEND_ORDER = KeyedLocks[Account]()


@dataclass(frozen=True)
class Mention:
    """Someone @-mentioning the bot in a group: where, who, and what they wrote."""

    platform: str
    group: str
    user: str
    text: str


def mention_of(bot: Bot, event: Event) -> Mention | None:
    """The mention of the bot in a group ``event`` is; None for anything else."""
    if isinstance(event, GroupMessageEvent) and event.is_tome():
        return Mention("qq", str(event.group_id), event.get_user_id(), event.get_plaintext())
    if qq_official.is_group_mention(event):
        group_event = cast(qq_official.GroupAtMessageCreateEvent, event)
        return Mention(qq_official.PLATFORM, group_event.group_openid, event.get_user_id(),
                       event.get_plaintext())
    return None


# The Console (Textual) renders notifications as markup: an ASCII bracket in any text, such as a
# rejection reason, would crash the whole terminal app. Full-width brackets read the same.
_CONSOLE_SAFE = str.maketrans({"[": "［", "]": "］"})


def to_message(bot: Bot, reply: Reply) -> str | OneBotMessage | wechat.Message:
    if platform_of(bot) == "wechat":
        return wechat_message(reply)
    if platform_of(bot) == "qq":
        if isinstance(reply, str):
            return reply
        caption = OneBotSegment.text(f"{reply.alt}\n")
        return OneBotMessage([caption, OneBotSegment.image(reply.data)])
    if isinstance(reply, Picture):
        reply = (f"（图片：{reply.alt}，终端里无法显示，已保存为 {console_file(reply)}，"
                 "可打开查看或打印）")
    return reply.translate(_CONSOLE_SAFE)


def console_file(picture: Picture) -> Path:
    """The Console's person sits at this machine: a picture is saved where they can open it
    (named by its content, readable by them alone: a filled-in form holds their answers)."""
    folder = Path(tempfile.gettempdir()) / "cadesk-console"
    folder.mkdir(mode=0o700, exist_ok=True)
    suffix = ".png" if picture.data.startswith(b"\x89PNG") else ".jpg"
    path = folder / (hashlib.sha256(picture.data).hexdigest()[:16] + suffix)
    if not path.exists():
        path.touch(mode=0o600)
        path.write_bytes(picture.data)
    return path


class NonebotChat:
    """The ``ChatChannel`` of the running bot."""

    def connected(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for bot in nonebot.get_bots().values():
            counts[platform_of(bot)] = counts.get(platform_of(bot), 0) + 1
        return counts

    def _bot(self, platform: str) -> Bot | None:
        for bot in nonebot.get_bots().values():
            if platform_of(bot) == platform:
                return bot
        return None

    async def send(self, account: Account, replies: Sequence[Reply], *,
                   reply_to: str | None = None) -> bool:
        """``reply_to`` is for the platforms that tie a reply to the user's message; OneBot and
        the Console send at any time and need none."""
        bot = self._bot(account.platform)
        if bot is None:
            logger.warning(f"no {account.platform} bot online: {account} not told")
            return False
        if account.platform == qq_official.PLATFORM:
            return await qq_official.send(bot, account, replies, reply_to=reply_to)
        if isinstance(bot, wechat.Bot):
            return await wechat.send(bot.api, account, replies)
        try:
            for reply in replies:
                message = to_message(bot, reply)
                if account.platform == "qq":
                    await bot.send_private_msg(user_id=int(account.user_id), message=message)
                else:
                    await bot.send_private_message(user_id=account.user_id, message=message)
        except (ActionFailed, NetworkError) as error:
            logger.warning(f"sending to {account} failed: {error}")
            return False
        return True

    async def push(self, account: Account, replies: Sequence[Reply]) -> bool:
        """Outside a reply window: QQ's proactive message, WeChat's notice template (False when
        none is set up or it is refused). OneBot and the Console have no window: a push is a
        send."""
        bot = self._bot(account.platform)
        if bot is not None and account.platform == qq_official.PLATFORM:
            return await qq_official.push(bot, account, replies)
        if isinstance(bot, wechat.Bot):
            return await wechat.push(bot.api, bot.settings, account, replies)
        return await self.send(account, replies)

    async def send_group(self, group: Account, replies: Sequence[Reply]) -> bool:
        bot = self._bot(group.platform)
        if bot is None or group.platform != "qq":
            logger.warning(f"no bot online for group {group}: staff notice not delivered")
            return False
        try:
            for reply in replies:
                await bot.send_group_msg(group_id=int(group.user_id),
                                         message=to_message(bot, reply))
        except (ActionFailed, NetworkError) as error:
            logger.warning(f"sending to group {group} failed: {error}")
            return False
        return True
