"""The unlock-mailbox poller in a process of its own, for the kill tests.

``python -m tests.support.poller_process CONFIG KIND:N REPORT`` polls the mailbox of CONFIG
until no new mail is left, four mails a batch. Steps are of three kinds: ``sql`` (a
statement), ``commit`` (just after one) and ``imap`` (a UID command: fetch, search, store,
move). At the N-th step of KIND (``never:0``: no crash) the process writes what that step was
to REPORT and kills itself with SIGKILL — a crash at an exact point, the same on every run.
"""

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aioimaplib import IMAP4
from sqlalchemy import event
from sqlalchemy.orm import Session

from bot.adapters import mailbox
from bot.adapters.chat_outbox import ChatOutbox
from bot.adapters.mail import MailOutbox
from bot.adapters.mailbox import MailboxPoller
from bot.adapters.scan_store import ScanStore
from bot.config import load_settings
from bot.services.notify import Notifier
from bot.services.unlock.inbox import UnlockInbox
from storage.db import Database


class NoChat:
    """Staff notices go nowhere here: the test checks the database and the mailbox."""

    async def send(self, account: object, replies: Sequence[object], *,
                   reply_to: str | None = None) -> bool:
        return True

    async def push(self, account: object, replies: Sequence[object]) -> bool:
        return True

    async def send_group(self, group: object, replies: Sequence[object]) -> bool:
        return True

    def connected(self) -> dict[str, int]:
        return {}


class Tripwire:
    def __init__(self, die_at: str, report: Path) -> None:
        kind, _, n = die_at.partition(":")
        self.kind, self.left, self.report = kind, int(n), report

    def step(self, kind: str, what: str) -> None:
        if kind != self.kind:
            return
        self.left -= 1
        if self.left == 0:
            self.report.write_text(f"{kind}: {what}", encoding="utf-8")
            os.kill(os.getpid(), signal.SIGKILL)


async def main(config: Path, die_at: str, report: Path) -> None:
    settings = load_settings(config)
    wire = Tripwire(die_at, report)
    db = Database(settings.database_url)

    def statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        wire.step("sql", " ".join(sql.split()[:3]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", statement)
    event.listen(Session, "after_commit", lambda _session: wire.step("commit", "done"))
    real_uid, real_search = IMAP4.uid, IMAP4.uid_search

    async def uid(self: IMAP4, command: str, *args: str) -> Any:
        wire.step("imap", f"UID {command}")
        return await real_uid(self, command, *args)

    async def uid_search(self: IMAP4, *criteria: str, charset: str | None = "utf-8") -> Any:
        wire.step("imap", "UID SEARCH")
        return await real_search(self, *criteria, charset=charset)

    IMAP4.uid, IMAP4.uid_search = uid, uid_search  # type: ignore[method-assign]
    outbox = MailOutbox(db, settings.email)  # not started: the test's own runtime sends
    inbox = UnlockInbox(settings, db, ScanStore(settings.data_dir / "scans"),
                        Notifier(settings, db, ChatOutbox(db, settings.chat, NoChat()), outbox),
                        outbox)
    mailbox.FILE_BATCH = 4  # the test's mails span batches: kills land in one and between
    poller = MailboxPoller(settings.mailbox, inbox)
    try:
        while await poller.poll_once():
            pass
    finally:
        await db.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))
