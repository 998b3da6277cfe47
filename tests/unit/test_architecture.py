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


def test_backups_run_without_the_bot_framework() -> None:
    """``cadesk backup`` runs beside the bot (cron, a timer): nothing it imports, directly or
    not, loads nonebot."""
    import subprocess
    import sys

    probe = ("import sys, bot.__main__, bot.backup.take, bot.backup.restore, bot.backup.prune; "
             "print(sorted(m for m in sys.modules if m.startswith(('nonebot', 'plugins'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_the_key_agent_stands_alone() -> None:
    """It runs on the applicant's PC: no bot framework, no database, nothing of the bot."""
    forbidden = ("nonebot", "storage", "sqlalchemy", "alembic", "bot.services", "plugins")
    assert not {m for m in imported_modules("bot/key_agent") if m.startswith(forbidden)}


def test_the_agent_package_declares_what_the_agent_imports() -> None:
    """The wheel the bot serves (bot/services/agents/guide.py) holds bot/key_agent alone: every
    other package it imports must be a requirement pip installs on the clerk's PC."""
    import sys
    from importlib import metadata

    from bot.services.agents.guide import AGENT_REQUIREMENTS

    tops = {m.split(".")[0] for m in imported_modules("bot/key_agent")}
    third_party = {t for t in tops if t not in sys.stdlib_module_names and t != "bot"}
    providers = metadata.packages_distributions()
    needed = {providers[t][0].lower() for t in third_party}
    declared = {r.split(">")[0].split("<")[0].split("=")[0].lower() for r in AGENT_REQUIREMENTS}
    assert needed <= declared
    assert {m for m in imported_modules("bot/key_agent") if m.startswith("bot.")} <= {
        m for m in imported_modules("bot/key_agent") if m.startswith("bot.key_agent")}


def test_the_ca_core_is_a_library() -> None:
    """A real external CA plugs in behind its interface: no bot, no database, no chat."""
    forbidden = ("nonebot", "storage", "sqlalchemy", "alembic", "bot.services", "plugins",
                 "bot.key_agent")
    assert not {m for m in imported_modules("bot/pki") if m.startswith(forbidden)}


def test_the_paper_forms_are_a_library() -> None:
    """Layouts and drawing only: the answers come in, PDF and PNG bytes go out."""
    forbidden = ("nonebot", "storage", "sqlalchemy", "alembic", "bot.services", "plugins",
                 "bot.adapters", "bot.domain")
    assert not {m for m in imported_modules("bot/documents") if m.startswith(forbidden)}


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
