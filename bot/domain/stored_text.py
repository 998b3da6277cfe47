"""Text from outside (a mail's headers, names, body) made safe to store.

PostgreSQL refuses NUL in text and a string longer than its column; a lone surrogate (a raw
8-bit header byte the parser could not decode) cannot even be sent to it. Every value a mail
brings is passed through ``clean`` before it reaches a column, with that column's length: one
odd mail must fail no transaction (SQLite accepts all of it, so only PostgreSQL would notice).
"""

import unicodedata

# the lengths of the columns mail values go to (storage/models.py; a unit test keeps them equal)
ADDRESS_CHARS = 254  # RFC 5321's longest address: inbound_mail.sender, orders.contact_email
MESSAGE_ID_CHARS = 998  # RFC 5322's longest line: inbound_mail.message_id
MAILBOX_CHARS = 300  # inbound_mail.mailbox
ACTOR_CHARS = 100  # order_events.actor ("email:" and the address)
SUBJECT_CHARS = 200  # outgoing_mail.subject; a longer incoming subject goes to a person
TEXT_CHARS = 2000  # what is kept of a free text (a mail body, a reason) in a Text column

_LINE_BREAKS = "\n\r\u2028\u2029"


def control_characters(value: str) -> bool:
    """Whether the text holds a control character other than tab, CR and LF (NUL, ESC, DEL…),
    or a surrogate: no mail client writes those in a subject or a name."""
    return any(unicodedata.category(c) in ("Cc", "Cs") and c not in "\t\r\n" for c in value)


def clean(value: str | None, limit: int = TEXT_CHARS, *, lines: bool = False) -> str:
    """``value`` without control characters and surrogates, at most ``limit`` characters.
    ``lines``: keep line breaks (as LF) and tabs, for a body; otherwise they become spaces."""
    out = []
    for char in (value or "").replace("\r\n", "\n"):
        category = unicodedata.category(char)
        if char in _LINE_BREAKS or char == "\t":
            out.append(char if lines and char in "\n\t" else "\n" if lines else " ")
        elif category == "Cs":
            out.append("\ufffd")
        elif category != "Cc":
            out.append(char)
    text = "".join(out).strip()
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"
