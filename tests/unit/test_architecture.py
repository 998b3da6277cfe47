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


# SQLAlchemy's query constructors: queries live in storage/repositories, where each has a name
# saying what it asks. Sessions, transactions and exceptions (IntegrityError) may be imported.
QUERY_BUILDERS = {"select", "update", "delete", "insert", "func", "text"}
QUERY_CALLS = {"execute", "scalar", "scalars", "get"}  # on a session: a query in disguise
# Where a query may stay outside storage/, and why (none today).
QUERIES_ALLOWED: dict[str, str] = {}


def inline_queries(package: str) -> list[str]:
    found: list[str] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        where = str(path.relative_to(ROOT))
        if where in QUERIES_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                found += [f"{where}:{node.lineno} imports {alias.name}" for alias in node.names
                          if alias.name in QUERY_BUILDERS]
            elif isinstance(node, ast.Import):
                found += [f"{where}:{node.lineno} imports {alias.name}" for alias in node.names
                          if alias.name.split(".")[0] == "sqlalchemy"]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in QUERY_CALLS and isinstance(node.func.value, ast.Name)
                  and node.func.value.id == "session"):
                found.append(f"{where}:{node.lineno} calls session.{node.func.attr}")
    return found


def test_services_and_adapters_leave_queries_to_storage() -> None:
    assert inline_queries("bot/services") == []
    assert inline_queries("bot/adapters") == []


def test_the_query_check_sees_an_inline_query() -> None:
    assert inline_queries("storage/repositories")  # where they belong, and the check finds them


def test_one_module_writes_the_order_log() -> None:
    """``filing.move_order`` and ``filing.note_order`` build every log row."""
    writers = {path.relative_to(ROOT).as_posix() for path in (ROOT / "bot").rglob("*.py")
               if "OrderEvent(" in path.read_text(encoding="utf-8")}
    assert writers == {"bot/services/filing.py"}
