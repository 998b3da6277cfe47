"""The tables. Designed for every order type in SPEC.md: an order keeps its form's values as JSON,
so a new order type needs a form and a lifecycle entry, not a migration."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from bot.domain.lifecycle import OrderStatus, OrderType
from bot.domain.order_log import Event
from bot.domain.trust import HandlerStatus


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


E = TypeVar("E", bound=StrEnum)


class EnumText(TypeDecorator[E]):
    """A ``StrEnum`` kept as its plain string value (no database enum type, so no migration):
    rows read back as members, and a value outside the enum is refused on the way in."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int = 20) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Any) -> E | None:
        return None if value is None else self.enum(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}  # noqa: RUF012


class Company(Base):
    """单位档案: one per unified social credit code."""

    __tablename__ = "companies"
    id: Mapped[int] = mapped_column(primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    pledge_accepted_at: Mapped[datetime | None]  # None: first known from an unlock mail
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Handler(Base):
    """经办人: a chat account on one platform, acting for one company."""

    __tablename__ = "handlers"
    __table_args__ = (UniqueConstraint("platform", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[str] = mapped_column(String(64))
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    email: Mapped[str | None] = mapped_column(String(254))  # notifications by mail as well
    # pending: bound by a claim, may only apply; verified: approved by a technician or by a
    # verified handler of the company; removed: unbound by a technician (see docs/trust.md)
    status: Mapped[HandlerStatus] = mapped_column(EnumText(HandlerStatus),
                                                  default=HandlerStatus.PENDING,
                                                  server_default="pending")
    verified_at: Mapped[datetime | None]
    verified_by: Mapped[str | None] = mapped_column(String(100))
    removed_at: Mapped[datetime | None]  # a technician's 解绑
    removed_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    company: Mapped[Company] = relationship(lazy="joined")


class JoinedAccount(Base):
    """Another chat account of a handler (one person, several channels): it acts as the handler
    (the same company, the same standing, the same orders). Made by ``绑定 绑定码`` with a code the
    handler asked for on an account it already had (docs/conversation.md, "One person, several
    channels")."""

    __tablename__ = "joined_accounts"
    __table_args__ = (UniqueConstraint("platform", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    handler_id: Mapped[int] = mapped_column(ForeignKey("handlers.id"), index=True)
    platform: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[str] = mapped_column(String(64))
    joined_from: Mapped[str] = mapped_column(String(100))  # the account that asked for the code
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class JoinCode(Base):
    """A one-time code joining another account to a handler: kept hashed, short-lived, used
    once (a conditional UPDATE claims it)."""

    __tablename__ = "join_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    handler_id: Mapped[int] = mapped_column(ForeignKey("handlers.id"), index=True)
    requested_by: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by: Mapped[str | None] = mapped_column(String(100))


IN_REVIEW_SQL = text("status IN ('submitted', 'resubmitted')")  # literals: a partial index


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_company_created", "company_id", "created_at"),
        # a pending account sees only the orders it filed itself (我的订单, its binding request)
        Index("ix_orders_handler_created", "handler_id", "created_at"),
        Index("ix_orders_status_submitted", "status", "submitted_at"),
        # 待审核: the waiting orders alone, already in queue order (measured in bench/)
        Index("ix_orders_in_review", "submitted_at", "id", postgresql_where=IN_REVIEW_SQL,
              sqlite_where=IN_REVIEW_SQL),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    type: Mapped[OrderType] = mapped_column(EnumText(OrderType))
    status: Mapped[OrderStatus] = mapped_column(EnumText(OrderStatus))
    # None: an unlock mail from a company not on record; its row is made when approved
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    handler_id: Mapped[int | None] = mapped_column(ForeignKey("handlers.id"))
    channel: Mapped[str] = mapped_column(String(10), default="chat")  # chat / email
    contact_email: Mapped[str | None] = mapped_column(String(254))  # who mailed it in
    source_message_id: Mapped[str | None] = mapped_column(String(998))  # to thread replies
    fields: Mapped[dict[str, Any]]
    amount_cents: Mapped[int | None]
    reject_reason: Mapped[str | None] = mapped_column(Text)
    express_company: Mapped[str | None] = mapped_column(String(40))
    express_number: Mapped[str | None] = mapped_column(String(40))
    invoice_info: Mapped[str | None] = mapped_column(Text)
    # 开票 and 发票: {"request": the invoice form's answers, "issued": number, file, link};
    # replaced whole on every change (a JSON column does not see changes inside it)
    invoice: Mapped[dict[str, Any] | None]
    token_serial: Mapped[str | None] = mapped_column(String(64))  # the UKEY it made or read
    certificate_serial: Mapped[str | None] = mapped_column(String(40))  # hex, what it issued
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock between reviewers

    company: Mapped[Company | None] = relationship(lazy="joined")
    handler: Mapped[Handler | None] = relationship(lazy="joined")
    attachments: Mapped[list["Attachment"]] = relationship(
        back_populates="order", order_by="Attachment.id", lazy="selectin")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012

    @validates("type", "status")
    def _as_member(self, key: str, value: str) -> OrderType | OrderStatus:
        """A plain string assigned is a member at once, so ``order.status is ...`` holds."""
        return OrderType(value) if key == "type" else OrderStatus(value)


class Attachment(Base):
    """A scan kept content-addressed (SHA-256) under the data directory; a replaced scan keeps its
    old row with a lower revision, so the order's history shows both versions."""

    __tablename__ = "attachments"
    __table_args__ = (UniqueConstraint("order_id", "slot", "revision"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    slot: Mapped[str] = mapped_column(String(40))  # the form field, e.g. scan_licence
    revision: Mapped[int] = mapped_column(default=1)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    format: Mapped[str] = mapped_column(String(10))
    size: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    order: Mapped[Order] = relationship(back_populates="attachments")


class OrderEvent(Base):
    """Every status change: who, when, from, to, why."""

    __tablename__ = "order_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))  # e.g. qq:12345, system
    event: Mapped[Event] = mapped_column(EnumText(Event))
    from_status: Mapped[OrderStatus] = mapped_column(EnumText(OrderStatus))
    to_status: Mapped[OrderStatus] = mapped_column(EnumText(OrderStatus))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None]


class Conversation(Base):
    """A form in progress for one chat account, saved after every step."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("platform", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutgoingMail(Base):
    """A mail to send: kept until sent, so a failing server or a restart loses nothing."""

    __tablename__ = "outgoing_mail"
    __table_args__ = (Index("ix_outgoing_mail_due", "sent_at", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, Any] | None]  # e.g. In-Reply-To for threaded replies
    # files in the scan store: [{"sha256", "filename", "content_type"}] (an invoice PDF)
    attachments: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]  # gave up after the last attempt
    last_error: Mapped[str | None] = mapped_column(Text)


# held for the person's next message (a summary push may have told them): literals, for a
# partial index
HELD_SQL = text("path IN ('held', 'summary')")
HELD_PATHS = ("held", "summary")  # the same, for other queries


class OutgoingChat(Base):
    """One chat message to deliver (a notice, never a reply): written in the transaction of the
    change it reports, kept until sent, so a dropped QQ connection or a restart loses nothing.
    A recipient's messages go out in ``id`` order."""

    __tablename__ = "outgoing_chat"
    __table_args__ = (
        Index("ix_outgoing_chat_pending", "sent_at", "dropped_at", "id"),
        # an account's next message looks for what waits for it: the held rows alone
        Index("ix_outgoing_chat_held", "platform", "recipient", postgresql_where=HELD_SQL,
              sqlite_where=HELD_SQL),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(100))  # a user id, or a group id
    is_group: Mapped[bool] = mapped_column(default=False)
    # {"text": ...} or {"image": base64 PNG/JPEG, "alt": ...}
    message: Mapped[dict[str, Any]]
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    dropped_at: Mapped[datetime | None]  # undeliverable for longer than [chat] max_age_hours
    last_error: Mapped[str | None] = mapped_column(Text)
    # how it went out (bot/services/channels.py Delivery: open, reply, push, held, next); None:
    # not yet
    path: Mapped[str | None] = mapped_column(String(10))
    # its mail (ports.NoticeMail): may (mailed if held), sent, never (an initial PIN)
    mail: Mapped[str] = mapped_column(String(10), default="may", server_default="may")


class ChatReach(Base):
    """Where a channel that ties replies to the user's message stands with one account (QQ's
    official bot, WeChat; always-open channels keep no row): their last message, the replies
    sent against it, the pushes used this month. Written once per message of theirs."""

    __tablename__ = "chat_reach"
    __table_args__ = (UniqueConstraint("platform", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[str] = mapped_column(String(64))
    last_message_at: Mapped[datetime | None]
    last_ref: Mapped[str | None] = mapped_column(String(128))  # the platform's message id
    replies_used: Mapped[int] = mapped_column(default=0)  # against the last message
    push_month: Mapped[str] = mapped_column(String(7), default="")  # "2026-12", UTC
    pushes_used: Mapped[int] = mapped_column(default=0)  # in push_month


class MailboxState(Base):
    """Where the poller is in one IMAP folder: a restart neither misses nor repeats mail."""

    __tablename__ = "mailbox_state"
    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(300), unique=True)  # user@host/folder
    uidvalidity: Mapped[int]
    last_uid: Mapped[int] = mapped_column(default=0)


class InboundMail(Base):
    """Every mail the poller handled, once (Message-ID), and what became of it."""

    __tablename__ = "inbound_mail"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    mailbox: Mapped[str] = mapped_column(String(300))
    uid: Mapped[int]
    sender: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(20))  # filed / incomplete / for_humans
    reason: Mapped[str | None] = mapped_column(Text)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    replied: Mapped[bool] = mapped_column(default=False)  # an automatic answer was queued
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # what the sender wrote (unlock_mail.content_digest): the same Message-ID with other
    # content is another mail, for a person; NULL for mail handled before it was kept
    content_sha256: Mapped[str | None] = mapped_column(String(64))


class WebhookEvent(Base):
    """An event a platform posted to a webhook, by its id ([cluster]): handled by the first
    process it reached, a retry or replay reaching another one is acknowledged and dropped.
    Kept a day (``WEBHOOK_EVENTS_KEPT``)."""

    __tablename__ = "webhook_events"
    source: Mapped[str] = mapped_column(String(20), primary_key=True)  # e.g. "qqbot"
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Agent(Base):
    """A paired key agent: the machine beside a company's UKEY, or the service hall's agent that
    personalises blank UKEYs for every company (``hall``, no company)."""

    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"), index=True)
    hall: Mapped[bool] = mapped_column(default=False, server_default=false())
    identity_key: Mapped[str] = mapped_column(String(64), unique=True)  # Ed25519, base64url
    sealing_key: Mapped[str] = mapped_column(String(64))  # X25519, base64url
    paired_by: Mapped[str] = mapped_column(String(100))  # the chat account that asked
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(100))
    company: Mapped[Company | None] = relationship(lazy="joined")


class PairingCode(Base):
    """A one-time code for pairing an agent: kept hashed, short-lived, used once."""

    __tablename__ = "pairing_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    hall: Mapped[bool] = mapped_column(default=False, server_default=false())
    requested_by: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class TokenJob(Base):
    """A job for a key agent. ``signed`` is the job exactly as first sent, kept so a resend is
    identical (its SO PIN is sealed to that one agent; no plaintext PIN is ever stored)."""

    __tablename__ = "token_jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # protocol.KINDS
    hall: Mapped[bool] = mapped_column(default=False, server_default=false())  # hall's agent
    data: Mapped[dict[str, Any] | None]  # plain, signed payload (e.g. the certificate to write)
    token_serial: Mapped[str | None] = mapped_column(String(64))
    # queued, sent, then done, failed or expired; done_late (answered after it expired),
    # withdrawn (closed: an earlier job's late result made it needless)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    signed: Mapped[dict[str, Any] | None]
    result: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class Certificate(Base):
    """A certificate the CA issued: for which company, on which UKEY, and whether it is trusted
    (active; hold after a loss report; revoked for good; superseded by its renewal)."""

    __tablename__ = "certificates"
    __table_args__ = (Index("ix_certificates_status_not_after", "status", "not_after"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(40), unique=True)  # hex, lower case
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    token_serial: Mapped[str] = mapped_column(String(64), index=True)
    subject_name: Mapped[str] = mapped_column(String(200))  # the company name in the subject
    uscc: Mapped[str] = mapped_column(String(18))
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    der: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default="active")
    status_changed_at: Mapped[datetime | None]
    revocation_reason: Mapped[str | None] = mapped_column(String(40))  # x509.ReasonFlags name
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    company: Mapped[Company] = relationship(lazy="joined")


class CertificateEvent(Base):
    """A certificate's change of state: who, when, why, and the order it was asked in (none for
    a technician's 挂失 or 吊销 by command)."""

    __tablename__ = "certificate_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    from_status: Mapped[str] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)


class CertificateReminder(Base):
    """An expiry reminder sent (or skipped as already late): each threshold once per certificate."""

    __tablename__ = "certificate_reminders"
    __table_args__ = (UniqueConstraint("certificate_id", "days_before"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"))
    days_before: Mapped[int]
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


class Crl(Base):
    """Every CRL the CA signed, numbered; the newest is served and written to a file."""

    __tablename__ = "crls"
    number: Mapped[int] = mapped_column(primary_key=True)
    issued_at: Mapped[datetime]
    next_update: Mapped[datetime]
    der: Mapped[bytes] = mapped_column(LargeBinary)


class Ukey(Base):
    """A UKEY on record for a company: the only tokens whose PIN cadesk resets or whose key it
    certifies. Issued by 制证, recorded by a technician (登记UKEY), or confirmed at 确认解锁."""

    __tablename__ = "ukeys"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_serial: Mapped[str] = mapped_column(String(64), unique=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    source: Mapped[str] = mapped_column(String(20))  # issued / registered / confirmed
    recorded_by: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    company: Mapped[Company] = relationship(lazy="joined")
