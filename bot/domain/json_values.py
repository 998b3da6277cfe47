"""Copies of JSON values (dicts, lists and scalars, as a form's state is stored).

``copy.deepcopy`` and ``dataclasses.asdict`` handle any object, with a memo of every one they
visit; on the chat's path (a form state read from memory, then saved, on every message) that
generality was a tenth of a message's time in the dialogue.
"""

from typing import Any


def copied(value: Any) -> Any:
    """``value`` with every dict and list in it copied (a scalar is immutable: itself)."""
    if isinstance(value, dict):
        return {key: copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copied(item) for item in value]
    return value
