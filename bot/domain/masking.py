"""Masking personal numbers wherever a stranger might read them (logs, group chats, summaries)."""

import re

_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{3})\d{11}(\d{3}[\dXx])(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")


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


def mask_personal_numbers(text: str) -> str:
    """Mask every ID number and mainland mobile number found in free text."""
    text = _ID_NUMBER.sub(lambda m: m.group(1) + "*" * 11 + m.group(2), text)
    return _MOBILE.sub(lambda m: m.group(1) + "****" + m.group(2), text)


def mask_account(account: str) -> str:
    """qq:123456789 → qq:12*****89: a chat account, shortened for a group."""
    platform, colon, user_id = account.rpartition(":")
    if len(user_id) <= 4:
        return f"{platform}{colon}{'*' * len(user_id)}"
    return f"{platform}{colon}{user_id[:2]}{'*' * (len(user_id) - 4)}{user_id[-2:]}"
