"""``bot.toml``: the one configuration file, read into typed settings.

Paths in the file are relative to the file's own directory, so a staging and a live instance
each point at their own data. Secrets may come from the environment instead of the file:
``CADESK_ONEBOT_ACCESS_TOKEN``, ``CADESK_DATABASE_URL``, ``CADESK_SMTP_PASSWORD`` and
``CADESK_IMAP_PASSWORD``.
"""

import ipaddress
import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.domain.lifecycle import OrderType
from bot.domain.scans import ScanRules

DEFAULT_CONFIG = "bot.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in bot.toml is an error, not a silence


class BotSection(_Section):
    adapters: list[Literal["console", "onebot"]] = ["console"]
    data_dir: Path = Path("data")
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"] = "INFO"
    timezone: str = "Asia/Shanghai"
    nickname: str = "cadesk"


class ServerSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)


class OneBotSection(_Section):
    access_token: str = ""


class DatabaseSection(_Section):
    url: str = ""  # empty: SQLite file cadesk.db in the data directory


class ScansSection(_Section):
    max_megabytes: float = Field(10, gt=0)
    min_short_side: int = Field(600, ge=1)
    min_long_side: int = Field(800, ge=1)
    max_megapixels: float = Field(60, gt=0)
    download_timeout_seconds: float = Field(20, gt=0)

    def rules(self) -> ScanRules:
        return ScanRules(max_bytes=int(self.max_megabytes * 1024 * 1024),
                         min_short_side=self.min_short_side, min_long_side=self.min_long_side,
                         max_pixels=int(self.max_megapixels * 1_000_000))


class DialogueSection(_Section):
    idle_minutes: float = Field(30, gt=0)  # after this, a flow waits for 继续


class StaffSection(_Section):
    # "platform:user id", e.g. "qq:10001"; the Console's own user is "console:user"
    technicians: list[str] = []
    group: str = ""  # "qq:GROUP_ID": staff notices go here, else to each technician privately
    approvals_required: int = Field(1, ge=1, le=5)  # 2 = four-eyes

    def is_technician(self, account: str) -> bool:
        return account in self.technicians


class PaymentSection(_Section):
    # {number} and {amount} (yuan, two decimals) are filled in; the QR code encodes the result
    url_template: str = "https://pay.example.invalid/ca?order={number}&amount={amount}"


class EmailSection(_Section):
    enabled: bool = False
    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    ca_file: Path | None = None  # a private CA's certificate (PEM); empty: the system's CAs
    username: str = ""
    password: str = ""  # better: CADESK_SMTP_PASSWORD
    from_address: str = "cadesk@example.invalid"
    from_name: str = "CA证书服务"
    timeout_seconds: float = Field(20, gt=0)
    max_attempts: int = Field(6, ge=1)
    retry_seconds: float = Field(30, gt=0)  # doubled after every failed attempt
    poll_seconds: float = Field(5, gt=0)


class MailboxSection(_Section):
    """The unlock mailbox (IMAP): read, filed, answered; never deleted from."""

    enabled: bool = False
    host: str = "localhost"
    port: int = Field(993, ge=1, le=65535)
    security: Literal["tls", "none"] = "tls"  # implicit TLS (993), or plain for loopback only
    ca_file: Path | None = None  # a private CA's certificate (PEM); empty: the system's CAs
    username: str = ""
    password: str = ""  # better: CADESK_IMAP_PASSWORD
    address: str = ""  # the mailbox's own address, never answered; empty: the username
    folder: str = "INBOX"
    human_folder: str = "待人工处理"  # what the bot cannot file goes here for a person
    processed_folder: str = ""  # empty: processed mail stays, flagged \Seen and CadeskFiled
    poll_seconds: float = Field(60, gt=0)
    max_message_megabytes: float = Field(30, gt=0)
    max_attachment_megabytes: float = Field(10, gt=0)
    replies_per_sender_per_hour: int = Field(3, ge=0)

    @property
    def own_address(self) -> str:
        return (self.address or self.username).lower()


class AgentsSection(_Section):
    """Key agents beside the UKEYs (see docs/key-agent.md)."""

    enabled: bool = False  # needs the bot's HTTP server: agents connect to [server]
    public_url: str = ""  # what agents connect to; empty: http://[server] host:port
    pairing_code_minutes: float = Field(10, gt=0)
    job_lifetime_minutes: float = Field(30, gt=0)
    so_master_file: Path | None = None  # the SO PIN master secret; or CADESK_SO_MASTER (hex)


class PkiSection(_Section):
    """The CA and the certificates on the UKEYs (docs/pki.md, docs/certificates.md)."""

    enabled: bool = False  # needs [agents]: UKEYs are personalised and renewed through agents
    ca_name: str = "cadesk CA"
    # An existing CA instead of the embedded one made in DATA_DIR/pki on first start (PEM files;
    # an encrypted key's password in CADESK_CA_KEY_PASSWORD).
    ca_cert_file: Path | None = None
    ca_key_file: Path | None = None
    # Or the CA key on a PKCS#11 token (HSM or office UKEY), with ca_cert_file; its user PIN in
    # CADESK_CA_TOKEN_PIN. All three or none.
    ca_token_module: str = ""
    ca_token_label: str = ""
    ca_key_label: str = ""
    term_months: int = Field(12, ge=1, le=60)  # a renewal adds this to the current expiry
    crl_url: str = ""  # named in every certificate; empty: public URL + /pki/crl
    crl_hours: float = Field(1, gt=0)  # re-signed at least this often (and on every change)
    reminder_days: list[int] = [30, 7, 1]  # expiry reminders, days before
    reminder_check_minutes: float = Field(60, gt=0)


class Settings(_Section):
    bot: BotSection = BotSection()
    server: ServerSection = ServerSection()
    onebot: OneBotSection = OneBotSection()
    database: DatabaseSection = DatabaseSection()
    scans: ScansSection = ScansSection()
    dialogue: DialogueSection = DialogueSection()
    fees: dict[OrderType, Decimal] = {}  # yuan per UKEY (certificates) or per order
    staff: StaffSection = StaffSection()
    payment: PaymentSection = PaymentSection()
    email: EmailSection = EmailSection()
    mailbox: MailboxSection = MailboxSection()
    agents: AgentsSection = AgentsSection()
    pki: PkiSection = PkiSection()

    @property
    def data_dir(self) -> Path:
        return self.bot.data_dir

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{self.data_dir / 'cadesk.db'}"

    @property
    def public_url(self) -> str:
        """Where agents and relying parties reach this bot's HTTP server."""
        server = self.server
        return (self.agents.public_url or f"http://{server.host}:{server.port}").rstrip("/")

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
    for section in (settings.email, settings.mailbox):
        if section.ca_file is not None and not section.ca_file.is_absolute():
            section.ca_file = base / section.ca_file
    env = os.environ
    settings.onebot.access_token = env.get("CADESK_ONEBOT_ACCESS_TOKEN",
                                           settings.onebot.access_token)
    settings.database.url = env.get("CADESK_DATABASE_URL", settings.database.url)
    settings.email.password = env.get("CADESK_SMTP_PASSWORD", settings.email.password)
    settings.mailbox.password = env.get("CADESK_IMAP_PASSWORD", settings.mailbox.password)
    try:
        ZoneInfo(settings.bot.timezone)
    except (ValueError, KeyError) as error:
        raise ConfigError(f"unknown time zone {settings.bot.timezone!r}") from error
    _check_exposure(settings)
    return settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to may be reachable


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
