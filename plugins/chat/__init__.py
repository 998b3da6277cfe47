"""聊天消息: the one matcher every chat message goes through. A technician's command goes to
the review desk (plugins/review), any other private message to the applicant's dialogue
(plugins/applicant). Someone who @-mentions the bot in another group is shown the way to a
private chat (bot/services/group_mentions.py); any other group message is left alone.

One matcher, not one per plugin: nonebot solves each matcher's rule and handler parameters with
anyio task groups, several per matcher and message, which cost more than the routing itself
(docs/benchmarks.md has the profile).
"""

from nonebot import on_message, require
from nonebot.adapters import Bot, Event
from nonebot.plugin import PluginMetadata

from bot.adapters import qq_official
from bot.adapters.chat_delivery import SEND_ORDER, account_of, mention_of, to_message
from bot.runtime import get_runtime

review = require("plugins.review")
applicant = require("plugins.applicant")

__plugin_meta__ = PluginMetadata(
    name="聊天消息",
    description="技术人员的命令交审核台，其余私聊消息交申请人对话",
    usage=f"{applicant.__plugin_meta__.usage}\n技术人员：{review.__plugin_meta__.description}",
)

chat = on_message(priority=10, block=True)


@chat.handle()
async def _(bot: Bot, event: Event) -> None:
    if await review.is_review_command(bot, event):
        replies = await review.answer(bot, event)
        if await applicant.is_private(event):  # staff notices held for a technician go first
            replies = await get_runtime().chat_outbox.with_held(
                account_of(bot, event), applicant.incoming_of(event).ref, replies)
    elif await applicant.is_private(event):
        replies = await applicant.answer(bot, event)
    else:
        mention = None if review.in_staff_group(event) else mention_of(bot, event)
        if mention is None:
            return
        told = get_runtime().group_mentions.answer(mention.platform, mention.group, mention.user,
                                                   mention.text)
        if isinstance(event, qq_official.GroupAtMessageCreateEvent):
            await qq_official.reply_group(bot, event, told)
        elif told:
            await chat.send("\n\n".join(told), at_sender=True)
        return
    async with SEND_ORDER.of(account_of(bot, event)):  # taken before the next message's turn
        if isinstance(event, qq_official.C2CMessageCreateEvent):
            await qq_official.reply(bot, event, replies)  # few messages, each naming the user's
            return
        for reply in replies:
            await chat.send(to_message(bot, reply))
