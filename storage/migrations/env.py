"""Alembic environment. The bot runs migrations through ``Database.migrate`` (it hands over a
connection); the ``alembic`` command line uses ``CADESK_DATABASE_URL`` or the SQLite default."""

import asyncio
import os

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from storage.models import Base

target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True)  # batch mode: ALTER works on SQLite too
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    url = os.environ.get("CADESK_DATABASE_URL", "sqlite+aiosqlite:///data/cadesk.db")
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(run_with)
        await connection.commit()
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_with(connection)
else:
    asyncio.run(run_online())
