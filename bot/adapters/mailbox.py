"""The unlock mailbox poller: IMAP (aioimaplib), new mail by UID, filed by ``UnlockInbox``.

Mail is never deleted. Filed mail stays where it is, flagged (or moves to ``processed_folder``
when one is set); what the bot cannot file moves to ``human_folder`` for a person.
"""

import asyncio
import base64
import contextlib
import re
import ssl
from datetime import UTC, datetime

from aioimaplib import IMAP4, IMAP4_SSL, Response

from bot.adapters.periodic import Periodic
from bot.config import MailboxSection
from bot.services.ports import MailboxProgress
from bot.services.unlock.inbox import Filing, Read, UnlockInbox
from storage.cluster import Cluster

FILED_KEYWORD = "CadeskFiled"
FILED_FLAGS = f"(\\Seen {FILED_KEYWORD})"
LIST_BATCH = 200  # new mails listed per IMAP command (see MailboxPoller._new_mail)
# mails filed per transaction: a lone mail is a batch of one; a backlog shares commits and
# directory syncs, while a mail waits for at most this many before it is put away
FILE_BATCH = 8
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_SIZE = re.compile(rb"UID (\d+) RFC822\.SIZE (\d+)|RFC822\.SIZE (\d+) UID (\d+)")


class MailboxError(Exception):
    pass


def imap_folder(name: str) -> str:
    """A folder name as IMAP wants it: modified UTF-7 (RFC 3501 §5.1.3), quoted."""
    out, pending = [], []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode()
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    quoted = "".join(out).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}"'


