"""docs/channels.md's table of sending rules says what bot/services/channels.py declares."""

from pathlib import Path

from bot.services.channels import CHANNELS, ChannelRules

DOC = Path(__file__).resolve().parents[2] / "docs" / "channels.md"


def _window(rules: ChannelRules) -> str:
    if rules.reply_window is None:
        return "always open"
    minutes = int(rules.reply_window.total_seconds() // 60)
    return f"{minutes // 60} hours" if minutes > 60 and minutes % 60 == 0 else f"{minutes} minutes"


def test_every_channel_has_its_row_with_its_numbers() -> None:
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in DOC.read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and "(`" in line}
    for rules in CHANNELS:
        window, replies, _outside, images = rows[f"{rules.name} (`{rules.platform}`)"]
        assert window.startswith(_window(rules)), rules.platform
        assert replies.startswith("no limit" if rules.replies_per_message is None
                                  else str(rules.replies_per_message)), rules.platform
        assert images.startswith("yes" if rules.images else "no"), rules.platform
    assert len(rows) == len(CHANNELS)
