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


def screen(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                          text=True, check=True).stdout


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
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50",
                    # COLUMNS/LINES from pytest's terminal would shrink the Console's window
                    f"cd {ROOT} && exec env -u COLUMNS -u LINES {sys.executable} -m bot "
                    f"--config {config}"], check=True)
    try:
        started = wait_for_screen(session, "startup completed")
        assert "Traceback" not in started, started
        assert "Error" not in started, started
        subprocess.run(["tmux", "send-keys", "-t", session, "C-_"], check=True)
        subprocess.run(["tmux", "send-keys", "-t", session, "-l", "你好"], check=True)
        subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)
        answered = wait_for_screen(session, "统一社会信用代码")
        assert "Traceback" not in answered, answered
    finally:
        subprocess.run(["tmux", "send-keys", "-t", session, "C-q"], check=False)
        time.sleep(1)
        subprocess.run(["tmux", "kill-session", "-t", session], check=False,
                       capture_output=True)
