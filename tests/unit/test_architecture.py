"""The domain and the services stay free of the frameworks around them."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(package: str) -> set[str]:
    names: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
    return names


def test_domain_imports_no_framework() -> None:
    forbidden = ("nonebot", "sqlalchemy", "aiohttp", "alembic", "storage", "bot.services")
    bad = {m for m in imported_modules("bot/domain") if m.startswith(forbidden)}
    assert not bad


def test_services_and_storage_import_no_nonebot() -> None:
    for package in ("bot/services", "storage"):
        assert not {m for m in imported_modules(package) if m.startswith("nonebot")}


def test_the_key_agent_stands_alone() -> None:
    """It runs on the applicant's PC: no bot framework, no database, nothing of the bot."""
    forbidden = ("nonebot", "storage", "sqlalchemy", "alembic", "bot.services", "plugins")
    assert not {m for m in imported_modules("bot/key_agent") if m.startswith(forbidden)}


def test_the_ca_core_is_a_library() -> None:
    """A real external CA plugs in behind its interface: no bot, no database, no chat."""
    forbidden = ("nonebot", "storage", "sqlalchemy", "alembic", "bot.services", "plugins",
                 "bot.key_agent")
    assert not {m for m in imported_modules("bot/pki") if m.startswith(forbidden)}


def test_one_module_writes_the_order_log() -> None:
    """``filing.move_order`` and ``filing.note_order`` build every log row."""
    writers = {path.relative_to(ROOT).as_posix() for path in (ROOT / "bot").rglob("*.py")
               if "OrderEvent(" in path.read_text(encoding="utf-8")}
    assert writers == {"bot/services/filing.py"}
