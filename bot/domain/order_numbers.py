"""Order numbers: unique, short, and easy to read aloud over the phone.

Form: ``PP-YYMMDD-XXXX``, e.g. ``XB-261125-7KQ3``: a two-letter type prefix, the date, and four
characters from an alphabet without look-alikes (no 0/O, 1/I/L). Uniqueness is enforced by the
database; the caller draws again on the rare collision (31⁴ ≈ 920 000 a day per prefix).
"""

import re
import secrets
from datetime import date

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_PATTERN = re.compile(r"([A-Z]{2})-?(\d{6})-?([" + ALPHABET + r"]{4})")


def new_order_number(prefix: str, day: date, draw=secrets.choice) -> str:
    suffix = "".join(draw(ALPHABET) for _ in range(4))
    return f"{prefix}-{day:%y%m%d}-{suffix}"


_SHAPE = re.compile(r"[A-Z]{2}-?\d{6}-?[0-9A-Z]{4}")


def looks_like_order_number(text: str) -> bool:
    """Shaped like one, valid or not (XB-000000-0000 is meant as a number, and is not found)."""
    return _SHAPE.fullmatch(_cleaned(text)) is not None


def _cleaned(text: str) -> str:
    return "".join(text.split()).upper().replace("—", "-").replace("－", "-")


def parse_order_number(text: str) -> str | None:
    """Accept what people type (lower case, no dashes, spaces) and return the canonical form."""
    match = _PATTERN.fullmatch(_cleaned(text))
    if not match:
        return None
    return "-".join(match.groups())
