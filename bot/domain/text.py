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
