"""Validators for form answers: each returns the normalised value or raises InvalidAnswer.

The messages are shown to the applicant as they are, so they say what to fix, in Chinese.
"""

import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date

from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat

from bot.domain.text import arabic_numerals, compact, normalise

Validator = Callable[[str], str]


class InvalidAnswer(ValueError):
    """An answer that cannot be accepted; ``str(error)`` tells the applicant what to fix."""


def _digits(value: str) -> bool:
    """0–9 only: ``str.isdigit`` also takes ² and ٣, which ``int`` refuses or we cannot use."""
    return value.isascii() and value.isdigit()


def uscc_code(value: str) -> str:
    """统一社会信用代码: 18 characters with the GB 32100-2015 check character."""
    code = compact(value).upper()
    if len(code) != 18:
        raise InvalidAnswer(
            f"统一社会信用代码应为 18 位，您输入了 {len(code)} 位，请对照营业执照重新输入。"
        )
    try:
        return uscc.validate(code)
    except InvalidChecksum:
        raise InvalidAnswer(
            "统一社会信用代码校验位不正确，可能有字符输错，请对照营业执照逐位核对。"
        ) from None
    except (InvalidFormat, InvalidComponent):
        raise InvalidAnswer(
            "统一社会信用代码含有不允许的字符（只能是数字和除 I、O、Z、S、V 外的大写字母），"
            "请对照营业执照重新输入。"
        ) from None


# GB/T 2260 province-level codes (the first two digits of an ID number).
PROVINCES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82", "83",
})


def id_number(value: str, today: date | None = None) -> str:
    """居民身份证号: 18 characters with the GB 11643-1999 check digit (the last may be X).

    python-stdnum computes the check digit and the birth date. Its ``ric.validate`` also refuses
    a county code that did not exist in the birth year, but numbers issued at the 18-digit
    re-issue carry the county code of that time (371302 兰山区 dates from 1994, and people born
    in 1980 hold it), so only the province part of the region is checked here.
    """
    number = compact(value).upper()
    if len(number) != 18:
        raise InvalidAnswer(
            f"身份证号应为 18 位，您输入了 {len(number)} 位，请重新输入（最后一位可能是 X）。"
        )
    if not _digits(number[:17]) or not (_digits(number[17]) or number[17] == "X"):
        raise InvalidAnswer("身份证号只能由数字组成，最后一位可以是 X，请重新输入。")
    if ric.calc_check_digit(number) != number[17]:
        raise InvalidAnswer(
            "身份证号校验位不正确，可能有数字输错，请对照身份证逐位核对（最后一位可能是 X）。"
        )
    try:
        born = ric.get_birth_date(number)
    except InvalidComponent:
        born = None
    today = today or date.today()
    if born is None or born > today or born.year < today.year - 120:
        raise InvalidAnswer("身份证号中的出生日期无效，请对照身份证重新输入。")
    if number[:2] not in PROVINCES:
        raise InvalidAnswer("身份证号开头的地区码无效，请对照身份证重新输入。")
    return number


_MOBILE = re.compile(r"1[3-9]\d{9}")


def mobile(value: str) -> str:
    """Mainland mobile number: 11 digits starting 13–19; +86 / 0086 prefixes are accepted."""
    number = compact(value)
    for prefix in ("+86", "0086"):
        number = number.removeprefix(prefix)
    if not _digits(number):
        raise InvalidAnswer("手机号只能由数字组成，请输入 11 位手机号。")
    if number.startswith("0"):
        raise InvalidAnswer("这看起来是固定电话号码，请填写能接收短信的 11 位手机号。")
    if len(number) != 11:
        raise InvalidAnswer(f"手机号应为 11 位，您输入了 {len(number)} 位，请重新输入。")
    if not _MOBILE.fullmatch(number):
        raise InvalidAnswer("这不是有效的大陆手机号（应以 13–19 开头），请重新输入。")
    return number


_LANDLINE = re.compile(r"0\d{2,3}-?\d{7,8}(-\d{1,6})?")


def phone(value: str) -> str:
    """A company telephone: a landline with its area code (0539-8123456), or a mobile."""
    number = "".join(normalise(value).split()).replace("—", "-").replace("(", "").replace(")", "")
    if _LANDLINE.fullmatch(number):
        return number
    try:
        return mobile(number)
    except InvalidAnswer:
        raise InvalidAnswer("请填写带区号的座机号码（例如 0539-8123456）或 11 位手机号。") from None


_NAME = re.compile(r"[\u3400-\u9fff]+(?:[·•][\u3400-\u9fff]+)*")


def person_name(value: str) -> str:
    """A person's name as on the ID card: Chinese characters, a middle dot for some names."""
    name = normalise(value).replace("•", "·").replace("・", "·")
    if not 2 <= len(name) <= 20 or not _NAME.fullmatch(name):
        raise InvalidAnswer("请输入身份证上的中文姓名（2–20 个汉字，少数民族姓名可用「·」分隔）。")
    return name


def text(min_length: int, max_length: int, what: str) -> Validator:
    """Free text of a sensible length, e.g. an address."""

    def validate(value: str) -> str:
        # control characters (NUL, C1) are never meant, and PostgreSQL refuses NUL in text
        typed = "".join(" " if unicodedata.category(c) == "Cc" else c for c in normalise(value))
        cleaned = " ".join(typed.split())
        if len(cleaned) < min_length:
            raise InvalidAnswer(f"{what}太短了，请至少输入 {min_length} 个字。")
        if len(cleaned) > max_length:
            raise InvalidAnswer(f"{what}太长了，请不要超过 {max_length} 个字。")
        return cleaned

    return validate


def company_name(value: str) -> str:
    """Full company name as on the business licence; brackets are normalised to full-width."""
    name = text(4, 100, "单位名称")(value).replace("(", "（").replace(")", "）")
    if not re.search(r"[\u3400-\u9fff]", name):
        raise InvalidAnswer("请输入营业执照上的单位全称（中文）。")
    return name


def integer_between(low: int, high: int, unit: str) -> Validator:
    """A count, in digits or Chinese numerals, with or without its unit: 2, 2个, 两个, 贰."""

    def validate(value: str) -> str:
        cleaned = arabic_numerals(compact(value)).removesuffix(unit)
        if not _digits(cleaned):
            raise InvalidAnswer(f"请输入一个数字（{low}–{high}）。")
        number = int(cleaned)
        if not low <= number <= high:
            raise InvalidAnswer(f"数量应在 {low}–{high}{unit} 之间，请重新输入。")
        return str(number)

    return validate


def choice(choices: Sequence[str]) -> Validator:
    """One of ``choices``, by its number in the list (1-based) or by its text; numbers may be
    written in Chinese (两年 is 2年, 二 is option 2)."""

    def validate(value: str) -> str:
        answer = compact(value)
        for option in choices:
            if answer == compact(option):
                return option
        answer = arabic_numerals(answer)
        if _digits(answer) and 1 <= int(answer) <= len(choices):
            return choices[int(answer) - 1]
        for option in choices:
            if answer == arabic_numerals(compact(option)):
                return option
        listed = "、".join(f"{i} {option}" for i, option in enumerate(choices, 1))
        raise InvalidAnswer(f"请回复选项的序号或文字：{listed}。")

    return validate


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def email_address(value: str) -> str:
    address = normalise(value)
    if len(address) > 254 or not _EMAIL.fullmatch(address):
        raise InvalidAnswer("这不是有效的电子邮箱地址，例如：name@example.com。")
    return address
