"""The chat channels an applicant can reach the bot through, and each one's sending rules, as
data: what the bot may send to an account now, and how.

OneBot (an unofficial QQ client) and the Console may send anything at any time. The official
platforms tie a reply to the user's own message: QQ's bot API accepts a few replies to one
message within about an hour (a ``msg_id`` passed back), WeChat's 客服消息 any within 48 hours
of the user's last action; later, only a limited "proactive" push (QQ) or a template message
the account has set up (WeChat) gets through. The chat outbox reads these rules to choose a
path for each notice, or to hold it for the applicant's next message.

The numbers are the platforms' terms as of writing, declared here once; ``[channels]`` in
bot.toml overrides them when a platform changes its terms (``configured``).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bot.config import ChannelsSection
from bot.domain.masking import mask_personal_numbers
from bot.services.messages import Account


@dataclass(frozen=True)
class ChannelRules:
    platform: str  # Account.platform of this channel's accounts
    name: str  # what people call it (历史, docs)
    reply_window: timedelta | None  # how long after a user's message; None: always
    replies_per_message: int | None  # replies one user message allows; None: no limit
    proactive_per_month: int | None  # pushes outside the window per account; None: no limit
    images: bool  # a picture can be sent (else its caption, and a link where there is one)
    push_name: str = "主动推送"  # what a message outside the window is called (历史)
    # a push only says that a notice waits (WeChat's template message): the notice itself
    # still waits for their next message
    push_summary: bool = False
    # how someone who @-mentions the bot in a group starts a private chat with it there
    private_hint: str = "私聊我"

    @property
    def always_open(self) -> bool:
        return self.reply_window is None


CHANNELS: tuple[ChannelRules, ...] = (
    ChannelRules("console", "本机终端", None, None, None, images=False),
    ChannelRules("qq", "QQ（OneBot）", None, None, None, images=True,
                 private_hint="加我为 QQ 好友后私聊我"),
    # QQ 机器人开放平台, C2C private chat: 5 passive replies per message within 60 minutes;
    # proactive C2C messages are counted per user and month by the platform
    ChannelRules("qqbot", "QQ 官方机器人", timedelta(minutes=60), 5, 4, images=True,
                 private_hint="点我的头像，选「发消息」私聊我"),
    # 微信公众号: 客服消息 within 48 hours of the user's last message, at most 20 for one
    # message of theirs (errcode 45047 beyond); after that only a template message saying a
    # notice waits (when the centre configured one: else the push is refused), not limited
    ChannelRules("wechat", "微信公众号", timedelta(hours=48), 20, None, images=True,
                 push_name="模板消息", push_summary=True),
)

BY_PLATFORM = {channel.platform: channel for channel in CHANNELS}


def rules_of(platform: str) -> ChannelRules:
    """The rules of ``platform``; an unknown one is treated as always open (a test's)."""
    return BY_PLATFORM.get(platform) or ChannelRules(platform, platform, None, None, None, True)


def rules_in(rules: Mapping[str, ChannelRules], platform: str) -> ChannelRules:
    """``platform``'s rules in a configured table (``configured``)."""
    return rules.get(platform) or rules_of(platform)


def configured(section: ChannelsSection) -> Mapping[str, ChannelRules]:
    """The table with bot.toml's ``[channels]`` terms put over it (an unset term: the table's)."""
    rules = dict(BY_PLATFORM)
    for platform, terms in section.terms().items():
        base = rules[platform]
        window = (timedelta(minutes=terms.reply_window_minutes)
                  if terms.reply_window_minutes is not None else base.reply_window)
        rules[platform] = replace(
            base, reply_window=window,
            replies_per_message=_or(terms.replies_per_message, base.replies_per_message),
            proactive_per_month=_or(terms.proactive_per_month, base.proactive_per_month))
    return rules


def _or(value: int | None, default: int | None) -> int | None:
    return default if value is None else value


@dataclass(frozen=True)
class Standing:
    """Where a windowed channel stands with one account (``chat_reach``)."""

    last_message_at: datetime | None = None
    last_ref: str | None = None  # the platform's id of their last message
    replies_used: int = 0  # against that message
    pushes_used: int = 0  # this month


def month_of(at: datetime) -> str:
    """The calendar month pushes are counted in ("2026-12"), in UTC: later than Beijing's, so
    a new allowance is never assumed before the platform grants it."""
    return f"{at:%Y-%m}"


def next_month(at: datetime) -> datetime:
    first = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


class Delivery(StrEnum):
    """How a notice to a person went out (``outgoing_chat.path``), as 历史 shows it."""

    OPEN = "open"  # an always-open channel: sent
    REPLY = "reply"  # inside the window, as a reply to the user's last message
    PUSH = "push"  # outside the window: the platform's proactive message / template message
    HELD = "held"  # no path open: waits for the user's next message (and is mailed)
    SUMMARY = "summary"  # a summary push told them; the notice waits for their next message
    NEXT = "next"  # delivered with the answer to the user's next message


WAITING = frozenset({Delivery.HELD, Delivery.SUMMARY})  # waiting for the user's next message

# 历史's words for each path: {channel} is the channel's name, {push} its push's
PATH_WORDS: Mapping[Delivery, str] = {
    Delivery.OPEN: "已发送（{channel}）",
    Delivery.REPLY: "已发送（{channel}，回复）",
    Delivery.PUSH: "已发送（{channel}，{push}）",
    Delivery.HELD: "待下次消息",
    Delivery.SUMMARY: "已发{push}提醒，待下次消息",
    Delivery.NEXT: "已发送（{channel}，随下次消息）",
}
NOT_YET = "待发送"  # queued, not delivered yet (the platform offline, or not tried yet)
EXPIRED = "已过期"  # dropped: undelivered too long, or held past [chat] held_days
MAILED = "已发邮件"


def path_of(delivery: Delivery, via: str, recipient_platform: str) -> str:
    """``outgoing_chat.path``: the delivery, and the platform used when it is not the
    recipient's own (an account joined with it)."""
    return delivery.value if via == recipient_platform else f"{delivery.value}:{via}"


def notice_preview(message: Mapping[str, object], length: int = 40) -> str:
    """A queued notice (``outgoing_chat.message``) in a few words for 历史: 「…」, or the
    picture's caption; personal numbers masked."""
    if "text" not in message:
        return f"（图片：{message.get('alt', '')}）"
    text = mask_personal_numbers(str(message["text"])).replace("\n", " ")
    return f"「{text[:length]}{'…' if len(text) > length else ''}」"


def delivery_words(path: str | None, platform: str, *, dropped: bool, mailed: bool,
                   rules: Mapping[str, ChannelRules] = BY_PLATFORM) -> str:
    """How 历史 says a notice went out: its path in words, 已过期 when dropped, and 已发邮件
    where the notice was mailed as well."""
    delivery, _, via = (path or "").partition(":")
    platform = via or platform
    channel = rules_in(rules, platform)
    if dropped:
        words = EXPIRED
    elif path is None:
        words = NOT_YET
    else:
        words = PATH_WORDS[Delivery(delivery)].format(channel=channel.name, push=channel.push_name)
    return f"{words}，{MAILED}" if mailed else words


@dataclass(frozen=True)
class OpenPath:
    account: Account  # whom to send to (the recipient, or an account joined with it)
    delivery: Delivery  # OPEN, REPLY or PUSH
    reply_to: str | None = None  # REPLY: the user's last message id


def open_paths(accounts: Sequence[Account], standing: Mapping[Account, Standing],
               rules: Mapping[str, ChannelRules], now: datetime) -> list[OpenPath]:
    """Every path the platforms allow now to one person (``accounts``: theirs, joined, the
    recipient first), best first: an always-open channel, a reply inside a window with
    replies left, a push with this month's allowance left. Empty: hold the notice."""
    def rules_for(account: Account) -> ChannelRules:
        return rules_in(rules, account.platform)

    found: list[OpenPath] = [OpenPath(a, Delivery.OPEN) for a in accounts
                             if rules_for(a).always_open]
    for account in accounts:
        channel, known = rules_for(account), standing.get(account, Standing())
        if channel.always_open or known.last_message_at is None:
            continue
        assert channel.reply_window is not None
        within = now - known.last_message_at < channel.reply_window
        left = (channel.replies_per_message is None
                or known.replies_used < channel.replies_per_message)
        if within and left:
            found.append(OpenPath(account, Delivery.REPLY, known.last_ref))
    for account in accounts:
        channel, known = rules_for(account), standing.get(account, Standing())
        if not channel.always_open and (channel.proactive_per_month is None
                                        or known.pushes_used < channel.proactive_per_month):
            found.append(OpenPath(account, Delivery.PUSH))
    return found


def may_push_later(accounts: Sequence[Account], rules: Mapping[str, ChannelRules]) -> bool:
    """Whether a new month's allowance could carry a held notice to one of ``accounts`` (a
    summary push never carries it)."""
    return any((r := rules_in(rules, a.platform)).proactive_per_month != 0
               and not r.push_summary for a in accounts)
