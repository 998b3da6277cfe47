"""Reading a mail sent to the unlock mailbox (SPEC.md §3: subject ``CA解锁+公司名称``).

Plain stdlib ``email`` with the compat32 policy: it joins RFC 2231 continuations before decoding
(policy.default decodes a GBK character split across ``filename*0*``/``filename*1*`` into
garbage). Every GB2312/GBK label is read as GB18030, its superset, because real mail labelled
GB2312 carries GBK-only characters.
"""

import email
import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.header import Header, decode_header
from email.message import Message
from email.utils import parseaddr

from bot.domain.stored_text import (
    ADDRESS_CHARS,
    MESSAGE_ID_CHARS,
    SUBJECT_CHARS,
    clean,
    control_characters,
)
from bot.domain.text import normalise
from bot.domain.validators import InvalidAnswer, company_name, uscc_code

_CODECS = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
           "gb_2312-80": "gb18030", "euc-cn": "gb18030", "x-euc-cn": "gb18030"}


def codec(charset: str | None) -> str:
    name = (charset or "utf-8").strip().strip('"').lower()
    return _CODECS.get(name, name)


def _bytes_to_text(data: bytes, charset: str | None = None) -> str:
    """Decode with the declared charset; undeclared 8-bit text is tried as UTF-8, then GB18030."""
    for candidate in ([codec(charset)] if charset else []) + ["utf-8", "gb18030"]:
        try:
            return data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("utf-8", errors="replace")


def _raw(value: str) -> str:
    """Header text the parser kept as surrogate escapes (raw 8-bit headers) → real text."""
    if any("\udc80" <= c <= "\udcff" for c in value):
        return _bytes_to_text(value.encode("ascii", "surrogateescape"))
    return value


_FOLDED = re.compile(r"\r?\n(?=[ \t])")


