"""Test set-up: one nonebot instance (OneBot v11 adapter) over a throwaway data directory."""

import tempfile
from pathlib import Path

import pytest
from nonebug import NONEBOT_INIT_KWARGS

from bot.config import Settings, load_settings
from tests.helpers import ScanServer

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


@pytest.fixture(scope="session")
async def scan_server():
    async with ScanServer() as server:
        yield server
