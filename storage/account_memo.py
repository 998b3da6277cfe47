"""What the chat reads on every message, kept in memory between messages: each chat account's
binding (handler and company) and its form in progress.

The database stays the truth. An entry is loaded once (one read), then read from here until a
write forgets it: every write to ``handlers``, ``companies`` or ``conversations`` made through
the ``Database`` that owns this memo is seen by its session hooks (storage/db.py) and forgets
the accounts it touches (all of them when it cannot tell which), when it runs and again after
its commit or rollback. A handler written is forgotten with every account that acts as it (its
own and those joined to it, ``joined_accounts``); a join made or ended forgets its account.
A read that overlapped a write is not kept (``generation``), so no entry is older than the
last commit that touched it.

Per process, per ``Database``: every change to a binding (bind, verify, 解绑, a company renamed)
made by this process goes through its own ``Database``. A second process writing to the same
database would not be seen here, so with ``[cluster]`` on (several bot processes on one
PostgreSQL) the memo is made with size 0 and keeps nothing: every message reads its rows.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from bot.domain.json_values import copied
from bot.domain.trust import HandlerStatus
from storage.models import Company, Conversation, Handler, JoinedAccount

Key = tuple[str, str]  # (platform, user_id)
HandlerId = int  # forgets every account whose binding is this handler (a joined one too)
EVERY_ACCOUNT = None  # what a write touched when it cannot tell which accounts
# execution options of a statement that writes a conversation: the account it writes, and
# whether the caller puts what it wrote in the memo itself after the commit
ACCOUNT = "account_memo_key"
WRITTEN_THROUGH = "account_memo_written_through"
_TABLES = {Handler.__tablename__, Company.__tablename__, Conversation.__tablename__,
           JoinedAccount.__tablename__}
_TOUCHED = "account_memo_touched"  # in session.info: the keys this transaction forgot


@dataclass(frozen=True)
class BindingRow:
    """An account's binding as the chat's routing needs it; not an ORM object."""

    handler_id: int
    company_id: int
    company_name: str
    status: HandlerStatus

    @property
    def verified(self) -> bool:
        return self.status is HandlerStatus.VERIFIED


@dataclass(frozen=True)
class FormRow:
    """A form in progress as saved: its state (as JSON) and when it was saved."""

    state: dict[str, Any]
    updated_at: datetime


@dataclass(frozen=True)
class AccountRows:
    binding: BindingRow | None  # None: not bound, or unbound by a technician
    form: FormRow | None


class AccountMemo:
    def __init__(self, size: int = 10_000) -> None:
        self.generation = 0  # moves on every forget: a read begun before it is not kept
        self.size = size  # accounts kept at most: the least recently kept go first
        self._rows: dict[Key, AccountRows] = {}  # in the order kept, the latest last

    def get(self, key: Key) -> AccountRows | None:
        """The rows kept for ``key``, the form state a copy the caller may change; None when
        not kept (read the database, then ``keep``)."""
        rows = self._rows.get(key)
        if rows is None or rows.form is None:
            return rows
        return AccountRows(rows.binding, FormRow(copied(rows.form.state),
                                                 rows.form.updated_at))

    def peek(self, key: Key) -> AccountRows | None:
        """As ``get``, the form state not copied: not to be changed."""
        return self._rows.get(key)

    def keep(self, key: Key, rows: AccountRows, since: int) -> None:
        """Keep ``rows`` (the memo's from now on: not to be changed) as read or written by a
        caller that took ``generation`` as ``since`` before it began; when a write forgot
        anything in between, the account is forgotten instead (the next message reads)."""
        self._rows.pop(key, None)
        if since == self.generation and self.size > 0:  # size 0: keeps nothing ([cluster])
            if len(self._rows) >= self.size:
                del self._rows[next(iter(self._rows))]
            self._rows[key] = rows

    def forget(self, keys: Iterable[Key | HandlerId | None]) -> None:
        """Forget the accounts ``keys`` (``EVERY_ACCOUNT`` among them: every account; a
        handler's id: every account bound as it)."""
        self.generation += 1
        handlers: set[int] = set()
        for key in keys:
            if key is EVERY_ACCOUNT:
                self._rows.clear()
                return
            if isinstance(key, int):
                handlers.add(key)
            else:
                self._rows.pop(key, None)
        if handlers:  # rare (a binding changed): a pass over the memo costs less than an index
            for key in [k for k, rows in self._rows.items()
                        if rows.binding is not None and rows.binding.handler_id in handlers]:
                del self._rows[key]

    def __len__(self) -> int:
        return len(self._rows)


def watch(session_class: type[Session], memo: AccountMemo) -> None:
    """Make every write to the memo's tables through ``session_class`` forget what it
    touches: an ORM flush (bind, verify, 解绑, a company renamed) or a statement (an UPDATE or
    DELETE of conversations: by account when it says which, else every account)."""

    def forget(session: Session, keys: set[Key | HandlerId | None]) -> None:
        session.info.setdefault(_TOUCHED, set()).update(keys)
        memo.forget(keys)

    def on_execute(state: ORMExecuteState) -> None:
        if not (state.is_insert or state.is_update or state.is_delete):
            return
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) not in _TABLES:
            return
        options = state.execution_options
        if not options.get(WRITTEN_THROUGH):
            forget(state.session, {options.get(ACCOUNT, EVERY_ACCOUNT)})

    def on_flush(session: Session, _flush: UOWTransaction) -> None:
        keys: set[Key | HandlerId | None] = set()
        for row in (*session.new, *session.dirty, *session.deleted):
            if isinstance(row, Company):
                keys.add(EVERY_ACCOUNT)  # its name is in every binding of it
            elif isinstance(row, Handler | Conversation | JoinedAccount):
                keys.add((row.platform, row.user_id))
            if isinstance(row, Handler) and row.id is not None:
                keys.add(row.id)  # the accounts joined to it act as it
        if keys:
            forget(session, keys)

    def on_end(session: Session) -> None:
        # again once the transaction is over: a read that began before it is not kept
        if keys := session.info.pop(_TOUCHED, None):
            memo.forget(keys)

    event.listen(session_class, "do_orm_execute", on_execute)
    event.listen(session_class, "after_flush", on_flush)
    event.listen(session_class, "after_commit", on_end)
    event.listen(session_class, "after_rollback", on_end)
