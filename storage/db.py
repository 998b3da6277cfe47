"""The database: an async engine, sessions, and migrations to head at start."""

import stat
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from loguru import logger
from sqlalchemy import Connection, event, literal, make_url, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from storage.account_memo import AccountMemo, watch
from storage.cluster import Cluster, serialise
from storage.errors import DatabaseUnavailable

MIGRATIONS = Path(__file__).with_name("migrations")
T = TypeVar("T")


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL; None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.database.startswith("file:"):  # a URI filename: leave it to whoever wrote it
        return None
    return Path(parsed.database)


def restrict(path: Path, mode: int) -> None:
    """Give ``path`` exactly ``mode`` (0700 for a directory, 0600 for a file of personal data),
    saying so when it was anything else."""
    was = stat.S_IMODE(path.stat().st_mode)
    if was != mode:
        path.chmod(mode)
        logger.warning(f"{path}: mode {was:04o} changed to {mode:04o} (personal data)")


def restrict_sqlite_files(database: Path) -> None:
    """The database and its -wal and -shm files, 0600. A database not there yet is made empty
    with that mode first (an empty file is an empty SQLite database), so SQLite, which gives
    the -wal and -shm files the database's own mode, never makes any of them readable by
    others."""
    if not database.exists() and database.parent.is_dir():
        database.touch(mode=0o600)
    for path in (database, database.with_name(database.name + "-wal"),
                 database.with_name(database.name + "-shm")):
        if path.exists():
            restrict(path, 0o600)


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def is_outage(error: BaseException) -> bool:
    """Whether ``error``, raised inside a transaction, is the database's fault rather than the
    statement's (for code that catches errors before ``transaction`` sees them: a savepoint)."""
    return isinstance(error, DatabaseUnavailable) or (
        isinstance(error, DBAPIError) and _outage(error))


def _outage(error: DBAPIError) -> bool:
    # OperationalError: SQLite "database is locked", a server gone; InterfaceError: asyncpg's
    # "connection is closed"; an invalidated connection is one the pool found dead
    return isinstance(error, OperationalError | InterfaceError) or error.connection_invalidated


@asynccontextmanager
async def outages() -> AsyncIterator[None]:
    """A driver's error that is the database's fault, raised as ``DatabaseUnavailable``."""
    try:
        yield
    except DBAPIError as error:
        if not _outage(error):
            raise
        raise DatabaseUnavailable(f"{type(error.orig).__name__}: {error.orig}") from error


async def _connect(connecting: Awaitable[T]) -> T:
    """Connect now: a refusal here is an outage (asyncpg's own errors, e.g. a refused
    connection, are not wrapped by SQLAlchemy)."""
    try:
        return await connecting
    except DBAPIError:
        raise
    except Exception as error:
        raise DatabaseUnavailable(f"{type(error).__name__}: {error}") from error


class Database:
    def __init__(self, url: str, *, shared: bool = False) -> None:
        """``shared``: other bot processes use this (PostgreSQL) database too ([cluster])."""
        self.url = url
        self.engine = create_async_engine(url, pool_pre_ping=not url.startswith("sqlite"))
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        # the locks the processes share; without others, granted at once
        self.cluster = Cluster(url if shared else None)
        # the chat's bindings and forms between messages; this database's writes keep it
        # true. Another process's writes would not be seen: shared, it keeps nothing
        self.memo = AccountMemo(size=0 if shared else 10_000)
        sessions = type("WatchedSession", (Session,), {})  # hooks for this database only
        watch(sessions, self.memo)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False,
                                            sync_session_class=sessions)

    async def migrate(self) -> None:
        """Bring the schema from whatever it is (empty included) to the newest migration."""
        async with self.engine.connect() as connection:
            sqlite = self.engine.dialect.name == "sqlite"
            if sqlite:
                # SQLite alters a column by copying the table and dropping the old one, which
                # foreign keys forbid; they are checked once the schema is done (SQLite ignores
                # this pragma inside a transaction, so it goes first)
                await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            else:  # processes starting together migrate one after the other
                await serialise(connection, "migrations")
            try:
                await connection.run_sync(
                    lambda sync: command.upgrade(alembic_config(sync), "head"))
                if sqlite and (await connection.exec_driver_sql(
                        "PRAGMA foreign_key_check")).first() is not None:
                    raise RuntimeError("the migration left rows pointing at nothing")
                await connection.commit()
            finally:
                if sqlite:
                    await connection.rollback()
                    await connection.exec_driver_sql("PRAGMA foreign_keys=ON")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on any error.

        Raises ``DatabaseUnavailable`` when the database cannot be reached or stays locked.
        """
        async with self._sessions() as session, outages(), session.begin():
            await _connect(session.connection())
            yield session

    async def connect(self) -> AsyncConnection:
        """A Core connection of the caller's own, kept until it closes it (a writer that holds
        one connection: no pool checkout, no reset on return), without the ORM and the account
        memo's hooks; its transactions go inside ``outages()``. Raises ``DatabaseUnavailable``
        as ``transaction`` does."""
        async with outages():
            return await _connect(self.engine.connect())

    async def ping(self) -> None:
        """``SELECT 1`` in a transaction of its own; raises ``DatabaseUnavailable`` as
        ``transaction`` does (the caller bounds how long it may take)."""
        async with self.transaction() as session:
            await session.execute(select(literal(1)))

    async def close(self) -> None:
        await self.cluster.close()
        await self.engine.dispose()
