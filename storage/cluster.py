"""Locks shared by several bot processes on one PostgreSQL database (``[cluster] enabled``).

A lock is a PostgreSQL session-level advisory lock, held on a connection of its own (in
autocommit: no transaction stays open while it is held) for as long as the work it guards:
one account's message, one pass of an outbox, one poll of the mailbox. It is released when the
work ends, whichever way; if that cannot be said for sure (the unlock failed, or the task was
cancelled while the lock was being taken) the connection is closed instead, and the server
releases everything it held. A process that dies loses its connections, and with them its locks:
nothing stays locked behind it.

In one process (SQLite, or PostgreSQL without ``[cluster]``) every lock is granted at once and
nothing is asked of the database: the in-process locks beside these keep one process right.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from hashlib import blake2b

from loguru import logger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine

from storage.errors import DatabaseUnavailable

# connections for locks (a lock waiting for another process holds one too): one per account
# whose message is being handled, and one per worker pass; with the 15 of the database's own
# pool, a process opens 35 at most (PostgreSQL allows 100 by default)
LOCK_POOL, LOCK_OVERFLOW = 5, 15
_LOCK = text("SELECT pg_advisory_lock(:key)")
_TRY = text("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")
_XACT_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def lock_key(name: str) -> int:
    """The advisory lock's number for ``name``: 64 bits of its BLAKE2b hash, as PostgreSQL's
    signed bigint (a collision only makes two names wait for each other)."""
    return int.from_bytes(blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


async def serialise(on: AsyncSession | AsyncConnection, name: str) -> None:
    """Wait, inside the current transaction, until no other transaction holds ``name``, and
    hold it until this one ends (PostgreSQL: whichever process; SQLite writes one transaction
    at a time anyway). For a read-then-write that must not interleave (the next CRL number,
    the migrations)."""
    bind = on.bind if isinstance(on, AsyncSession) else on
    if bind.dialect.name == "postgresql":
        await on.execute(_XACT_LOCK, {"key": lock_key(name)})


class Cluster:
    """The processes sharing the database; ``url`` None: this process is the only one."""

    def __init__(self, url: str | None) -> None:
        self._engine = None if url is None else create_async_engine(
            url, isolation_level="AUTOCOMMIT", pool_pre_ping=True, pool_size=LOCK_POOL,
            max_overflow=LOCK_OVERFLOW)

    @property
    def shared(self) -> bool:
        """Whether other processes may be working on the same database."""
        return self._engine is not None

    def account(self, platform: str, user_id: str) -> AbstractAsyncContextManager[bool]:
        """Held while one account's message is handled: its messages, whichever process
        receives them, are handled one at a time, in the order the lock was asked for."""
        return self.hold(f"account:{platform}:{user_id}")

    @asynccontextmanager
    async def hold(self, name: str, *, wait: bool = True) -> AsyncIterator[bool]:
        """Hold the lock ``name`` for the block; yields whether it is held: always when
        ``wait`` (it waits for another process to let go), else False when another process
        holds it now (then the block should do nothing). Raises ``DatabaseUnavailable`` when no
        connection can be had."""
        if self._engine is None:
            yield True
            return
        key = {"key": lock_key(name)}
        try:
            connection = await self._engine.connect()
        except Exception as error:
            raise DatabaseUnavailable(f"{type(error).__name__}: {error}") from error
        try:
            if wait:
                await connection.execute(_LOCK, key)
                held = True
            else:
                held = bool(await connection.scalar(_TRY, key))
        except BaseException as error:
            # cancelled while waiting, or the connection broke: whether the server granted it
            # cannot be known, so the connection goes, and whatever it held with it
            await _discard(connection)
            if isinstance(error, Exception):
                raise DatabaseUnavailable(f"{type(error).__name__}: {error}") from error
            raise
        if not held:
            await connection.close()
            yield False
            return
        try:
            yield True
        finally:
            await _release(connection, key, name)

    def once(self, name: str, work: Callable[[], Awaitable[object]]
             ) -> Callable[[], Awaitable[object]]:
        """``work`` as a periodic pass that runs in one process at a time: while another
        process runs it, this one's pass is skipped (the next comes on schedule)."""

        async def guarded() -> object:
            async with self.hold(name, wait=False) as mine:
                if mine:
                    return await work()
                logger.debug(f"{name}: another process runs this pass")
                return None

        return guarded

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()


async def _release(connection: AsyncConnection, key: dict[str, int], name: str) -> None:
    """Unlock and give the connection back; when the unlock fails, close the connection (the
    server lets go of the lock with it) and say so, raising nothing: the work it guarded is
    done, whatever became of the connection afterwards."""
    try:
        released = await connection.scalar(_UNLOCK, key)
    except Exception as error:
        logger.warning(f"advisory lock {name!r}: unlock failed ({error}); connection closed")
        await _discard(connection)
        return
    except BaseException:  # cancelled while unlocking: closed, and the cancel goes on
        await _discard(connection)
        raise
    if not released:  # it was not held after all: never hand this connection on
        logger.error(f"advisory lock {name!r} was not held at its release")
        await _discard(connection)
        return
    await connection.close()


async def _discard(connection: AsyncConnection) -> None:
    """Close the connection for good (the server then releases its locks)."""
    try:
        await connection.invalidate()
        await connection.close()
    except Exception as error:  # already broken: nothing to release
        logger.debug(f"discarding a lock connection: {error}")
