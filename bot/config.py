"""``bot.toml``: the one configuration file, read into typed settings.

Paths in the file are relative to the file's own directory, so a staging and a live instance
each point at their own data. Secrets may come from the environment instead of the file:
``CADESK_ONEBOT_ACCESS_TOKEN``, ``CADESK_DATABASE_URL``, ``CADESK_SMTP_PASSWORD``,
``CADESK_IMAP_PASSWORD``, ``CADESK_HEALTH_TOKEN``, ``CADESK_QQBOT_SECRET``,
``CADESK_WECHAT_APPSECRET``, ``CADESK_WECHAT_TOKEN`` and ``CADESK_WECHAT_ENCODING_AES_KEY``.
"""

import base64
import binascii
import ipaddress
import os
import tomllib
from datetime import timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from string import Formatter
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.domain.fees import years_of
from bot.domain.forms import CERTIFICATE
from bot.domain.lifecycle import OrderType
from bot.domain.opening_hours import OpeningHours, parse_period
from bot.domain.retention import RetentionTerms
from bot.domain.scans import ScanRules

DEFAULT_CONFIG = "bot.toml"


class _Section(BaseModel):
    """Each field is documented by the docstring under it (read into its ``description``);
    bot.toml shows every field with its comment, and a test holds the two together."""

    # a typo in bot.toml is an error, not a silence
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class BotSection(_Section):
    """``[bot]``: which chats the bot speaks in, and where it keeps its data."""

    adapters: list[Literal["console", "onebot", "qqbot", "wechat"]] = ["console"]
    """"console": chat in the terminal (for trying it out); "onebot": QQ through a OneBot v11
    implementation (NapCat, Lagrange, ...) connecting to ws://HOST:PORT/onebot/v11/ws;
    "qqbot": QQ's official bot platform ([qqbot]), its events posted to /qq/webhook;
    "wechat": a WeChat official account (微信公众号, see [wechat]) calling
    http(s)://HOST:PORT/wechat/callback."""
    data_dir: Path = Path("data")
    """The database (SQLite by default) and the uploaded scans. It holds ID cards: never commit
    it."""
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"] = "INFO"
    """The least severe log line written."""
    timezone: str = "Asia/Shanghai"
    """The time zone of the dates people read (order lists, mails, reminders)."""
    nickname: str = "cadesk"
    """The bot's name in the chat."""


class ServerSection(_Section):
    """``[server]``: where the bot listens (OneBot reverse WebSocket, the WeChat callback,
    agents, CRL, health)."""

    host: str = "127.0.0.1"
    """The address listened on."""
    port: int = Field(8080, ge=1, le=65535)
    """The port listened on; give staging and live different ports."""
    health_token: str = ""
    """/healthz and /metrics answer loopback alone, and elsewhere whoever sends
    "Authorization: Bearer TOKEN" with this token; empty: loopback only. Better:
    CADESK_HEALTH_TOKEN."""


class OneBotSection(_Section):
    """``[onebot]``: the connecting OneBot clients."""

    access_token: str = ""
    """Required of clients when set ("Authorization: Bearer TOKEN"); better:
    CADESK_ONEBOT_ACCESS_TOKEN."""


class QqBotSection(_Section):
    """``[qqbot]``: the bot registered on QQ's official bot platform (q.qq.com), used when
    [bot] adapters lists "qqbot"; the platform posts its events to https://HOST/qq/webhook."""

    app_id: str = ""
    """The bot's AppID (开发设置)."""
    secret: str = ""
    """The bot's AppSecret: it signs the webhook events and fetches the API token. Better:
    CADESK_QQBOT_SECRET."""
    api_base: str = "https://api.bot.qq.com/"
    """The platform's OpenAPI (messages, rich media); a test points it at a local server."""
    auth_base: str = "https://api.bot.qq.com/app/getAppAccessToken"
    """Where the API token is fetched with AppID and AppSecret."""
    media_hosts: list[str] = []
    """Hosts ("host" or "host:port") whose attachment URLs are fetched even at a private or
    loopback address; any other attachment host must be public. QQ's own media servers are
    public: leave it empty (a test lists its local stand-in here)."""


