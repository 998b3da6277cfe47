"""The chat channels an applicant can reach the bot through, and each one's sending rules, as
data: what the bot may send to an account now, and how.

OneBot (an unofficial QQ client) and the Console may send anything at any time. The official
platforms tie a reply to the user's own message: QQ's bot API accepts a few replies to one
message within about an hour (a ``msg_id`` passed back), WeChat's 客服消息 any within 48 hours
of the user's last action; later, only a limited "proactive" push (QQ) or a template message
the account has set up (WeChat) gets through. The chat outbox reads these rules to choose a
path for each notice, or to hold it for the applicant's next message.
"""

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class ChannelRules:
    platform: str  # Account.platform of this channel's accounts
    name: str  # what people call it (历史, docs)
    reply_window: timedelta | None  # how long after a user's message; None: always
    replies_per_message: int | None  # replies one user message allows; None: no limit
    proactive_per_month: int | None  # pushes outside the window per account; None: no limit
    images: bool  # a picture can be sent (else its caption, and a link where there is one)

    @property
    def always_open(self) -> bool:
        return self.reply_window is None


CHANNELS: tuple[ChannelRules, ...] = (
    ChannelRules("console", "本机终端", None, None, None, images=False),
    ChannelRules("qq", "QQ（OneBot）", None, None, None, images=True),
    # QQ 机器人开放平台, C2C private chat: 5 passive replies per message within 60 minutes;
    # proactive C2C messages are counted per user and month by the platform
    ChannelRules("qqbot", "QQ 官方机器人", timedelta(minutes=60), 5, 4, images=True),
    # 微信公众号: 客服消息 within 48 hours of the user's last message; after that only a
    # template message (when the centre configured one)
    ChannelRules("wechat", "微信公众号", timedelta(hours=48), None, 0, images=True),
)

BY_PLATFORM = {channel.platform: channel for channel in CHANNELS}


def rules_of(platform: str) -> ChannelRules:
    """The rules of ``platform``; an unknown one is treated as always open (a test's)."""
    return BY_PLATFORM.get(platform) or ChannelRules(platform, platform, None, None, None, True)
