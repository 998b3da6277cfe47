import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from loguru import logger
from sqlalchemy import inspect

from bot.config import ConfigError, load_settings
from storage.db import Database, alembic_config
from tests.support.helpers import MakeRuntime

ROOT = Path(__file__).resolve().parents[2]


async def test_migrations_build_the_schema_from_empty_and_match_the_models(
        database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    await db.migrate()  # a second start changes nothing
    async with db.engine.connect() as connection:
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        # raises if the models and the migrations disagree
        await connection.run_sync(lambda c: command.check(alembic_config(c)))
    assert {"companies", "handlers", "orders", "attachments", "order_events",
            "conversations"} <= tables
    async with db.engine.begin() as connection:
        await connection.run_sync(lambda c: command.downgrade(alembic_config(c), "base"))
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert tables <= {"alembic_version"}
    await db.migrate()
    await db.close()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    staging = load_settings(write(tmp_path / "staging/bot.toml", "[server]\nport = 8081\n"))
    live = load_settings(write(tmp_path / "live/bot.toml", "[server]\nport = 8082\n"))
    assert staging.data_dir == tmp_path / "staging/data"
    assert live.database_url.endswith(str(tmp_path / "live/data/cadesk.db"))
    assert (staging.server.port, live.server.port) == (8081, 8082)


def test_secrets_from_the_environment_win(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "bot.toml", '[onebot]\naccess_token = "from-file"\n')
    monkeypatch.setenv("CADESK_ONEBOT_ACCESS_TOKEN", "from-env")
    monkeypatch.setenv("CADESK_DATABASE_URL", "postgresql+asyncpg://u@h/db")
    settings = load_settings(path)
    assert settings.onebot.access_token == "from-env"
    assert settings.database_url == "postgresql+asyncpg://u@h/db"


def test_the_wechat_secrets_need_not_be_in_the_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "bot.toml", '[bot]\nadapters = ["wechat"]\n'
                 '[wechat]\nappid = "wx5f3c0e8a1b2d4c6e"\n')
    key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    monkeypatch.setenv("CADESK_WECHAT_APPSECRET", "secret-from-env")
    monkeypatch.setenv("CADESK_WECHAT_TOKEN", "token-from-env")
    monkeypatch.setenv("CADESK_WECHAT_ENCODING_AES_KEY", key)
    settings = load_settings(path)
    wechat = settings.wechat
    assert (wechat.appsecret, wechat.token, wechat.encoding_aes_key) == (
        "secret-from-env", "token-from-env", key)
    assert settings.serves_http  # WeChat calls the bot's /wechat/callback
    monkeypatch.setenv("CADESK_WECHAT_ENCODING_AES_KEY", key[:-1])
    with pytest.raises(ConfigError, match="43"):
        load_settings(path)


@pytest.mark.parametrize(("text", "complaint"), [
    ("[bot]\nadapter = ['console']\n", "adapter"),
    ("[bot]\nadapters = ['telegram']\n", "adapters"),
    ("[bot]\nadapters = ['wechat']\n", r"\[wechat\] appid, appsecret, token must be set"),
    ("[wechat]\nencoding_aes_key = 'short'\n", "43 characters"),
    ("[wechat]\nnotice_template_data = { thing1 = '{name}' }\n", "unknown placeholders"),
    ("[bot]\ntimezone = 'Mars/Olympus'\n", "time zone"),
    ("[bot\n", "bot.toml"),
    ("[pki]\nenabled = true\n", r"\[agents\] enabled"),
    ("[pki]\nca_token_module = 'x.so'\n", "go together"),
])
def test_mistakes_in_the_file_are_reported(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        load_settings(write(tmp_path / "bot.toml", text))


def test_the_documented_example_is_valid() -> None:
    settings = load_settings(ROOT / "bot.toml")
    assert settings.bot.adapters == ["console"]
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


def test_python_m_bot_refuses_a_missing_config(tmp_path: Path) -> None:
    env = {**os.environ, "CADESK_CONFIG": str(tmp_path / "nowhere.toml")}
    result = subprocess.run([sys.executable, "-m", "bot"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "configuration file not found" in result.stderr


async def test_the_data_directory_is_closed_to_others_at_start(
        tmp_path: Path, make_runtime: MakeRuntime) -> None:
    """A data directory made 0755 with a 0644 database (an old install, a copy, a umask) is
    0700 with 0600 files once the bot has started, and the log says what changed."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    database = data / "cadesk.db"
    with sqlite3.connect(database) as db:  # a WAL database with its -wal and -shm files open
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE kept (x)")
        for path in (database, data / "cadesk.db-wal", data / "cadesk.db-shm"):
            path.chmod(0o644)
        lines: list[str] = []
        sink = logger.add(lines.append, level="WARNING", format="{message}")
        try:
            await make_runtime()
        finally:
            logger.remove(sink)
        files = [database, data / "cadesk.db-wal", data / "cadesk.db-shm"]
        assert all(path.exists() for path in files)
        assert [stat.S_IMODE(path.stat().st_mode) for path in [data, *files]] == [
            0o700, 0o600, 0o600, 0o600]
    assert f"{data}: mode 0755 changed to 0700" in "".join(lines)
    assert f"{database}: mode 0644 changed to 0600" in "".join(lines)


async def test_a_new_database_is_never_readable_by_others(
        tmp_path: Path, make_runtime: MakeRuntime) -> None:
    old = os.umask(0o022)
    try:
        await make_runtime()
    finally:
        os.umask(old)
    data = tmp_path / "data"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.glob("cadesk.db*")}
    assert modes.keys() >= {"cadesk.db"}
    assert set(modes.values()) == {0o600}, modes
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