class WeChatSection(_Section):
    """``[wechat]``: the WeChat official account (微信公众号), when [bot] adapters lists
    "wechat". Its 服务器配置 URL is this bot's /wechat/callback."""

    appid: str = ""
    """The account's AppID (开发者ID, wx...)."""
    appsecret: str = ""
    """The AppSecret (开发者密码); better: CADESK_WECHAT_APPSECRET."""
    token: str = ""
    """The Token of 服务器配置, which signs every callback; better: CADESK_WECHAT_TOKEN."""
    encoding_aes_key: str = ""
    """The EncodingAESKey (43 characters) of 安全模式: messages must then come encrypted;
    empty: 明文模式. Better: CADESK_WECHAT_ENCODING_AES_KEY."""
    api_base: str = "https://api.weixin.qq.com"
    """Where the WeChat API is called (access token, 客服消息, template messages, media); the
    one place besides the chat platforms' own image URLs that the bot fetches images from."""
    notice_template_id: str = ""
    """A template message (模板消息) that tells a person outside the 48 hours of 客服消息 that a
    notice waits for them; empty: none is sent (the notice waits for their next message)."""
    notice_template_data: dict[str, str] = {
        "thing1": "{summary}", "thing2": "回复任意消息查看详情", "time3": "{time}"}
    """The template's fields as its 模板详情 names them; {summary} (the notice's first line,
    cut to 20 characters), {count} (notices waiting) and {time} are filled in."""

    @field_validator("notice_template_data")
    @classmethod
    def _template_placeholders(cls, data: dict[str, str]) -> dict[str, str]:
        for text in data.values():
            named = {name for _, name, _, _ in Formatter().parse(text) if name is not None}
            if unknown := named - {"summary", "count", "time"}:
                raise ValueError(f"unknown placeholders {sorted(unknown)}; known: "
                                 "['count', 'summary', 'time']")
        return data

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, key: str) -> str:
        if key and not _is_aes_key(key):
            raise ValueError("an EncodingAESKey is 43 characters of base64 (32 bytes)")
        return key

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, url: str) -> str:
        if not url.startswith(("https://", "http://")):
            raise ValueError("give an http(s) URL, e.g. https://api.weixin.qq.com")
        return url.rstrip("/")


