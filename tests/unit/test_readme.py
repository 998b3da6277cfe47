"""What the README tells a newcomer to press or type is what the software takes."""

import re
from pathlib import Path

from nonechat.app import Frontend

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_the_console_is_quit_with_the_key_the_readme_names() -> None:
    """The Console (nonechat, a Textual app) quits on its ``quit`` binding, Ctrl+Q; Ctrl+C
    does not quit it (the README once said so)."""
    quit_keys = {b.key for b in Frontend.BINDINGS if b.action == "quit"}
    named = re.findall(r"Quit with `([^`]+)`", README)
    assert named, "the README's Console walkthrough says how to quit"
    assert {key.lower() for key in named} == quit_keys == {"ctrl+q"}
    assert "Ctrl+C" not in README
