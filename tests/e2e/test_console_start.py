"""The first thing a newcomer sees: ``python -m bot`` on the Console (in a real terminal, tmux)
starts without a traceback and answers."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def tmux(*args: str, check: bool = True) -> str:
    """tmux on a server of the test's own (another's kill-server cannot end it)."""
    return subprocess.run(["tmux", "-L", "cadesk-test", *args], capture_output=True, text=True,
                          check=check).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for_screen(session: str, text: str, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        shown = screen(session)
        if text in shown:
            return shown
        time.sleep(0.3)
    raise AssertionError(f"{text!r} never shown:\n{screen(session)}")


def test_the_console_starts_clean_and_answers(tmp_path: Path) -> None:
    config = tmp_path / "bot.toml"
    config.write_text((ROOT / "bot.toml").read_text(encoding="utf-8").replace(
        'data_dir = "data"', f'data_dir = "{tmp_path / "data"}"'), encoding="utf-8")
    session = f"cadesk-console-{tmp_path.name}"
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "50",
         # COLUMNS/LINES from pytest's terminal would shrink the Console's window
         f"cd {ROOT} && exec env -u COLUMNS -u LINES {sys.executable} -m bot --config {config}",
         ";", "set-option", "-t", session, "remain-on-exit", "on")  # a crash stays readable
    try:
        started = wait_for_screen(session, "startup completed")
        assert "Traceback" not in started, started
        assert "Error" not in started, started
        tmux("send-keys", "-t", session, "C-_")
        tmux("send-keys", "-t", session, "-l", "你好")
        tmux("send-keys", "-t", session, "Enter")
        answered = wait_for_screen(session, "统一社会信用代码")
        assert "Traceback" not in answered, answered
    finally:
        tmux("send-keys", "-t", session, "C-q", check=False)
        time.sleep(1)
        tmux("kill-session", "-t", session, check=False)
