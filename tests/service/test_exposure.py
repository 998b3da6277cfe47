"""Who can reach the bot's endpoints: the OneBot endpoint never listens beyond this machine, or
beside the key agents' endpoint, without its access token (refused at start-up, saying why)."""

from pathlib import Path

import pytest

from bot.__main__ import main
from bot.config import ConfigError, load_settings

ONEBOT = '[bot]\nadapters = ["onebot"]\n'


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bot.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def no_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CADESK_ONEBOT_ACCESS_TOKEN", raising=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "bot.example.test"])
def test_onebot_beyond_loopback_without_a_token_does_not_start(
        tmp_path: Path, host: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, ONEBOT + f'[server]\nhost = "{host}"\n')
    assert main(["--config", str(path)]) == 2
    assert "CADESK_ONEBOT_ACCESS_TOKEN" in capsys.readouterr().err


def test_onebot_beside_the_agents_endpoint_needs_the_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[agents\] enabled shares the server"):
        load_settings(config(tmp_path, ONEBOT + "[agents]\nenabled = true\n"))


@pytest.mark.parametrize("text", [
    ONEBOT + '[server]\nhost = "127.0.0.1"\n',  # a local NapCat: loopback only
    ONEBOT + '[server]\nhost = "::1"\n',
    ONEBOT + '[server]\nhost = "0.0.0.0"\n[onebot]\naccess_token = "s3cret"\n',
    ONEBOT + '[agents]\nenabled = true\n[onebot]\naccess_token = "s3cret"\n',
    '[bot]\nadapters = ["console"]\n[server]\nhost = "0.0.0.0"\n[agents]\nenabled = true\n',
])
def test_loopback_or_a_token_or_no_onebot_starts(tmp_path: Path, text: str) -> None:
    load_settings(config(tmp_path, text))


def test_the_token_from_the_environment_counts(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADESK_ONEBOT_ACCESS_TOKEN", "from-env")
    load_settings(config(tmp_path, ONEBOT + '[server]\nhost = "0.0.0.0"\n'))


QQBOT = '[bot]\nadapters = ["qqbot"]\n[qqbot]\napp_id = "102000001"\n'


def test_the_qq_bot_does_not_start_without_its_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the AppSecret no event could be checked: the bot says what to set, and does not
    start with a webhook that would take any POST."""
    monkeypatch.delenv("CADESK_QQBOT_SECRET", raising=False)
    assert main(["--config", str(config(tmp_path, QQBOT))]) == 2
    assert "CADESK_QQBOT_SECRET" in capsys.readouterr().err
    monkeypatch.setenv("CADESK_QQBOT_SECRET", "from-the-environment")
    settings = load_settings(config(tmp_path, QQBOT))
    assert settings.qqbot.secret == "from-the-environment"
    assert settings.serves_http  # the webhook needs the HTTP server
