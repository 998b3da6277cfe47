"""INSERT … ON CONFLICT (platform, user_id) DO UPDATE for a table keyed by chat account, built
once per table and dialect: the chat's per-message writes build no SQL."""

from collections.abc import Sequence
from functools import cache

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Executable

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


@cache
def account_upsert(table: Table, dialect: str, updated: Sequence[str]) -> Executable:
    """Insert a row for an account, or set ``updated`` (column names, a tuple) on its row."""
    upsert = _INSERTS[dialect](table)
    return upsert.on_conflict_do_update(
        index_elements=[table.c.platform, table.c.user_id],
        set_={name: upsert.excluded[name] for name in updated})
