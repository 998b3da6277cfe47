"""Normalising what people type in a chat."""

import re

# Phone keyboards in Chinese mode often send full-width digits (１３８…), letters and spaces
# (U+3000). Those, and the few symbols numbers and e-mail addresses use, become half-width.
# Chinese punctuation (，：（）) is left as typed: it belongs to the text.
_FOLD = {0x3000: " "}
_FOLD.update({code: code - 0xFEE0 for code in range(0xFF10, 0xFF1A)})  # ０-９
_FOLD.update({code: code - 0xFEE0 for code in range(0xFF21, 0xFF3B)})  # Ａ-Ｚ
_FOLD.update({code: code - 0xFEE0 for code in range(0xFF41, 0xFF5B)})  # ａ-ｚ
_FOLD.update({ord(c): ord(c) - 0xFEE0 for c in "＋－＠．＿"})

# What a number may be typed with, as written (before ``normalise``): the one definition the
# validators (through ``compact``) and the masking of free text (bot/domain/masking.py) share.
SEPARATOR = r"[\s\-－]"
"""A separator ``compact`` drops: any space (U+3000 and the other Unicode spaces, tabs,
newlines) and the dash, half- or full-width."""
DIGIT = r"[0-9０-９]"
"""A digit ``normalise`` makes 0–9 of: ASCII or full-width (not ٣ or ²: the validators refuse
those)."""
_SEPARATORS = re.compile(SEPARATOR)


def normalise(text: str) -> str:
    """Fold full-width letters, digits and spaces to half-width; drop outer whitespace."""
    return text.translate(_FOLD).strip()


def compact(text: str) -> str:
    """``normalise`` and drop every separator too (``SEPARATOR``): for numbers typed with
    spaces or dashes."""
    return _SEPARATORS.sub("", normalise(text))


# Chinese numerals as people type counts and terms: 两年, 二年, 贰年, 十二个. Daily and financial
# (大写) forms; 两 is the usual 2 before a measure word. Up to 99 is all a form needs.
_DIGIT_OF = {"零": 0, "〇": 0, "一": 1, "壹": 1, "二": 2, "两": 2, "兩": 2, "贰": 2, "貳": 2,
             "三": 3, "叁": 3, "參": 3, "四": 4, "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6,
             "陸": 6, "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9}
_TEN = "十拾"
_NUMERAL = re.compile(f"[{''.join(_DIGIT_OF)}{_TEN}]+")


def _numeral_value(run: str) -> str | None:
    """一二 → 12 (digit by digit), 十二 → 12, 二十 → 20, 二十三 → 23; None when not a number."""
    tens = [i for i, c in enumerate(run) if c in _TEN]
    if not tens:
        return "".join(str(_DIGIT_OF[c]) for c in run)
    if len(tens) > 1:
        return None
    high, low = run[:tens[0]], run[tens[0] + 1:]
    if len(high) > 1 or len(low) > 1 or high in ("零", "〇"):
        return None
    return str(10 * (_DIGIT_OF[high] if high else 1) + (_DIGIT_OF[low] if low else 0))


def arabic_numerals(text: str) -> str:
    """Chinese numerals written as digits: 两年 → 2年, 贰 → 2, 十二个 → 12个; the rest as is."""
    return _NUMERAL.sub(lambda m: _numeral_value(m.group()) or m.group(), text)


def duration(seconds: float) -> str:
    """How long, as people say it: 3 分钟, 5 小时, 2 天 (rounded down; under a minute 0 分钟)."""
    minutes = max(int(seconds // 60), 0)
    if minutes < 60:
        return f"{minutes} 分钟"
    if minutes < 24 * 60:
        return f"{minutes // 60} 小时"
    return f"{minutes // (24 * 60)} 天"
