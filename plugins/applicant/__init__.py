"""申请人对话: binding a company, applying for a certificate, querying orders, in private chat."""

from nonebot.adapters import Bot, Event
from nonebot.adapters.console import MessageEvent as ConsoleMessage
from nonebot.adapters.onebot.v11 import PrivateMessageEvent as OneBotPrivate
from nonebot.plugin import PluginMetadata

from bot.adapters import qq_official, wechat
from bot.adapters.chat_delivery import account_of
from bot.adapters.fetch import ImageSource
from bot.runtime import get_runtime
from bot.services.applications.dialogue import APPLICANT_COMMANDS
from bot.services.messages import Incoming, Reply

__plugin_meta__ = PluginMetadata(
    name="申请人对话",
    description="绑定单位、新办/补办证书、上传扫描件、查询订单",
    usage="私聊发送" + "".join(f"「{c.usage}」" for c in APPLICANT_COMMANDS.visible()),
)

async def is_private(event: Event) -> bool:
    # the Console is one local person at a terminal: every channel there counts as private;
    # a WeChat message is always one person's, as is QQ's official C2C; async, since nonebot
    # runs a plain function rule in a worker thread, a hop per message
    return (isinstance(event, OneBotPrivate | ConsoleMessage | wechat.MessageEvent)
            or qq_official.is_private(event))


def incoming_of(event: Event) -> Incoming:
    if isinstance(event, qq_official.C2CMessageCreateEvent):
        return qq_official.incoming(event, get_runtime().settings.qqbot.media_hosts)
    message = event.get_message()
    images = tuple(
        ImageSource(url=segment.data.get("url") or segment.data.get("file"))
        for segment in message if segment.type == "image")
    text = "".join(str(segment) for segment in message if segment.is_text())
    ref = event.msg_id if isinstance(event, wechat.MessageEvent) else None
    return Incoming(text=text, images=images, local_files=isinstance(event, ConsoleMessage),
                    ref=ref)


async def answer(bot: Bot, event: Event) -> list[Reply]:
    """The dialogue's replies to an applicant's private message (plugins/chat routes here)."""
    return await get_runtime().dialogue.handle(account_of(bot, event), incoming_of(event))
