"""Normalising what people type in a chat."""

import unicodedata


def normalise(text: str) -> str:
    """Full-width letters, digits and spaces become half-width; outer whitespace goes.

    Phone keyboards in Chinese mode often send full-width digits (１３８…) and spaces (U+3000).
    NFKC folds exactly those; Chinese characters are unchanged.
    """
    return unicodedata.normalize("NFKC", text).strip()


def compact(text: str) -> str:
    """``normalise`` and drop every inner space too: for numbers typed with separators."""
    return "".join(normalise(text).split()).replace("-", "")