class MailboxPoller:
    def __init__(self, settings: MailboxSection, inbox: UnlockInbox,
                 cluster: Cluster | None = None) -> None:
        self.settings = settings
        self.inbox = inbox
        self.cluster = cluster or Cluster(None)  # the processes polling with this one
        self.key = f"{settings.username}@{settings.host}/{settings.folder}"
        self.progress = MailboxProgress()  # read by the health check (/healthz, 状态)
        self._worker = Periodic("unlock mailbox poll", self.poll_once, settings.poll_seconds)

    def start(self) -> None:
        self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()

    async def poll_once(self) -> int:
        """Handle every mail that came since the last poll; returns how many. Among processes
        sharing the database ([cluster]) one polls at a time: while another does, this pass is
        skipped (its health check shows its own progress)."""
        async with self.cluster.hold(f"mailbox:{self.key}", wait=False) as mine:
            if not mine:
                self.progress.last_success_at = datetime.now(UTC)  # not stale: polled there
                return 0
            return await self._poll_recorded()

    async def _poll_recorded(self) -> int:
        try:
            handled = await self._poll()
        except Exception as error:
            self.progress.last_failure_at = datetime.now(UTC)
            self.progress.last_error = type(error).__name__  # the kind only: no addresses
            raise
        self.progress.last_success_at = datetime.now(UTC)
        self.progress.last_error, self.progress.waiting = None, 0  # read up to the newest
        return handled

    async def _poll(self) -> int:
        imap = await self._connect()
        try:
            uidvalidity = await self._select(imap)
            last = await self.inbox.last_uid(self.key, uidvalidity)
            for uid in await self._not_put_away(imap, last):
                await self._put_away(imap, uid, await self.inbox.filed_for_humans(self.key, uid))
            handled = 0
            while listed := await self._new_mail(imap, last):
                for start in range(0, len(listed), FILE_BATCH):
                    batch = listed[start:start + FILE_BATCH]
                    filings = await self._file(imap, uidvalidity, batch)
                    # only now that the batch is committed: a kill before leaves every mail
                    # of it unflagged, to be fetched and filed again
                    for (uid, _), filing in zip(batch, filings, strict=True):
                        await self._put_away(imap, uid, filing.for_humans)
                        handled += 1
                        self.progress.last_filed_at = datetime.now(UTC)
                        self.progress.waiting = max((self.progress.waiting or 1) - 1, 0)
                last = listed[-1][0]
            return handled
        finally:
            with contextlib.suppress(Exception):  # the connection may already be gone
                await imap.logout()

    async def _file(self, imap: IMAP4, uidvalidity: int,
                    batch: list[tuple[int, int]]) -> list[Filing]:
        """Fetch a batch, each mail read (parsed, scans checked) in the reader pool while the
        next is fetched, then file it in one transaction."""
        reads: list[asyncio.Future[Read]] = []
        try:
            for uid, size in batch:
                too_large = size > self.settings.max_message_megabytes * 1024 * 1024
                raw = await self._fetch(imap, uid, "BODY.PEEK[HEADER]" if too_large
                                        else "BODY.PEEK[]")
                reads.append(asyncio.ensure_future(
                    self.inbox.read(self.key, uid, raw, too_large=too_large)))
            return await self.inbox.file_batch(self.key, uidvalidity,
                                               list(await asyncio.gather(*reads)))
        finally:
            for read in reads:  # a fetch that failed: the reads under way are not awaited
                read.cancel()

    # --- IMAP -------------------------------------------------------------------------------
    async def _connect(self) -> IMAP4:
        s = self.settings
        if s.security == "tls":
            context = ssl.create_default_context(cafile=s.ca_file)
            imap: IMAP4 = IMAP4_SSL(s.host, s.port, timeout=30, ssl_context=context)
        else:
            imap = IMAP4(s.host, s.port, timeout=30)
        await imap.wait_hello_from_server()
        response = await imap.login(s.username, s.password)
        if response.result != "OK":
            raise MailboxError(f"IMAP login refused for {s.username}")
        return imap

    async def _select(self, imap: IMAP4) -> int:
        response = await imap.select(imap_folder(self.settings.folder))
        if response.result != "OK":
            raise MailboxError(f"cannot open folder {self.settings.folder}")
        for line in response.lines:
            if isinstance(line, bytes) and (match := _UIDVALIDITY.search(line)):
                return int(match.group(1))
        raise MailboxError("the server gave no UIDVALIDITY")

    async def _new_mail(self, imap: IMAP4, last: int) -> list[tuple[int, int]]:
        """The next new mails after ``last`` with their sizes, oldest first, at most
        ``LIST_BATCH``: aioimaplib parses a response recursively, a level per line, so listing
        a backlog of about a thousand mails at once overflows the stack and hangs the poll
        (iroco-co/aioimaplib#118). UID SEARCH answers in one line."""
        response = await imap.uid_search(f"UID {last + 1}:*", charset=None)
        new = sorted(u for u in _search_uids(response) if u > last)
        self.progress.waiting = len(new)  # the backlog the health check reports
        uids = new[:LIST_BATCH]
        if not uids:
            return []
        response = await imap.uid("fetch", ",".join(map(str, uids)), "(UID RFC822.SIZE)")
        found = []
        for line in response.lines:
            if isinstance(line, bytes) and (match := _SIZE.search(line)):
                uid, size = (int(match.group(1)), int(match.group(2))) if match.group(1) else (
                    int(match.group(4)), int(match.group(3)))
                if uid > last:  # "n:*" always names the newest mail, even an old one
                    found.append((uid, size))
        return sorted(found)

    async def _not_put_away(self, imap: IMAP4, last: int) -> list[int]:
        """Mail already filed that is still here unflagged: the process died between the
        commit and the flag or move. (Moved mail is gone from the folder.)"""
        if last == 0:
            return []
        response = await imap.uid_search(f"UID 1:{last}", "UNKEYWORD", FILED_KEYWORD,
                                         charset=None)
        return [uid for uid in _search_uids(response) if uid <= last]

    async def _fetch(self, imap: IMAP4, uid: int, what: str) -> bytes:
        response = await imap.uid("fetch", str(uid), f"({what})")
        for line in response.lines:
            if isinstance(line, bytearray):
                return bytes(line)
        raise MailboxError(f"mail {uid} could not be fetched")

    async def _put_away(self, imap: IMAP4, uid: int, for_humans: bool) -> None:
        target = self.settings.human_folder if for_humans else self.settings.processed_folder
        if not target:
            await imap.uid("store", str(uid), "+FLAGS", FILED_FLAGS)
            return
        folder = imap_folder(target)
        await imap.create(folder)  # "already exists" is fine
        if imap.has_capability("MOVE"):
            await imap.uid("move", str(uid), folder)
        else:  # without MOVE: a copy there, and the original flagged, never deleted
            await imap.uid("copy", str(uid), folder)
            await imap.uid("store", str(uid), "+FLAGS", FILED_FLAGS)


def _search_uids(response: Response) -> list[int]:
    """The UIDs a UID SEARCH answered (an empty list for a failed search)."""
    found: list[int] = []
    for line in response.lines:
        words = line.split() if isinstance(line, bytes) else []
        words = words[1:] if words[:1] == [b"SEARCH"] else words
        if response.result == "OK" and words and all(w.isdigit() for w in words):
            found += [int(w) for w in words]
    return found
