"""技术人员审核台: review commands in private chat or in the staff group."""

from nonebot.adapters import Bot, Event
from nonebot.adapters.console import MessageEvent as ConsoleMessage
from nonebot.adapters.onebot.v11 import GroupMessageEvent
from nonebot.adapters.onebot.v11 import PrivateMessageEvent as OneBotPrivate
from nonebot.plugin import PluginMetadata

from bot.adapters import qq_official, wechat
from bot.adapters.chat_delivery import account_of
from bot.domain.text import normalise
from bot.runtime import get_runtime
from bot.services.commands import FormOpen
from bot.services.messages import Reply
from bot.services.review.desk import TECHNICIAN_COMMANDS

__plugin_meta__ = PluginMetadata(
    name="技术人员审核台",
    description="审核、通过、驳回订单，登记收款、发货、自取、发票，查询订单与记录",
    usage="\n".join(c.usage for c in TECHNICIAN_COMMANDS.visible()),
)


def in_staff_group(event: Event) -> bool:
    staff_group = get_runtime().settings.staff.group
    return isinstance(event, GroupMessageEvent) and staff_group == f"qq:{event.group_id}"


async def is_review_command(bot: Bot, event: Event) -> bool:
    if not (isinstance(event, OneBotPrivate | ConsoleMessage | GroupMessageEvent
                       | wechat.MessageEvent) or qq_official.is_private(event)):
        return False
    if isinstance(event, GroupMessageEvent) and not in_staff_group(event):
        return False  # other groups the bot sits in are none of its business
    command = TECHNICIAN_COMMANDS.first_word(event.get_plaintext())
    if command is None or not command.shared:
        return command is not None  # a stranger's is refused (and logged) by the desk
    runtime, account = get_runtime(), account_of(bot, event)
    if not runtime.settings.staff.is_technician(str(account)):
        return False  # applicants have their own 解锁状态 and 帮助
    if command.argument_required and len(normalise(event.get_plaintext()).split()) < 2:
        # the bare word: a technician who acts for a company means the applicant's command (挂失
        # starts the loss form); anyone else is shown the technician's usage
        return in_staff_group(event) or not await runtime.desk.members.bound(account)
    # a technician filling in a form of their own means the form's 帮助
    return (command.form_open is FormOpen.ANSWER or in_staff_group(event)
            or not await runtime.dialogue.has_form(account))


async def answer(bot: Bot, event: Event) -> list[Reply]:
    """The review desk's replies to a technician's command (plugins/chat routes here)."""
    return await get_runtime().desk.execute(
        account_of(bot, event), event.get_plaintext(), private=not in_staff_group(event))
