"""The database's consistent snapshot while the bot writes, and its return.

SQLite: the online backup API copies the database as one read transaction sees it (WAL
readers do not block the bot's writer). PostgreSQL: ``pg_dump`` in custom format, which reads
one snapshot too, and ``pg_restore`` into an empty database.
"""

import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import URL, inspect, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from storage.db import sqlite_file

SQLITE, POSTGRESQL = "sqlite", "postgresql"
MEMBER = {SQLITE: "database/cadesk.sqlite", POSTGRESQL: "database/cadesk.pgdump"}


class DatabaseCopyError(Exception):
    pass


def engine_of(url: str) -> str:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        if sqlite_file(url) is None:
            raise DatabaseCopyError(f"cannot back up the SQLite database {url!r} (not a file)")
        return SQLITE
    if backend == "postgresql":
        return POSTGRESQL
    raise DatabaseCopyError(f"cannot back up a {backend} database")


def snapshot(url: str, target: Path) -> None:
    """Write a consistent copy of the database at ``url`` to ``target``."""
    if engine_of(url) == SQLITE:
        _sqlite_snapshot(_sqlite_path(url), target)
    else:
        _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
              f"--file={target}", f"--dbname={_libpq(url)}"], url)


def restore(url: str, dump: Path) -> None:
    """Put the snapshot ``dump`` into the database at ``url``, which must be empty (SQLite: the
    file must not exist; the caller moves it into place)."""
    if engine_of(url) == SQLITE:
        raise DatabaseCopyError("a SQLite snapshot is restored as a file, not through a URL")
    _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
          "--single-transaction",
          f"--dbname={_libpq(url)}", str(dump)], url)


async def is_empty(url: str) -> bool:
    """Whether the database has no tables yet (a fresh PostgreSQL database)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    return not tables


def _sqlite_path(url: str) -> Path:
    path = sqlite_file(url)
    assert path is not None  # engine_of said so
    return path


def _sqlite_snapshot(database: Path, target: Path) -> None:
    if not database.is_file():
        raise DatabaseCopyError(f"no database at {database}")
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)  # all pages in one step: one read transaction, one moment
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        copy.close()
        source.close()
    target.chmod(0o600)


def referenced_scans(engine: str, dump: Path) -> set[str]:
    """The scan-store files the snapshot names: its orders' attachments, the drafts' scans and
    the attachments of mail not yet sent (what ``bot.services.scan_use`` keeps on disk)."""
    if engine == SQLITE:
        rows = _sqlite_rows(dump)
    else:
        listing = subprocess.run(["pg_restore", "--data-only", "--file=-", *(
            f"--table={table}" for table in SCAN_NAMING_TABLES), str(dump)],
            capture_output=True, text=True, check=False)
        if listing.returncode != 0:
            raise DatabaseCopyError(f"pg_restore could not read the dump: "
                                    f"{listing.stderr.strip()}")
        rows = _copied_rows(listing.stdout)
    named = {row["sha256"] for row in rows.get("attachments", [])}
    for row in rows.get("conversations", []):
        named |= {scan["sha256"] for scan in json.loads(row["state"]).get("scans", {}).values()}
    for row in rows.get("outgoing_mail", []):
        if row["sent_at"] is None and row["failed_at"] is None and row["attachments"]:
            named |= {file["sha256"] for file in json.loads(row["attachments"]) or ()}
    return {name for name in named if name}


SCAN_NAMING_TABLES = ("attachments", "conversations", "outgoing_mail")
Rows = dict[str, list[dict[str, str | None]]]


def _sqlite_rows(dump: Path) -> Rows:
    connection = sqlite3.connect(f"file:{dump}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        return {table: [dict(row) for row in connection.execute(f"SELECT * FROM {table}")]
                for table in SCAN_NAMING_TABLES}
    finally:
        connection.close()


# pg_restore prints a table's rows as "COPY public.attachments (id, …) FROM stdin;", then one
# tab-separated line per row in COPY's text format (\N: null; \\, \t, \n … escaped), then "\."
_COPY = re.compile(r"^COPY (?:\w+\.)?(\w+) \((.*)\) FROM stdin;$")
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _copied_rows(script: str) -> Rows:
    rows: Rows = {}
    table: str | None = None
    columns: list[str] = []
    for line in script.split("\n"):  # not splitlines: a text may hold U+2028, unescaped
        if (copy := _COPY.match(line)) is not None:
            table, columns = copy[1], [c.strip('"') for c in copy[2].split(", ")]
            rows[table] = []
        elif line == "\\.":
            table = None
        elif table is not None:
            rows[table].append(dict(zip(columns, map(_copy_value, line.split("\t")),
                                        strict=True)))
    return rows


def _copy_value(field: str) -> str | None:
    if field == "\\N":
        return None
    return re.sub(r"\\(.)", lambda escape: _ESCAPES.get(escape[1], escape[1]), field)


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as libpq reads it, the password left out (it goes in PGPASSWORD, not
    on a command line others can list)."""
    parsed: URL = make_url(url)
    plain = parsed.set(drivername="postgresql", password=None, query={})
    return plain.render_as_string(hide_password=False)


def _run(argv: list[str], url: str) -> None:
    env = dict(os.environ)
    password = make_url(url).password
    if password:
        env["PGPASSWORD"] = str(password)
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DatabaseCopyError(f"{argv[0]} not found: install the PostgreSQL client "
                                "(Debian: postgresql-client)") from None
    if result.returncode != 0:
        raise DatabaseCopyError(f"{argv[0]} failed: {result.stderr.strip()}")
