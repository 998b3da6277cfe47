"""A channel's rules say which paths are open to a person now: the best first, none when the
notice must wait for their next message; bot.toml's [channels] changes the numbers."""

from datetime import UTC, datetime, timedelta

from bot.config import ChannelsSection, ChannelTerms
from bot.services.channels import (
    BY_PLATFORM,
    Delivery,
    Standing,
    configured,
    delivery_words,
    month_of,
    next_month,
    open_paths,
)
from bot.services.messages import Account

NOW = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)
QQBOT, WECHAT, ONEBOT = Account("qqbot", "A"), Account("wechat", "B"), Account("qq", "1")


def paths(accounts: list[Account], standing: dict[Account, Standing],
          rules: dict = BY_PLATFORM) -> list[tuple[str, Delivery, str | None]]:
    return [(str(p.account), p.delivery, p.reply_to)
            for p in open_paths(accounts, standing, rules, NOW)]


def test_inside_the_window_a_reply_quotes_the_last_message_and_a_push_is_the_fallback() -> None:
    talked = Standing(NOW - timedelta(minutes=59), "m1", replies_used=4)
    assert paths([QQBOT], {QQBOT: talked}) == [("qqbot:A", Delivery.REPLY, "m1"),
                                                ("qqbot:A", Delivery.PUSH, None)]


def test_no_reply_after_the_window_or_the_last_reply_and_no_push_past_the_allowance() -> None:
    late = Standing(NOW - timedelta(minutes=61), "m1", pushes_used=3)
    spent = Standing(NOW - timedelta(minutes=1), "m1", replies_used=5, pushes_used=4)
    assert paths([QQBOT], {QQBOT: late}) == [("qqbot:A", Delivery.PUSH, None)]
    assert paths([QQBOT], {QQBOT: spent}) == []


def test_an_always_open_account_of_the_same_person_comes_first() -> None:
    talked = Standing(NOW - timedelta(minutes=1), "m1")
    assert paths([WECHAT, ONEBOT], {WECHAT: Standing(NOW - timedelta(hours=1))})[0] == (
        "qq:1", Delivery.OPEN, None)
    assert paths([QQBOT, WECHAT], {WECHAT: talked})[0] == ("wechat:B", Delivery.REPLY, "m1")


def test_bot_toml_changes_a_platforms_terms_and_keeps_the_rest() -> None:
    rules = configured(ChannelsSection(
        qqbot=ChannelTerms(reply_window_minutes=30, proactive_per_month=0),
        wechat=ChannelTerms(proactive_per_month=0)))
    assert rules["qqbot"].reply_window == timedelta(minutes=30)
    assert rules["qqbot"].replies_per_message == 5  # the table's
    assert paths([QQBOT], {QQBOT: Standing(NOW - timedelta(minutes=31), "m")}, rules) == []
    assert paths([WECHAT], {}) == [("wechat:B", Delivery.PUSH, None)]  # a template, if set up
    assert paths([WECHAT], {}, rules) == []
    assert configured(ChannelsSection()) == BY_PLATFORM


def test_history_words_name_the_channel_and_the_path() -> None:
    assert delivery_words("summary", "wechat", dropped=False, mailed=False) == (
        "已发模板消息提醒，待下次消息")
    assert delivery_words("push", "qqbot", dropped=False, mailed=False) == (
        "已发送（QQ 官方机器人，主动推送）")
    assert delivery_words("next:wechat", "qqbot", dropped=False, mailed=True) == (
        "已发送（微信公众号，随下次消息），已发邮件")  # through an account joined with it
    assert delivery_words("held", "qqbot", dropped=True, mailed=True) == "已过期，已发邮件"
    assert delivery_words(None, "qq", dropped=False, mailed=False) == "待发送"


def test_pushes_are_counted_by_calendar_month() -> None:
    assert month_of(NOW) == "2026-12"
    assert next_month(NOW) == datetime(2027, 1, 1, tzinfo=UTC)
