"""申请人对话: binding a company, applying for a certificate, querying orders, in private chat."""

from nonebot import on_message
from nonebot.adapters import Bot, Event
from nonebot.adapters.console import MessageEvent as ConsoleMessage
from nonebot.adapters.onebot.v11 import PrivateMessageEvent as OneBotPrivate
from nonebot.plugin import PluginMetadata

from bot.adapters import qq_official
from bot.adapters.chat_delivery import account_of, to_message
from bot.adapters.fetch import ImageSource
from bot.runtime import get_runtime
from bot.services.applications.dialogue import APPLICANT_COMMANDS
from bot.services.messages import Incoming

__plugin_meta__ = PluginMetadata(
    name="申请人对话",
    description="绑定单位、新办/补办证书、上传扫描件、查询订单",
    usage="私聊发送" + "".join(f"「{c.usage}」" for c in APPLICANT_COMMANDS.visible()),
)

def is_private(event: Event) -> bool:
    # the Console is one local person at a terminal: every channel there counts as private
    return isinstance(event, OneBotPrivate | ConsoleMessage) or qq_official.is_private(event)


def incoming_of(event: Event) -> Incoming:
    if isinstance(event, qq_official.C2CMessageCreateEvent):
        return qq_official.incoming(event, get_runtime().settings.qqbot.media_hosts)
    message = event.get_message()
    images = tuple(
        ImageSource(url=segment.data.get("url") or segment.data.get("file"))
        for segment in message if segment.type == "image")
    text = "".join(str(segment) for segment in message if segment.is_text())
    return Incoming(text=text, images=images, local_files=isinstance(event, ConsoleMessage))


applicant = on_message(rule=is_private, priority=50, block=True)


@applicant.handle()
async def _(bot: Bot, event: Event) -> None:
    replies = await get_runtime().dialogue.handle(account_of(bot, event), incoming_of(event))
    if isinstance(event, qq_official.C2CMessageCreateEvent):
        await qq_official.reply(bot, event, replies)  # few messages, each naming the user's
        return
    for reply in replies:
        await applicant.send(to_message(bot, reply))
