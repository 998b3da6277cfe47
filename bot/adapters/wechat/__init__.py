"""The WeChat official account (微信公众号): the callback (``callback.py``), the API client
(``api.py``), the nonebot adapter (``adapter.py``, ``message.py``) and sending (``delivery.py``:
``send`` and ``push``, called from ``bot/adapters/chat_delivery.py``)."""

from bot.adapters.wechat.adapter import NAME, Adapter, Bot, MessageEvent
from bot.adapters.wechat.api import WeChatApi
from bot.adapters.wechat.delivery import push, send
from bot.adapters.wechat.message import Message, MessageSegment

__all__ = ["NAME", "Adapter", "Bot", "Message", "MessageEvent", "MessageSegment", "WeChatApi",
           "push", "send"]
