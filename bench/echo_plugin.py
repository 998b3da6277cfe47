"""The echo bot's one plugin: a private message's text, sent back."""

from nonebot import on_message
from nonebot.adapters.onebot.v11 import PrivateMessageEvent

echo = on_message(priority=50, block=True)


@echo.handle()
async def _(event: PrivateMessageEvent) -> None:
    await echo.send(event.get_plaintext())
