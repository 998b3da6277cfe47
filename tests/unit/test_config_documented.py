"""Every setting is documented twice and only in two agreed places: a docstring under its field
in bot/config.py, and its line (set, or commented out as ``# key =``) with a comment in bot.toml.
A new setting cannot go undocumented."""

import re
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from bot.config import Settings
from bot.domain.lifecycle import OrderType

ROOT = Path(__file__).resolve().parents[2]
HEADER = re.compile(r"^\[\[?(\w+)\]\]?\s*$")  # [section] or [[array of tables]]
KEY = re.compile(r"^(?:#\s*)?(\w+)\s*=")


def keys_by_section(toml: str) -> dict[str, set[str]]:
    """The keys each ``[section]`` of the file mentions, set or commented out."""
    sections: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in toml.splitlines():
        if header := HEADER.match(line):
            current = sections.setdefault(header[1], set())
        elif current is not None and (key := KEY.match(line.strip())):
            current.add(key[1])
    return sections


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a ``[section]``, or of each ``[[table]]`` of an array; None: neither."""
    if get_origin(annotation) is list:
        annotation = get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def expected_keys() -> dict[str, set[str]]:
    """What bot.toml must mention: every field of every section ([[faq]]'s too); [fees] by
    order type."""
    expected = {}
    for name, field in Settings.model_fields.items():
        model = section_model(field.annotation)
        if model is not None:
            expected[name] = set(model.model_fields)
        else:
            assert name == "fees", f"[{name}] is neither a section nor the fees table"
            expected[name] = {t.value for t in OrderType}
    return expected


def undocumented(toml: str) -> list[str]:
    """Settings the file does not mention, as ``section.key``."""
    found = keys_by_section(toml)
    return sorted(f"{section}.{key}" for section, keys in expected_keys().items()
                  for key in keys - found.get(section, set()))


def test_bot_toml_mentions_every_setting() -> None:
    assert undocumented((ROOT / "bot.toml").read_text(encoding="utf-8")) == []


def test_a_setting_left_out_of_bot_toml_is_found() -> None:
    text = (ROOT / "bot.toml").read_text(encoding="utf-8")
    without = re.sub(r"(?m)^# ca_key_label = .*\n", "", text)
    without = re.sub(r"(?m)^idle_minutes = .*\n", "", without)
    assert undocumented(without) == ["dialogue.idle_minutes", "pki.ca_key_label"]


def test_bot_toml_mentions_no_setting_that_does_not_exist() -> None:
    """Commented-out keys are not checked by loading the file: check them here."""
    expected = expected_keys()
    found = keys_by_section((ROOT / "bot.toml").read_text(encoding="utf-8"))
    assert {f"{s}.{k}" for s, keys in found.items() for k in keys - expected.get(s, set())} \
        == set()


def test_every_section_and_field_has_a_docstring() -> None:
    for name, section in Settings.model_fields.items():
        model = section_model(section.annotation)
        if model is not None:
            assert model.__doc__, f"[{name}]"
            for key, field in model.model_fields.items():
                assert field.description, f"[{name}] {key}"
        else:
            assert section.description, f"[{name}]"
