"""Someone @-mentioning the bot in a group other than the staff's (OneBot, through nonebug)
is shown the way to a private chat, told to recall a number they posted, and nothing else."""

import random

import nonebot
from nonebot.adapters.onebot.v11 import Adapter, Bot, GroupMessageEvent
from nonebug import App

from bot.runtime import get_runtime
from bot.samples import fake_id_number, fake_uscc
from bot.services.group_mentions import PRIVATE, RECALL, GroupMentions
from bot.services.messages import Account
from tests.support.applicant import bind_verified, say
from tests.support.helpers import SELF_ID, STAFF_GROUP, group_message

WAY = PRIVATE.format(hint="加我为 QQ 好友后私聊我")


def mention(group: int, user: int, text: str) -> GroupMessageEvent:
    event = group_message(group, user, text)
    event.to_me = True  # nonebot's reading of an @ of the bot (or a reply to it)
    return event


async def test_a_mention_in_another_group_is_answered_in_the_group_only(app: App) -> None:
    from plugins.chat import chat

    id_number = fake_id_number(random.Random(5))
    async with app.test_matcher(chat) as ctx:
        bot = ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter), self_id=str(SELF_ID))
        first = mention(4501, 310001, f"我要办证书 {id_number}")
        ctx.receive_event(bot, first)
        ctx.should_call_send(first, f"{RECALL}\n\n{WAY}", result={"message_id": 1},
                             at_sender=True)
        ctx.receive_event(bot, mention(4501, 310001, "在吗"))  # just told: quiet
        ctx.receive_event(bot, group_message(4501, 310002, "新办证书"))  # not to the bot
        ctx.receive_event(bot, mention(STAFF_GROUP, 310003, "谢谢"))  # staff chatting
        other = mention(4502, 310001, "解锁")  # another group: told there too
        ctx.receive_event(bot, other)
        ctx.should_call_send(other, WAY, result={"message_id": 1}, at_sender=True)


def test_the_way_is_said_once_a_while_and_the_recall_warning_every_time() -> None:
    mentions = GroupMentions(quiet=600)
    assert mentions.answer("qq", "1", "u", "你好", now=0) == [WAY]
    assert mentions.answer("qq", "1", "u", "你好", now=599) == []
    assert mentions.answer("qq", "1", "u", "13812345678", now=599.5) == [RECALL]
    assert mentions.answer("qq", "1", "u", "你好", now=600) == [WAY]
    assert mentions.answer("qq", "1", "v", "你好", now=600) == [WAY]
    assert mentions.answer("qqbot", "1", "u", "x", now=600)[0].startswith("您好")
    # an order number or a USCC is no personal number
    assert mentions.answer("qq", "2", "u", "XB-20261202-0001 91370100MA3C0000X1", now=0) == [WAY]


async def test_a_stranger_with_a_companys_uscc_and_name_gets_only_the_way_in_a_group(
        app: App) -> None:
    """The USCC and name of a verified company, typed into a group by someone else: the bot
    says how to reach it privately and nothing of the company; no binding, no form is begun."""
    from plugins.chat import chat

    runtime = get_runtime()
    uscc, company = fake_uscc(random.Random(77)), "临沂群聊陌生人测试有限公司"
    clerk, stranger = Account("qq", "310101"), Account("qq", "310102")
    await bind_verified(runtime, clerk, uscc, company)
    async with app.test_matcher(chat) as ctx:
        bot = ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter), self_id=str(SELF_ID))
        claim = mention(4601, 310102, f"绑定 {uscc} {company} 电话 13812345678")
        ctx.receive_event(bot, claim)
        ctx.should_call_send(claim, f"{RECALL}\n\n{WAY}", result={"message_id": 1},
                             at_sender=True)
        for text in ("我的订单", f"查询 {uscc}", "同意", uscc):  # quiet: told already
            ctx.receive_event(bot, mention(4601, 310102, text))
    assert not await runtime.desk.members.bound(stranger)
    assert not await runtime.dialogue.has_form(stranger)
    # privately the stranger starts where anyone starts; the clerk is as before
    assert "统一社会信用代码" in await say(runtime, stranger, "我的订单")
    assert company in await say(runtime, clerk, "帮助")
