"""The domain and the services stay free of the frameworks around them; services reach I/O
through ports; tests share helpers through tests/support/ only."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules_of(path: Path) -> set[str]:
    """Every module the file imports, and for ``from X import Y`` also ``X.Y`` (Y may be a
    module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def imported_modules(package: str) -> set[str]:
    return {name for path in (ROOT / package).rglob("*.py") for name in imported_modules_of(path)}


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


def test_services_reach_adapters_only_through_their_ports() -> None:
    """Use cases depend on interfaces (bot/services/ports.py); bot/runtime.py builds the
    adapters and hands them in. Adapters may import services: what they drive, and the ports
    and messages they implement."""
    assert not {m for m in imported_modules("bot/services") if m.startswith("bot.adapters")}


def test_only_the_runtime_wires_services_together() -> None:
    """No service assigns itself into another's attribute (``hub.steps = self``)."""
    for path in (ROOT / "bot/services").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
                assert node.value.id != "self", f"{path.relative_to(ROOT)}:{node.lineno}"


def test_no_test_module_imports_another() -> None:
    """Shared helpers live in tests/support/, fixtures in tests/conftest.py."""
    for path in (ROOT / "tests").rglob("test_*.py"):
        for name in imported_modules_of(path):
            assert not name.rpartition(".")[2].startswith("test_"), \
                f"{path.relative_to(ROOT)} imports {name}"
