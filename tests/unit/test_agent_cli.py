"""The key agent talks to a clerk at the PC: its help, prompts and errors are Chinese, and what
it writes for itself (agent.toml) reads back on Windows too."""

import socket
from pathlib import Path

import pytest

from bot.key_agent import cli
from bot.key_agent.config import AgentConfig


def test_help_is_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["pair"], ["run"]):
        with pytest.raises(SystemExit) as done:
            cli.main([*argv, "--help"])
        assert done.value.code == 0
        shown = capsys.readouterr().out
        assert shown.startswith("用法：cadesk-agent")
        assert "显示本说明后退出" in shown
        assert "usage" not in shown
        assert "show this help" not in shown
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "请输入新密码" in capsys.readouterr().out  # says what the window will ask


def test_a_wrong_command_line_is_explained_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["pair", "--code", "ABCD2345"])
    assert done.value.code == 2
    assert "缺少参数：--server" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["unlock"])
    assert "没有这个命令" in capsys.readouterr().err


def test_a_windows_driver_path_survives_agent_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """agent.toml is written on the first pair; a DLL path's backslashes were TOML escapes."""
    with socket.socket() as unused:  # a port nobody listens on: the bot is unreachable
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.chdir(tmp_path)
    dll = r"C:\Windows\System32\vendor_p11.dll"
    status = cli.main(["pair", "--server", f"http://127.0.0.1:{port}", "--code", "ABCD2345",
                       "--module", dll])
    assert status == 1
    assert "连接不上服务" in capsys.readouterr().out
    assert AgentConfig.load(tmp_path / "agent.toml").module == dll


def test_running_unpaired_says_what_to_do(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--config", str(tmp_path / "agent.toml")]) == 1
    assert "请先运行 cadesk-agent pair" in capsys.readouterr().out
    (tmp_path / "agent.toml").write_text('server = "http://127.0.0.1:1"\nmodule = "x.so"\n')
    assert cli.main(["run", "--config", str(tmp_path / "agent.toml")]) == 1
    assert "本机还没有绑定" in capsys.readouterr().out
