"""Masking personal numbers wherever a stranger might read them (logs, group chats, summaries).

Free text is masked wherever an ID number or a mainland mobile number appears *as the
validators would accept it*: with the separators and the full-width digits ``compact``
takes (``SEPARATOR`` and ``DIGIT`` in bot/domain/text.py, the one definition both use), a
lower-case x, and a +86 / 0086 prefix. ``370102 19900307 1234`` becomes
``370*** ******** 1234`` and ``+86 138-1234-5678`` becomes ``+86 138-****-5678``: the digits are
starred where they stand, the separators are kept.

A number glued to a letter or a digit is part of something else (a USCC with letters, a hex
certificate serial, a UKEY serial, an order number, a longer run of digits) and is left alone.
Every place a number could start is tried, so a number right after another one (an ID number,
a space, a mobile) is masked too.
"""

import re

from bot.domain.text import DIGIT, SEPARATOR

_S = f"{SEPARATOR}*"
_ALNUM = "[0-9A-Za-z０-９Ａ-Ｚａ-ｚ]"
_ID_NUMBER = re.compile(
    rf"(?<!{_ALNUM})(?=(?P<number>{DIGIT}(?:{_S}{DIGIT}){{16}}{_S}(?:{DIGIT}|[XxＸｘ]))"
    rf"(?!{_ALNUM}))")
_PREFIX = rf"(?:(?:[+＋]|[0０]{_S}[0０]){_S})?[8８]{_S}[6６]{_S}"
_MOBILE = re.compile(
    rf"(?<!{_ALNUM})(?=(?:{_PREFIX})?(?P<number>[1１]{_S}[3-9３-９](?:{_S}{DIGIT}){{9}})"
    rf"(?!{_ALNUM}))")
_DIGITS = re.compile(rf"{DIGIT}|[XxＸｘ]")


def mask_id_number(number: str) -> str:
    """370102199003071234 → 370***********1234."""
    if len(number) < 8:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask_mobile(number: str) -> str:
    """13812345678 → 138****5678."""
    if len(number) < 8:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask_name(name: str) -> str:
    """王小明 → 王**: enough for a colleague to recognise, not enough to identify a stranger."""
    return name[:1] + "*" * (len(name) - 1)


def _hidden(text: str, pattern: re.Pattern[str], keep_head: int, keep_tail: int) -> set[int]:
    """The positions of the digits to star in every match of ``pattern`` (overlapping ones
    too): all but the first ``keep_head`` and the last ``keep_tail`` digits of each number."""
    hidden: set[int] = set()
    for match in pattern.finditer(text):
        start = match.start("number")
        digits = [start + m.start() for m in _DIGITS.finditer(match.group("number"))]
        hidden.update(digits[keep_head:len(digits) - keep_tail])
    return hidden


def mask_personal_numbers(text: str) -> str:
    """Mask every ID number and mainland mobile number found in free text."""
    hidden = _hidden(text, _ID_NUMBER, 3, 4) | _hidden(text, _MOBILE, 3, 4)
    if not hidden:
        return text
    return "".join("*" if i in hidden else c for i, c in enumerate(text))


def has_personal_numbers(text: str) -> bool:
    """Whether free text holds an ID number or a mainland mobile number (as masked above)."""
    return any(pattern.search(text) for pattern in (_ID_NUMBER, _MOBILE))


def mask_account(account: str) -> str:
    """qq:123456789 → qq:12*****89: a chat account, shortened for a group."""
    platform, colon, user_id = account.rpartition(":")
    if len(user_id) <= 4:
        return f"{platform}{colon}{'*' * len(user_id)}"
    return f"{platform}{colon}{user_id[:2]}{'*' * (len(user_id) - 4)}{user_id[-2:]}"