def decode_words(value: object) -> str:
    """A header's text: RFC 2047 encoded words in any charset, or raw 8-bit bytes. A folded
    header is unfolded first (its line breaks are no part of the text, RFC 5322 §2.2.3)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = _FOLDED.sub("", value)
    # compat32 gives a Header (charset unknown-8bit) for raw 8-bit headers: keep its bytes
    try:
        chunks = decode_header(value if isinstance(value, Header) else str(value))
    except HeaderParseError:  # a broken encoded word (bad base64): show it as it came
        return _raw(str(value))
    parts = []
    for chunk, charset in chunks:
        if isinstance(chunk, bytes):
            known = charset if charset and charset != "unknown-8bit" else None
            parts.append(_bytes_to_text(chunk, known))
        else:
            parts.append(_raw(chunk))
    return "".join(parts)


# --- the subject ---------------------------------------------------------------------------
_PREFIX = re.compile(r"^\s*(re|fw|fwd|aw|回复|答复|转发)\s*[:：]\s*", re.IGNORECASE)
_UNLOCK = re.compile(r"^[\[【(（]?\s*ca\s*解\s*锁\s*[\]】)）]?\s*[+\-—_:：、,，\s]*(.*)$",
                     re.IGNORECASE)


def strip_reply_prefixes(subject: str) -> str:
    while match := _PREFIX.match(subject):
        subject = subject[match.end():]
    return subject.strip()


def unlock_company(subject: str) -> str | None:
    """The company of an unlock subject (``""`` when it names none); None: not an unlock mail."""
    match = _UNLOCK.match(strip_reply_prefixes(normalise(subject)))
    if match is None:
        return None
    name = match.group(1).strip(" +-—_:：、,，。.")
    try:
        return company_name(name)
    except InvalidAnswer:
        return ""


# --- mail that must never be answered ------------------------------------------------------
_AUTO_SUBJECT = re.compile(r"^(自动回复|自动答复|auto(matic)?[ -]?reply|out of (the )?office|"
                           r"undeliver|delivery status notification|退信|系统退信)",
                           re.IGNORECASE)


def automatic_reason(message: Message, subject: str, own_addresses: Sequence[str]) -> str | None:
    """Why this mail came from a machine (bounce, auto-reply, list, ourselves), or None."""
    sender = parseaddr(str(message.get("From", "")))[1].lower()
    if not sender:
        return "没有发件人地址"
    if sender in {a.lower() for a in own_addresses}:
        return "来自本邮箱自身"
    if (sender.split("@")[0] in {"mailer-daemon", "postmaster"}
            or str(message.get("Return-Path", "")).strip() == "<>"
            or message.get_content_type() == "multipart/report"):
        return "退信"
    if str(message.get("Auto-Submitted", "no")).strip().lower() != "no" or any(
            message.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponse")):
        return "自动回复"
    if str(message.get("Precedence", "")).strip().lower() in {"bulk", "junk", "list",
                                                                "auto_reply"}:
        return "群发或自动邮件"
    if message.get("List-Id") or message.get("List-Unsubscribe"):
        return "邮件列表"
    if _AUTO_SUBJECT.match(strip_reply_prefixes(subject)):
        return "自动回复"
    return None


# --- attachments ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MailAttachment:
    filename: str
    content_type: str
    data: bytes
    inline: bool


def _filename(part: Message) -> str:
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        raw = part.get_param(param, header=header)
        if raw is None:
            continue
        if isinstance(raw, tuple):  # RFC 2231, continuations already joined: latin-1 code points
            charset, _language, text = raw
            return _bytes_to_text(text.encode("latin-1", "replace"), charset or None)
        value = email.utils.unquote(raw)
        return decode_words(value) if "=?" in value else _raw(value)
    return ""


def attachments(message: Message) -> list[MailAttachment]:
    """Files attached or pasted inline (images in an HTML body count), not the body text."""
    found = []
    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        disposition = part.get_content_disposition()
        filename = _filename(part)
        if content_type.startswith(("text/", "message/")) and disposition != "attachment":
            continue
        if not filename and disposition is None and not content_type.startswith("image/"):
            continue
        data = part.get_payload(decode=True) or b""
        found.append(MailAttachment(filename or f"未命名.{content_type.split('/')[-1]}",
                                    content_type, data, inline=disposition != "attachment"))
    return found


def body_text(message: Message) -> str:
    plain = html_text = ""
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        if part.get_content_type() not in ("text/plain", "text/html"):
            continue
        data = part.get_payload(decode=True) or b""
        text = _bytes_to_text(data, part.get_content_charset())
        if part.get_content_type() == "text/plain" and not plain:
            plain = text
        elif part.get_content_type() == "text/html" and not html_text:
            html_text = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(
                r"(?is)<(script|style).*?</\1>", " ", text)))
    return (plain or html_text).strip()


_USCC_CANDIDATE = re.compile(r"(?<![0-9A-Z])[0-9A-HJ-NP-RTUWXY]{18}(?![0-9A-Z])")


def find_uscc(*texts: str) -> str | None:
    for text in texts:
        for candidate in _USCC_CANDIDATE.findall(normalise(text).upper()):
            try:
                return uscc_code(candidate)
            except InvalidAnswer:
                continue
    return None


# --- which attachment is which material ----------------------------------------------------
MATERIAL_WORDS: dict[str, tuple[str, ...]] = {
    "scan_reset_form": ("申请表", "重置", "密码", "解锁"),
    "scan_licence": ("营业执照", "执照", "licence", "license"),
    "scan_id_card": ("身份证", "身份"),
}


def assign_materials(filenames: Sequence[str]) -> dict[str, int]:
    """Material slot → index of the attachment. Named files go where their name says; the
    unnamed fill the remaining slots in order (phone clients call everything IMG_0001.jpg)."""
    assigned: dict[str, int] = {}
    unnamed = []
    for index, name in enumerate(filenames):
        lower = name.lower()
        slot = next((s for s, words in MATERIAL_WORDS.items()
                     if s not in assigned and any(w in lower for w in words)), None)
        if slot is None:
            unnamed.append(index)
        else:
            assigned[slot] = index
    for slot in MATERIAL_WORDS:
        if slot not in assigned and unnamed:
            assigned[slot] = unnamed.pop(0)
    return assigned


# --- the sender, as an automatic reply may use it --------------------------------------------
_ADDRESS = re.compile(r"^[^@\s]{1,64}@[a-z0-9.-]+\.[a-z0-9-]+$")


def normalised_address(address: str) -> str | None:
    """``User+Tag@Example.COM`` → ``user@example.com``: one address per mailbox, so the reply
    cap cannot be dodged with tags. None: not an address a reply may go to (over 254
    characters, control characters, no domain)."""
    address = address.strip().lower()
    local, _, domain = address.rpartition("@")
    address = f"{local.split('+', 1)[0] or local}@{domain}"
    if (len(address) > ADDRESS_CHARS or control_characters(address)
            or not _ADDRESS.match(address)):
        return None
    return address


def envelope_sender(message: Message) -> str:
    """Who the mail came from as the server saw it: Return-Path (the envelope sender, set by
    the receiving server), else From. Reply-To, which anyone writes, is never used."""
    for header in ("Return-Path", "From"):
        value = message.get(header)
        if value is not None and str(value).strip() not in ("", "<>"):
            return parseaddr(_FOLDED.sub("", str(value)))[1]
    return ""


def content_digest(raw: bytes) -> str:
    """SHA-256 of what the sender wrote: the body and the headers a sender sets, not those the
    servers on the way add (Received, Return-Path, spam scores), so the same mail delivered
    twice has one digest, and another mail reusing its Message-ID another."""
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    kept, keep = [], False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if keep:
                kept.append(line)
            continue
        keep = line.split(b":", 1)[0].strip().lower() in _SENDER_HEADERS
        if keep:
            kept.append(line)
    return hashlib.sha256(b"\n".join(kept) + b"\n\n" + body).hexdigest()


_SENDER_HEADERS = {b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"content-type",
                   b"content-transfer-encoding", b"mime-version"}


def _message_id(message: Message, digest: str) -> str:
    """The Message-ID as it may be stored; a hash of the content when there is none or it is
    longer than any real one (a clipped id could meet another mail's)."""
    value = "".join(clean(str(message.get("Message-ID", ""))).split())
    if value and len(value) <= MESSAGE_ID_CHARS:
        return value
    return f"<{digest}@no-message-id.invalid>"


def _references(message: Message, message_id: str) -> str:
    """For a threaded reply: the original References plus its Message-ID, at most ten ids."""
    ids = [*clean(str(message.get("References", ""))).split()[-9:], message_id]
    text = " ".join(ids)
    while len(text) > MESSAGE_ID_CHARS and len(ids) > 1:
        ids = ids[1:]
        text = " ".join(ids)
    return text


def refusal(subject: str, sender_name: str, address: str | None, raw_sender: str) -> str | None:
    """Why this mail goes to a person whatever it says, or None: a sender no reply may go to,
    control characters in the subject or the sender's name (no client writes them: a crafted
    mail), a subject longer than any unlock request's."""
    if not raw_sender:
        return "没有发件人地址"
    if address is None:
        return "发件人地址无效"
    if control_characters(subject) or control_characters(sender_name):
        return "主题或发件人含有控制字符"
    if len(subject) > SUBJECT_CHARS:
        return f"主题过长（{len(subject)} 个字符）"
    return None


# --- the whole mail ------------------------------------------------------------------------
@dataclass
class InboundMail:
    message_id: str  # cleaned, at most 998 characters
    digest: str  # content_digest of the bytes
    sender: str  # where a reply may go: the normalised envelope sender; "" when none may
    sender_shown: str  # the sender as written (cleaned, clipped): for a person to read
    sender_name: str
    subject: str
    references: str  # for a threaded reply: the original References plus its Message-ID
    automatic: str | None  # why no human wrote it, or None
    refused: str | None  # why it goes to a person whatever it says (see ``refusal``), or None
    suppress_reply: bool  # the sender asked for no automatic answers
    company: str | None  # from the subject; None: not an unlock request
    uscc: str | None
    body: str
    files: list[MailAttachment] = field(default_factory=list)


def read_mail(raw: bytes, own_addresses: Sequence[str] = ()) -> InboundMail:
    message = email.message_from_bytes(raw)
    digest = content_digest(raw)
    subject = decode_words(message.get("Subject"))
    message_id = _message_id(message, digest)
    raw_sender = envelope_sender(message)
    address = normalised_address(raw_sender) if raw_sender else None
    sender_name = decode_words(parseaddr(decode_words(message.get("From")))[0])
    suppress = str(message.get("X-Auto-Response-Suppress", "")).lower()
    body = body_text(message)
    files = attachments(message)
    company = unlock_company(subject)
    return InboundMail(
        message_id=message_id, digest=digest, sender=address or "",
        sender_shown=clean(address or raw_sender or str(message.get("From", "")),
                           ADDRESS_CHARS),
        sender_name=sender_name, subject=subject, references=_references(message, message_id),
        automatic=automatic_reason(message, subject, own_addresses) or (
            "来自本邮箱自身" if address in {a.lower() for a in own_addresses} else None),
        refused=refusal(subject, sender_name, address, raw_sender),
        suppress_reply=any(w in suppress for w in ("all", "autoreply", "oof")),
        company=company, uscc=find_uscc(body, subject, *(f.filename for f in files)),
        body=body, files=files)


def unreadable(raw: bytes) -> InboundMail:
    """A mail the reader failed on: left for a person, known by its bytes, never answered."""
    digest = content_digest(raw)
    return InboundMail(
        message_id=f"<{digest}@unreadable.invalid>", digest=digest, sender="",
        sender_shown="", sender_name="", subject="（无法读取的邮件）", references="",
        automatic="无法读取的邮件", refused=None, suppress_reply=True, company=None, uscc=None,
        body="")