def _is_aes_key(key: str) -> bool:
    try:
        return len(key) == 43 and len(base64.b64decode(key + "=", validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


class DatabaseSection(_Section):
    """``[database]``."""

    url: str = ""
    """SQLAlchemy URL, e.g. "postgresql+asyncpg://user:pass@host/db"; empty: SQLite file
    cadesk.db in the data directory. CADESK_DATABASE_URL overrides it."""


class ScansSection(_Section):
    """``[scans]``: limits for the scans of the 附件 (jpg/jpeg/bmp/gif, png/heic kept as JPEG;
    the bytes decide, not the name)."""

    max_megabytes: float = Field(10, gt=0)
    """The largest scan taken, also while it downloads."""
    min_short_side: int = Field(600, ge=1)
    """Pixels of the shorter side at least."""
    min_long_side: int = Field(800, ge=1)
    """Pixels of the longer side at least."""
    max_megapixels: float = Field(60, gt=0)
    """Checked before decoding: refuses decompression bombs."""
    download_timeout_seconds: float = Field(20, gt=0)
    """How long a chat image may take to download."""

    def rules(self) -> ScanRules:
        return ScanRules(max_bytes=int(self.max_megabytes * 1024 * 1024),
                         min_short_side=self.min_short_side, min_long_side=self.min_long_side,
                         max_pixels=int(self.max_megapixels * 1_000_000))


class DialogueSection(_Section):
    """``[dialogue]``: the applicant's forms."""

    idle_minutes: float = Field(30, gt=0)
    """After this long without an answer, the next message is not taken as an answer: the form
    waits for 继续."""
    join_code_minutes: float = Field(10, gt=0, le=60)
    """How long a 渠道绑定码 (「绑定其他渠道」: the same person on another channel) stays valid;
    it is used once."""


class FormsSection(_Section):
    """``[forms]``: the paper forms 模板 sends (to print, stamp, sign and photograph); each empty
    one is the built-in form (bot/documents/layouts.py)."""

    seal_collection: Path | None = None
    """The centre's own 信息印章采集表, a PDF, instead of the built-in one."""
    authorisation: Path | None = None
    """The centre's own 单位授权书及诚信承诺书, a PDF."""
    pin_reset: Path | None = None
    """The centre's own CA数字证书密码重置申请表, a PDF: then sent blank after the unlock
    form's answers, with those answers to copy onto it, instead of the built-in filled in."""

    def own(self, key: str) -> Path | None:
        """The centre's PDF for the paper form ``key``, if it has one."""
        return getattr(self, key, None)

class CentreSection(_Section):
    """``[centre]``: the service centre, as applicants are told how to reach it (menu, pickup
    notices, every 「请联系…」)."""

    name: str = "CA数字证书服务中心"
    """The centre's name as applicants read it."""
    phone: str = ""
    """The service telephone; empty: not shown."""
    qq: str = ""
    """The service QQ (number or group) for questions; empty: not shown."""
    address: str = ""
    """The service hall's address (where certificates are picked up); empty: not shown."""
    opening_days: list[int] = [1, 2, 3, 4, 5]
    """The days the hall and the technicians work, 1 = Monday … 7 = Sunday."""
    opening_hours: list[str] = ["08:30-12:00", "13:30-17:30"]
    """The working periods of each of those days, "HH:MM-HH:MM", in order."""
    hours_note: str = "法定节假日除外"
    """Shown after the hours, e.g. holidays; empty: nothing."""
    reply_minutes: int = Field(30, ge=1)
    """Within working hours, a 人工客服 request is promised an answer within this many
    minutes."""
    pickup_notes: str = "请经办人携带本人身份证原件和单位授权书到服务大厅领取。"
    """What the 待自取 notice tells the applicant to bring (the address and hours follow)."""
    city: str = "临沂"
    """The city the centre serves: the default answer of 项目所属地区."""

    @field_validator("opening_days")
    @classmethod
    def _days(cls, days: list[int]) -> list[int]:
        if not days or any(not 1 <= d <= 7 for d in days):
            raise ValueError("name at least one day, each 1 (Monday) … 7 (Sunday)")
        return sorted(set(days))

    @field_validator("opening_hours")
    @classmethod
    def _periods(cls, periods: list[str]) -> list[str]:
        parsed = [parse_period(p) for p in periods]  # a ValueError names the bad one
        if not parsed or any(a[1] > b[0] for a, b in pairwise(parsed)):
            raise ValueError('give at least one period, in order, e.g. ["08:30-12:00"]')
        return periods

    @field_validator("city")
    @classmethod
    def _city(cls, city: str) -> str:
        regions = CERTIFICATE.field("region").choices
        if regions and city not in regions:
            raise ValueError(f"not one of the 项目所属地区 choices: {'、'.join(regions)}")
        return city

    def hours(self) -> OpeningHours:
        return OpeningHours(tuple(self.opening_days),
                            tuple(parse_period(p) for p in self.opening_hours), self.hours_note)


# What a FAQ answer may name in braces, filled in from [centre] and [fees].
FAQ_PLACEHOLDERS = frozenset({"name", "phone", "qq", "address", "hours", "contact", "fees",
                              "pickup"})


class FaqEntry(_Section):
    """``[[faq]]``: a question answered without a person (keyword match), one table each."""

    keywords: list[str] = Field(min_length=1)
    """A message containing any of these (letters in any case) gets the answer."""
    answer: str
    """The answer; {name} {phone} {qq} {address} {hours} {contact} {fees} {pickup} are filled
    in from [centre] and [fees]."""

    @field_validator("answer")
    @classmethod
    def _placeholders(cls, answer: str) -> str:
        named = {name for _, name, _, _ in Formatter().parse(answer) if name is not None}
        unknown = named - FAQ_PLACEHOLDERS
        if unknown:
            raise ValueError(f"unknown placeholders {sorted(unknown)}; known: "
                             f"{sorted(FAQ_PLACEHOLDERS)}")
        return answer


DEFAULT_FAQ = [
    FaqEntry(keywords=["多少钱", "费用", "价格", "收费", "价钱", "怎么收"],
             answer="{fees}\n审核通过后会在这里发支付二维码。发送「新办证书」开始办理。"),
    FaqEntry(keywords=["地址", "在哪", "怎么走", "大厅", "位置"],
             answer="{name}地址：{address}\n工作时间：{hours}"),
    FaqEntry(keywords=["几点", "营业时间", "工作时间", "上班", "下班", "开门", "周末"],
             answer="工作时间：{hours}\n在这里办理不限时间，提交后技术人员会在工作时间审核。"),
    FaqEntry(keywords=["材料", "需要什么", "要什么", "准备什么", "带什么", "资料"],
             answer="新办/补办证书：信息印章采集表、经办人身份证复印件、单位授权书及诚信承诺书、"
                    "营业执照复印件，都要加盖单位公章，拍照或扫描后在填表时逐张发送；"
                    "发送「模板」可获取要打印的空白表格。\n"
                    "解锁：CA数字证书密码重置申请表、营业执照复印件、经办人身份证复印件。\n"
                    "填表时每一步都会说明要求。"),
    FaqEntry(keywords=["电话", "联系方式", "qq", "联系你们"],
             answer="{contact}"),
    FaqEntry(keywords=["人工", "客服", "真人"],
             answer="需要技术人员帮忙，请发送「人工客服 您的问题」，例如「人工客服 UKEY 插上没有"
                    "反应」，我们会转告技术人员。也可以直接联系{contact}"),
]


class StaffSection(_Section):
    """``[staff]``: who reviews orders, and where they are told."""

    technicians: list[str] = []
    """Accounts as "platform:user id", e.g. "qq:10001"; the Console's own user is
    "console:user"."""
    group: str = ""
    """"qq:GROUP_ID": staff notices go there (personal numbers masked); empty: to each
    technician privately."""
    approvals_required: int = Field(1, ge=1, le=5)
    """How many different technicians must approve an order: 2 for four-eyes review."""

    def is_technician(self, account: str) -> bool:
        return account in self.technicians


class PaymentSection(_Section):
    """``[payment]``."""

    url_template: str = "https://pay.example.invalid/ca?order={number}&amount={amount}"
    """The URL the payment QR code encodes; {number} and {amount} (yuan, two decimals) are
    filled in."""


class EmailSection(_Section):
    """``[email]``: notices by e-mail to applicants who gave an address (SMTP)."""

    enabled: bool = False
    """Send e-mail at all."""
    host: str = "localhost"
    """The SMTP server."""
    port: int = Field(587, ge=1, le=65535)
    """The SMTP server's port."""
    security: Literal["starttls", "tls", "none"] = "starttls"
    """"starttls", "tls" (implicit, usually port 465) or "none"."""
    ca_file: Path | None = None
    """A private CA's certificate (PEM); unset: the system's CAs."""
    username: str = ""
    """The SMTP login; empty: none."""
    password: str = ""
    """The SMTP password; better: CADESK_SMTP_PASSWORD."""
    from_address: str = "cadesk@example.invalid"
    """The sender's address."""
    from_name: str = "CA证书服务"
    """The sender's name."""
    timeout_seconds: float = Field(20, gt=0)
    """How long one conversation with the server may take."""
    max_attempts: int = Field(6, ge=1)
    """A mail is given up after this many failed sends."""
    retry_seconds: float = Field(30, gt=0)
    """The wait after a failed send, doubled after every further failure."""
    poll_seconds: float = Field(5, gt=0)
    """How often the outbox looks for due mail (it is also woken by new mail)."""


class ChatSection(_Section):
    """``[chat]``: notices in chat (approvals, rejections, staff notices), kept in the database
    until delivered, so a dropped QQ connection or a restart loses none."""

    retry_seconds: float = Field(5, gt=0)
    """The wait after a failed delivery, doubled after every further failure, up to
    max_retry_seconds; a reconnecting bot retries at once."""
    max_retry_seconds: float = Field(300, gt=0)
    """The longest wait between two attempts."""
    max_age_hours: float = Field(72, gt=0)
    """A notice still undelivered after this long is dropped and logged (the applicant's
    e-mail, 我的订单 and 查询 still tell them). A notice held for the applicant's next message
    (no path open on their channel) waits held_days instead."""
    held_days: float = Field(30, gt=0)
    """How long a notice that no path the platform allows can deliver now waits for the
    applicant's next message (mailed at once where they gave an address); then it is dropped
    and logged, and 历史 says 已过期."""


class ChannelTerms(_Section):
    """A platform's sending terms, put over the built-in table (bot/services/channels.py);
    a term left out keeps the table's value."""

    reply_window_minutes: float | None = Field(None, gt=0)
    """How long after the user's last message a reply may be sent."""
    replies_per_message: int | None = Field(None, ge=0)
    """How many replies one user message allows."""
    proactive_per_month: int | None = Field(None, ge=0)
    """How many messages outside the window (QQ's proactive messages, WeChat's template
    messages) one account may be sent per calendar month; 0: none."""


class ChannelsSection(_Section):
    """``[channels]``: the official platforms' sending terms, when a platform has changed them
    since cadesk's table was written (docs/channels.md); unset: the table's."""

    qqbot: ChannelTerms | None = None
    """QQ's official bot (C2C): { reply_window_minutes, replies_per_message,
    proactive_per_month }; the table's: 60 minutes, 5 replies, 4 proactive messages a month."""
    wechat: ChannelTerms | None = None
    """The WeChat official account: the table's: 48 hours (2880 minutes), replies unlimited,
    template messages (a reminder only: the notice waits for their next message) unlimited
    where [wechat] sets a template up."""

    def terms(self) -> dict[str, ChannelTerms]:
        """The platforms given terms, by platform."""
        return {platform: terms for platform in ("qqbot", "wechat")
                if (terms := getattr(self, platform)) is not None}


class MailboxSection(_Section):
    """``[mailbox]``: the unlock mailbox (IMAP): read, filed, answered; never deleted from."""

    enabled: bool = False
    """Read the mailbox at all."""
    host: str = "localhost"
    """The IMAP server."""
    port: int = Field(993, ge=1, le=65535)
    """The IMAP server's port."""
    security: Literal["tls", "none"] = "tls"
    """Implicit TLS (993), or "none" for a server on this machine only."""
    ca_file: Path | None = None
    """A private CA's certificate (PEM); unset: the system's CAs."""
    username: str = ""
    """The IMAP login."""
    password: str = ""
    """The IMAP password; better: CADESK_IMAP_PASSWORD."""
    address: str = ""
    """The mailbox's own address, never answered; empty: the username."""
    folder: str = "INBOX"
    """The folder read."""
    human_folder: str = "待人工处理"
    """What the bot cannot file goes here, for a person to read."""
    processed_folder: str = ""
    """Where filed mail is moved; empty: it stays, flagged \\Seen and CadeskFiled."""
    poll_seconds: float = Field(60, gt=0)
    """How often the mailbox is read."""
    max_message_megabytes: float = Field(30, gt=0)
    """Larger mail is not downloaded; it goes to human_folder."""
    max_attachment_megabytes: float = Field(10, gt=0)
    """Larger attachments are not taken as materials."""
    replies_per_sender_per_hour: int = Field(3, ge=0)
    """Automatic replies to one sender at most, against mail loops (user+tag@ counts as
    user@)."""
    replies_per_domain_per_hour: int = Field(20, ge=0)
    """Automatic replies to all the senders of one domain at most: a stranger writing as many
    addresses of one domain cannot make the bot mail it."""

    @property
    def own_address(self) -> str:
        return (self.address or self.username).lower()


class AgentsSection(_Section):
    """``[agents]``: key agents beside the UKEYs (see docs/key-agent.md)."""

    enabled: bool = False
    """Needs the bot's HTTP server: agents connect to [server]; starts it even on the
    Console."""
    public_url: str = ""
    """What agents connect to, e.g. "https://ca.example.com"; empty: http://[server]
    host:port. Also the address 模板 names for the blank PDFs (none named while empty)."""
    ukey_module: str = ""
    """The UKEY vendor's PKCS#11 driver on the applicant's PC (e.g. a DLL path), written into
    the pair command the chat gives; empty: the command asks the clerk to fill it in."""
    pairing_code_minutes: float = Field(10, gt=0)
    """A 绑定密钥代理 code lives this long and works once."""
    job_lifetime_minutes: float = Field(30, gt=0)
    """A job not done by then expires."""
    so_master_file: Path | None = None
    """The master secret the SO PINs derive from (>= 32 random bytes); or CADESK_SO_MASTER
    (hex)."""


class PkiSection(_Section):
    """``[pki]``: the CA and the certificates on the UKEYs (docs/pki.md, docs/certificates.md)."""

    enabled: bool = False
    """Needs [agents]: UKEYs are personalised and renewed through agents."""
    ca_name: str = "cadesk CA"
    """The name of the embedded CA made in DATA_DIR/pki on first start."""
    ca_cert_file: Path | None = None
    """An existing CA's certificate (PEM) instead of the embedded CA."""
    ca_key_file: Path | None = None
    """That CA's key (PEM; an encrypted key's password in CADESK_CA_KEY_PASSWORD)."""
    ca_token_module: str = ""
    """Or the CA key on a PKCS#11 token (HSM or office UKEY): the module, with ca_cert_file.
    Its user PIN in CADESK_CA_TOKEN_PIN. The three ca_token/ca_key settings go together."""
    ca_token_label: str = ""
    """The token's label."""
    ca_key_label: str = ""
    """The CA key's label on the token."""
    term_months: int = Field(12, ge=1, le=60)
    """A renewal adds this to the current expiry."""
    crl_url: str = ""
    """Named in every certificate; empty: the public URL + /pki/crl."""
    crl_hours: float = Field(1, gt=0)
    """The CRL is re-signed on every change and at least this often."""
    reminder_days: list[int] = [30, 7, 1]
    """Expiry reminders, days before."""
    reminder_check_minutes: float = Field(60, gt=0)
    """How often due reminders are looked for."""


class RetentionSection(_Section):
    """``[retention]``: personal information kept only as long as its purpose needs (PIPL art.
    19); see docs/operations.md#retention for why each term. Only finished (已完成/已取消)
    orders are touched; certificates and the CRL history are the CA's record and are kept."""

    enabled: bool = True
    """Run the purge (once at start, then every check_hours); false: nothing is ever deleted
    by age (删除我的资料 still works)."""
    scan_days: int = Field(180, ge=1)
    """Days after an order finished that its scans (ID cards, licences, 授权书) are deleted
    from disk and database: long enough for a dispute or the year's audit."""
    mask_days: int = Field(365, ge=1)
    """Days after an order finished that its ID numbers and mobiles are reduced to the masked
    form (370***********123X, 138****5678); the order itself stays readable."""
    draft_days: int = Field(30, ge=1)
    """Days a form may lie unfinished (no answer at all) before it and its scans are dropped."""
    outbox_days: int = Field(30, ge=1)
    """Days a sent (or given-up) mail or chat notice is kept before its row, which quotes the
    applicant's texts, is deleted; unsent ones are never deleted. A QQ-official or WeChat
    account's record (its last message's time and id, the month's pushes) goes after as many
    days of silence, and never within 32 days."""
    rejected_days: int = Field(90, ge=1)
    """Days a rejected order may wait for its correction (修改): then it is cancelled, the
    applicant told, and its data follows scan_days and mask_days like any finished order."""
    check_hours: float = Field(24, gt=0)
    """How often the purge runs."""

    def terms(self) -> RetentionTerms:
        return RetentionTerms(scans=timedelta(days=self.scan_days),
                              numbers=timedelta(days=self.mask_days),
                              drafts=timedelta(days=self.draft_days),
                              outbox=timedelta(days=self.outbox_days),
                              rejected=timedelta(days=self.rejected_days))


class ClusterSection(_Section):
    """``[cluster]``: several bot processes on one PostgreSQL database, behind webhooks (see
    docs/operations.md#running-several-processes)."""

    enabled: bool = False
    """Other bot processes share this database (and the data directory): one account's
    messages are then ordered by a PostgreSQL lock, the workers (outboxes, mailbox, purge, CRL,
    reminders, job expiry) run in one process at a time, and nothing is kept in memory between
    messages. Needs PostgreSQL and webhook adapters only: OneBot and the Console mean one
    process."""
    agent_poll_seconds: float = Field(2, gt=0)
    """How often each process looks for jobs queued elsewhere for the key agents connected to
    it (a job queued in the process holding the agent goes at once)."""


class Settings(_Section):
    """The whole ``bot.toml``: one section per table."""

    bot: BotSection = BotSection()
    server: ServerSection = ServerSection()
    onebot: OneBotSection = OneBotSection()
    qqbot: QqBotSection = QqBotSection()
    wechat: WeChatSection = WeChatSection()
    database: DatabaseSection = DatabaseSection()
    scans: ScansSection = ScansSection()
    dialogue: DialogueSection = DialogueSection()
    forms: FormsSection = FormsSection()
    centre: CentreSection = CentreSection()
    fees: dict[OrderType, Decimal | dict[int, Decimal]] = {}
    """``[fees]``: yuan, keyed by order type; omitted: 0. certificate: per UKEY per year of
    证书年限, or a table of each term's price per UKEY ({ 1 = 260, 2 = 480, 3 = 690 }); the
    others: per order. A binding is never charged for."""
    faq: list[FaqEntry] = DEFAULT_FAQ
    """``[[faq]]``: questions answered from the configuration (price, address, hours, materials,
    人工客服) when a message is no command and no form waits for an answer."""
    staff: StaffSection = StaffSection()
    payment: PaymentSection = PaymentSection()
    email: EmailSection = EmailSection()
    chat: ChatSection = ChatSection()
    channels: ChannelsSection = ChannelsSection()
    mailbox: MailboxSection = MailboxSection()
    agents: AgentsSection = AgentsSection()
    pki: PkiSection = PkiSection()
    retention: RetentionSection = RetentionSection()
    cluster: ClusterSection = ClusterSection()

    @model_validator(mode="after")
    def _fee_tables(self) -> "Settings":
        terms = {years_of({"years": c}) for c in CERTIFICATE.field("years").choices}
        for order_type, price in self.fees.items():
            if not isinstance(price, dict):
                continue
            if order_type is not OrderType.CERTIFICATE:
                raise ValueError(f"[fees] {order_type}: one price per order, not a table")
            missing = terms - set(price)
            if missing:
                raise ValueError(f"[fees] certificate: no price for {sorted(missing)} 年")
        return self

    @property
    def data_dir(self) -> Path:
        return self.bot.data_dir

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{self.data_dir / 'cadesk.db'}"

    @property
    def public_url(self) -> str:
        """Where agents, relying parties and applicants (blank forms) reach this bot's HTTP
        server."""
        server = self.server
        return (self.agents.public_url or f"http://{server.host}:{server.port}").rstrip("/")

    @property
    def serves_http(self) -> bool:
        """Whether the bot runs its HTTP server: the OneBot reverse WebSocket, the key agents
        and the CRL need it, and the QQ bot's webhook and the WeChat callback; the Console alone
        does not."""
        return (bool({"onebot", "qqbot", "wechat"} & set(self.bot.adapters))
                or self.agents.enabled)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.bot.timezone)


class ConfigError(Exception):
    pass


def config_path(cli_value: str | None = None) -> Path:
    return Path(cli_value or os.environ.get("CADESK_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: Path) -> Settings:
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from None
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {error}") from None
    return _resolved(settings, path.resolve().parent)


def _resolved(settings: Settings, base: Path) -> Settings:
    data_dir = settings.bot.data_dir
    if not data_dir.is_absolute():
        settings.bot.data_dir = base / data_dir
    master = settings.agents.so_master_file
    if master is not None and not master.is_absolute():
        settings.agents.so_master_file = base / master
    for name in ("ca_cert_file", "ca_key_file"):
        path = getattr(settings.pki, name)
        if path is not None and not path.is_absolute():
            setattr(settings.pki, name, base / path)
    token = (settings.pki.ca_token_module, settings.pki.ca_token_label, settings.pki.ca_key_label)
    if any(token) and not all(token):
        raise ConfigError("[pki] ca_token_module, ca_token_label and ca_key_label go together")
    if settings.pki.enabled and not settings.agents.enabled:
        raise ConfigError("[pki] enabled needs [agents] enabled: UKEYs are made through agents")
    for key in FormsSection.model_fields:
        own = settings.forms.own(key)
        if own is not None:
            own = own if own.is_absolute() else base / own
            if not own.is_file():
                raise ConfigError(f"[forms] {key}: no such file {own}")
            setattr(settings.forms, key, own)
    for section in (settings.email, settings.mailbox):
        if section.ca_file is not None and not section.ca_file.is_absolute():
            section.ca_file = base / section.ca_file
    env = os.environ
    settings.onebot.access_token = env.get("CADESK_ONEBOT_ACCESS_TOKEN",
                                           settings.onebot.access_token)
    settings.database.url = env.get("CADESK_DATABASE_URL", settings.database.url)
    settings.server.health_token = env.get("CADESK_HEALTH_TOKEN", settings.server.health_token)
    settings.email.password = env.get("CADESK_SMTP_PASSWORD", settings.email.password)
    settings.mailbox.password = env.get("CADESK_IMAP_PASSWORD", settings.mailbox.password)
    settings.qqbot.secret = env.get("CADESK_QQBOT_SECRET", settings.qqbot.secret)
    wechat = settings.wechat
    wechat.appsecret = env.get("CADESK_WECHAT_APPSECRET", wechat.appsecret)
    wechat.token = env.get("CADESK_WECHAT_TOKEN", wechat.token)
    wechat.encoding_aes_key = env.get("CADESK_WECHAT_ENCODING_AES_KEY", wechat.encoding_aes_key)
    if "wechat" in settings.bot.adapters:
        missing = [k for k in ("appid", "appsecret", "token") if not getattr(wechat, k)]
        if missing:
            raise ConfigError(f"[wechat] {', '.join(missing)} must be set for the \"wechat\" "
                              "adapter (secrets: CADESK_WECHAT_APPSECRET, CADESK_WECHAT_TOKEN)")
        if wechat.encoding_aes_key and not _is_aes_key(wechat.encoding_aes_key):
            raise ConfigError("CADESK_WECHAT_ENCODING_AES_KEY: an EncodingAESKey is 43 "
                              "characters of base64 (32 bytes)")
    try:
        ZoneInfo(settings.bot.timezone)
    except (ValueError, KeyError) as error:
        raise ConfigError(f"unknown time zone {settings.bot.timezone!r}") from error
    _check_qqbot(settings)
    _check_exposure(settings)
    _check_cluster(settings)
    return settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to may be reachable


def _check_qqbot(settings: Settings) -> None:
    """The webhook refuses every event it cannot check against the secret: without AppID and
    AppSecret the QQ bot would hear nobody."""
    if "qqbot" in settings.bot.adapters and not (settings.qqbot.app_id and settings.qqbot.secret):
        raise ConfigError('[bot] adapters lists "qqbot": set [qqbot] app_id and the AppSecret '
                          "(CADESK_QQBOT_SECRET, or [qqbot] secret) from q.qq.com (开发设置).")


def _check_exposure(settings: Settings) -> None:
    """Anyone who reaches the OneBot endpoint without its token speaks as any QQ user, so the
    token is required beyond loopback; and with key agents on, the one server is reachable by
    agents' PCs, so the OneBot endpoint on it needs the token too."""
    if "onebot" not in settings.bot.adapters or settings.onebot.access_token:
        return
    if not is_loopback(settings.server.host):
        raise ConfigError(
            f"[server] host = {settings.server.host!r} listens beyond this machine, and the "
            "OneBot endpoint has no access token: anyone reaching it could pose as any QQ user. "
            "Set CADESK_ONEBOT_ACCESS_TOKEN (or [onebot] access_token) and the same token in "
            "NapCat/Lagrange, or listen on 127.0.0.1.")
    if settings.agents.enabled:
        raise ConfigError(
            "[agents] enabled shares the server with the OneBot endpoint, which agents' PCs "
            "can then reach: set CADESK_ONEBOT_ACCESS_TOKEN (or [onebot] access_token) and the "
            "same token in NapCat/Lagrange.")


# adapters whose chats reach one process only: a OneBot client connects to one bot, and the
# Console is a terminal
SINGLE_PROCESS_ADAPTERS = ("onebot", "console")


def _check_cluster(settings: Settings) -> None:
    """Several processes share what PostgreSQL can lock between them, and a chat any of them can
    answer and send to (a webhook); SQLite and OneBot/Console mean one process."""
    if not settings.cluster.enabled:
        return
    if not settings.database_url.startswith("postgresql"):
        raise ConfigError(
            "[cluster] enabled needs PostgreSQL ([database] url or CADESK_DATABASE_URL "
            '"postgresql+asyncpg://…"): with SQLite, run one bot process and set [cluster] '
            "enabled = false.")
    single = [a for a in settings.bot.adapters if a in SINGLE_PROCESS_ADAPTERS]
    if single:
        raise ConfigError(
            f"[cluster] enabled, but [bot] adapters lists {', '.join(single)}: a OneBot client "
            "connects to one bot process and the Console is this terminal, so their chats "
            "cannot be shared. Several processes serve webhook adapters only; run OneBot or "
            "the Console in one process with [cluster] enabled = false.")
