"""Test set-up: one nonebot instance (OneBot v11 adapter) over a throwaway data directory; the
fixtures several test modules share (runtimes, databases, mail servers)."""

import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from nonebug import NONEBOT_INIT_KWARGS

from bot.config import Settings, load_settings
from bot.runtime import Runtime
from bot.samples import sample_scan
from bot.services.ports import ChatChannel
from storage.db import sqlite_url
from tests.support import mail_corpus
from tests.support.dovecot import Dovecot, dovecot_server
from tests.support.helpers import MakeRuntime, RecordingChat, ScanServer
from tests.support.postgres import postgres_server
from tests.support.smtp_sink import SmtpSink

_SETTINGS = pytest.StashKey[Settings]()

TEST_CONFIG = """
[bot]
adapters = ["onebot", "console"]
data_dir = "data"
log_level = "WARNING"

[scans]
min_short_side = 600
min_long_side = 800
max_megabytes = 2
download_timeout_seconds = 3

[fees]
certificate = 260

[staff]
technicians = ["qq:900001", "qq:900002"]
group = "qq:900"

[payment]
url_template = "https://pay.example.test/ca?order={number}&amount={amount}"
"""


def pytest_configure(config: pytest.Config) -> None:
    from bot.app import nonebot_options

    root = Path(tempfile.mkdtemp(prefix="cadesk-test-"))
    (root / "bot.toml").write_text(TEST_CONFIG, encoding="utf-8")
    settings = load_settings(root / "bot.toml")
    config.stash[_SETTINGS] = settings
    # the Console adapter without its terminal window
    config.stash[NONEBOT_INIT_KWARGS] = {**nonebot_options(settings), "console_headless_mode": True}


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[_SETTINGS]


@pytest.fixture(scope="session", autouse=True)
async def after_nonebot_init(after_nonebot_init: None, settings: Settings) -> None:
    from bot.app import install

    install(settings)


@pytest.fixture(autouse=True)
async def _no_notice_carried_over(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """The nonebug tests share one bot: a notice a test left undelivered (sent while no bot
    was connected, which nonebug's bots are only inside ``test_matcher``) must not reach the
    next test's bot when it connects."""
    yield
    if "app" in request.fixturenames:
        from sqlalchemy import update

        from bot.runtime import get_runtime
        from storage.models import OutgoingChat, utcnow

        async with get_runtime().db.transaction() as session:
            await session.execute(update(OutgoingChat).where(OutgoingChat.sent_at.is_(None))
                                  .values(dropped_at=utcnow()))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Callable[[], str]]:
    """A real PostgreSQL server for the session; call it for a fresh database URL."""
    with postgres_server() as new_database:
        yield new_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a storage test on both backends bot.toml supports."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "test.db")
    return request.getfixturevalue("postgres")()


@pytest.fixture(scope="session")
async def scan_server():
    async with ScanServer() as server:
        yield server


@pytest.fixture
async def make_runtime(tmp_path: Path) -> AsyncIterator[MakeRuntime]:
    """Start the bot's services without nonebot: ``await make_runtime(TOML)`` writes the
    configuration to ``tmp_path/bot.toml`` (where a process the test starts finds it too) and
    returns the started runtime, telling a ``RecordingChat`` unless given a chat. Every runtime
    started is stopped at teardown."""
    started: list[Runtime] = []

    async def start(config: str = "", chat: ChatChannel | None = None) -> Runtime:
        path = tmp_path / "bot.toml"
        path.write_text(config, encoding="utf-8")
        runtime = await Runtime.start(load_settings(path), chat or RecordingChat())
        started.append(runtime)
        return runtime

    yield start
    for runtime in reversed(started):
        await runtime.stop()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A real IMAP server (Dovecot) holding the unlock mailbox."""
    with dovecot_server(mail_corpus.MAILBOX) as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) keeping what it is sent."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def scan_files(tmp_path: Path) -> list[Path]:
    """Four distinct sample scans (附件一 to 附件四) as files, typed as paths on the Console."""
    paths = []
    for n in range(4):
        path = tmp_path / f"scan{n}.jpg"
        path.write_bytes(sample_scan(f"{tmp_path.name} {n}"))
        paths.append(path)
    return paths
