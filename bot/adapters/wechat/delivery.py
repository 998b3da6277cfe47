"""Sending to a WeChat user: replies as 客服消息 (text; a picture uploaded as temporary media,
its caption first), and outside the 48 hours the notice template, when the centre set one up.
``send`` and ``push`` are the WeChat half of ``NonebotChat`` (bot/adapters/chat_delivery.py)."""

from collections.abc import Sequence
from datetime import datetime

from loguru import logger
from nonebot.exception import ActionFailed, NetworkError

from bot.adapters.wechat.api import WeChatApi
from bot.adapters.wechat.message import Message, MessageSegment
from bot.config import Settings
from bot.services.messages import Account, Picture, Reply

TEXT_BYTES = 2000  # WeChat cuts a 客服消息 text beyond about 2048 bytes: longer ones are split
SUMMARY_CHARS = 20  # a template's "thing" field holds at most 20 characters
UNSUPPORTED = "目前只能处理文字和图片消息，请发送文字，或把材料拍照后以图片发送。"
# in developer mode WeChat's own 被关注回复 is off: the bot greets a new follower itself
WELCOME = ("欢迎关注{name}！在这里可以办理数字证书的新办、补办、续期和 UKEY 解锁。"
           "发送任意消息开始，发送「帮助」查看全部功能。")


def message_of(reply: Reply) -> Message:
    """A reply as the adapter sends it: a picture with its caption before it."""
    if isinstance(reply, Picture):
        return Message([MessageSegment.text(reply.alt), MessageSegment.image(reply.data)])
    return Message(MessageSegment.text(reply))


def pieces(text: str, limit: int = TEXT_BYTES) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-8 bytes, cut between lines where it can."""
    out: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate.encode()) <= limit:
            current = candidate
            continue
        if current:
            out.append(current)
        while len(line.encode()) > limit:  # one line longer than a message
            cut = limit // 4  # characters: at most 4 bytes each
            out.append(line[:cut])
            line = line[cut:]
        current = line
    return [*out, current] if current or not out else out


async def deliver(api: WeChatApi, openid: str, message: Message) -> None:
    """Each segment as one 客服消息, in order; raises ``ActionFailed`` / ``NetworkError``."""
    for segment in message:
        if segment.type == "image":
            media_id = await api.upload_image(segment.data["data"])
            await api.send_custom(openid, {"msgtype": "image", "image": {"media_id": media_id}})
            continue
        for piece in pieces(str(segment)):
            if piece.strip():
                await api.send_custom(openid, {"msgtype": "text", "text": {"content": piece}})


async def send(api: WeChatApi, account: Account, replies: Sequence[Reply]) -> bool:
    """The replies as 客服消息; False when WeChat refuses (beyond its 48 hours: 45015)."""
    try:
        for reply in replies:
            await deliver(api, account.user_id, message_of(reply))
    except (ActionFailed, NetworkError) as error:
        logger.warning(f"sending to {account} failed: {error}")
        return False
    return True


def summary(replies: Sequence[Reply]) -> str:
    """The first notice's first line, short enough for a template field."""
    first = next((r if isinstance(r, str) else r.alt for r in replies), "")
    line = next((line.strip() for line in first.splitlines() if line.strip()), "您有一条新通知")
    return line if len(line) <= SUMMARY_CHARS else line[:SUMMARY_CHARS - 1] + "…"


async def push(api: WeChatApi, settings: Settings, account: Account,
               replies: Sequence[Reply]) -> bool:
    """Outside the 48 hours: the notice template telling them a notice waits (a reply shows
    it); False when no template is set up or WeChat refuses it."""
    wechat = settings.wechat
    if not wechat.notice_template_id:
        return False
    now = datetime.now(settings.tz)
    values = {"summary": summary(replies), "count": str(len(replies)),
              # the form a template's "time" field takes: 2026年12月2日 20:18
              "time": f"{now.year}年{now.month}月{now.day}日 {now:%H:%M}"}
    data = {key: text.format(**values) for key, text in wechat.notice_template_data.items()}
    try:
        await api.send_template(account.user_id, wechat.notice_template_id, data)
    except (ActionFailed, NetworkError) as error:
        logger.warning(f"template message to {account} failed: {error}")
        return False
    return True
