"""The unlock mailbox: 1,000 unlock mails with three scans each, in a real Dovecot, filed by the
bot's own poller and inbox (``MailboxPoller.poll_once`` → ``UnlockInbox.file_batch``), against a
bare aioimaplib fetch of the same mails."""

import asyncio
import email
import email.policy
import io
import random
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aioimaplib import IMAP4
from PIL import Image
from sqlalchemy import func, select

from bench.report import Figure, Target, expect, latencies
from bot.adapters.mailbox import FILE_BATCH, MailboxPoller
from bot.config import MailboxSection, load_settings
from bot.runtime import Runtime
from bot.samples import fake_uscc, sample_scan
from bot.services.unlock.inbox import UnlockInbox
from storage.models import InboundMail, Order
from tests.support import mail_corpus as corpus
from tests.support.dovecot import Dovecot, dovecot_server, mail_settings
from tests.support.helpers import RecordingChat, free_port

NAMES = ["CA数字证书密码重置申请表.jpg", "营业执照.jpg", "经办人身份证.jpg"]
_UID = re.compile(rb"UID (\d+)")
# aioimaplib parses a network read recursively, one level per response line
# (iroco-co/aioimaplib#118, open): a read carrying ~950+ lines of a 1,000-mail listing overflows
# Python's default limit of 1,000 and the command hangs. Raised here for both sides, so what
# is measured is filing; the hazard itself is noted in docs/benchmarks.md.
RECURSION_LIMIT = 20_000
FILING_TARGET = Target("times", 3)  # issue 15: filing ≤ 3× bare fetch + Pillow decode


def unique(jpeg: bytes, tag: str) -> bytes:
    """The same picture with a comment segment of its own: other bytes, other SHA-256."""
    comment = tag.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


def unlock_mail(n: int, uscc: str, pages: list[bytes]) -> bytes:
    """A QQ Mail style unlock request from its own company and sender, three scans attached."""
    company = f"临沂邮件{n:04d}建设有限公司"
    files = [corpus.part(f'image/jpeg; name="{corpus.word(name, "utf-8")}"',
                         unique(page, f"bench mail {n} {name}"),
                         f'attachment; filename="{corpus.word(name, "utf-8")}"')
             for name, page in zip(NAMES, pages, strict=True)]
    return corpus.mail({"From": f'"{corpus.word("张三", "utf-8")}" <applicant{n}@qq.test>',
                        "Subject": corpus.word(f"CA解锁+{company}", "utf-8"),
                        "Message-ID": f"<bench-{n}@qq.test>"},
                       files, body=f"您好，我单位UKEY密码忘记，申请解锁。统一社会信用代码：{uscc}")


def deliver_all(dovecot: Dovecot, count: int) -> int:
    """Deliver ``count`` mails (doveadm save, as the tests do); returns their total bytes."""
    rng = random.Random(17)
    pages = [sample_scan(f"bench mail page {k}") for k in range(3)]
    mails = [unlock_mail(n, fake_uscc(rng), pages) for n in range(count)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(dovecot.deliver, mails))  # order does not matter: each is its own request
    return sum(len(m) for m in mails)


def decode_scans(raw: bytes) -> int:
    """Pillow's full decode of every image attached to a mail; returns how many."""
    decoded = 0
    for part in email.message_from_bytes(raw, policy=email.policy.default).iter_attachments():
        if part.get_content_maintype() == "image":
            with Image.open(io.BytesIO(part.get_content())) as image:
                image.load()
            decoded += 1
    return decoded


class TimedPoller(MailboxPoller):
    """The bot's poller, noting when it starts fetching each mail and when it has put it away
    (filed, flagged): each mail's own time, whatever the poller does between the two."""

    def __init__(self, settings: MailboxSection, inbox: UnlockInbox) -> None:
        super().__init__(settings, inbox)
        self.began: dict[int, float] = {}
        self.ended: dict[int, float] = {}

    async def _fetch(self, imap: IMAP4, uid: int, what: str) -> bytes:
        self.began.setdefault(uid, time.perf_counter())
        return await super()._fetch(imap, uid, what)

    async def _put_away(self, imap: IMAP4, uid: int, for_humans: bool) -> None:
        await super()._put_away(imap, uid, for_humans)
        self.ended[uid] = time.perf_counter()

    def per_mail(self) -> list[float]:
        expect(bool(self.began) and self.began.keys() == self.ended.keys(),
               "the poller no longer fetches and puts away mail through _fetch and _put_away: "
               "bench/mailbox.py's TimedPoller must follow it")
        return [self.ended[uid] - self.began[uid] for uid in self.began]


async def bare_fetch(dovecot: Dovecot) -> tuple[int, list[float]]:
    """What any IMAP client does to read a folder and look at the scans: list the UIDs, fetch
    each mail whole, decode its images with Pillow; returns the mails listed and the seconds
    each one took."""
    imap = IMAP4("127.0.0.1", dovecot.port, timeout=60)
    await imap.wait_hello_from_server()
    await imap.login(dovecot.user, dovecot.password)
    await imap.select("INBOX")
    listing = await imap.uid("fetch", "1:*", "(UID RFC822.SIZE)")
    uids = [int(m.group(1)) for line in listing.lines
            if isinstance(line, bytes) and (m := _UID.search(line))]
    times = []
    for uid in uids:
        start = time.perf_counter()
        response = await imap.uid("fetch", str(uid), "(BODY.PEEK[])")
        raw = next(bytes(line) for line in response.lines if isinstance(line, bytearray))
        expect(decode_scans(raw) == len(NAMES), f"mail {uid}: not {len(NAMES)} scans decoded")
        times.append(time.perf_counter() - start)
    await imap.logout()
    return len(uids), times


async def measure(dovecot: Dovecot, count: int,
                  root: Path) -> tuple[float, float, list[float], list[float]]:
    """Seconds to file every mail and for the baseline to read them, and each mail's own."""
    await bare_fetch(dovecot)  # warm-up: Dovecot's index and the page cache, for both sides
    start = time.perf_counter()
    listed, baseline_each = await bare_fetch(dovecot)
    baseline = time.perf_counter() - start
    expect(listed == count, f"bare fetch saw {listed} mails, not {count}")

    (root / "bot.toml").write_text(f"""
[bot]
log_level = "WARNING"
[staff]
technicians = ["qq:900001"]
{mail_settings(dovecot, free_port(), mailbox_enabled=False)}
""", encoding="utf-8")
    runtime = await Runtime.start(load_settings(root / "bot.toml"), RecordingChat())
    try:
        # replies are queued in each mail's transaction, as in production; sending them is the
        # outbox worker's job, not filing's, so it does not run during the measurement
        await runtime.mail.stop()
        poller = TimedPoller(runtime.settings.mailbox, runtime.inbox)
        start = time.perf_counter()
        handled = await poller.poll_once()
        ours = time.perf_counter() - start
        async with runtime.db.transaction() as session:
            orders = await session.scalar(select(func.count()).select_from(Order))
            filed = await session.scalar(select(func.count()).select_from(InboundMail)
                                         .where(InboundMail.outcome == "filed"))
    finally:
        await runtime.stop()
    expect(handled == orders == filed == count,
           f"{handled} handled, {orders} orders, {filed} filed; not {count} each")
    return ours, baseline, poller.per_mail(), baseline_each


def run(quick: bool) -> tuple[list[Figure], str]:
    count = 50 if quick else 1_000
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(RECURSION_LIMIT)
    try:
        with tempfile.TemporaryDirectory(prefix="cadesk-bench-mail-") as root, \
                dovecot_server(corpus.MAILBOX) as dovecot:
            start = time.perf_counter()
            size = deliver_all(dovecot, count)
            delivered = time.perf_counter() - start
            ours, baseline, ours_each, baseline_each = asyncio.run(
                measure(dovecot, count, Path(root)))
    finally:
        sys.setrecursionlimit(limit)
    figures = [
        Figure("mailbox", f"file {count:,} unlock mails", "s", ours, baseline,
               target=FILING_TARGET),
        *latencies("mailbox", "each mail", ours_each, baseline_each),
    ]
    note = (f"{count:,} unlock requests as QQ Mail writes them (UTF-8 encoded-word subject and "
            "file names), each from its own sender and company with three different 100 KB "
            f"JPEG scans, {size / count / 1024:.0f} KB a mail, {size / 1024 / 1024:.0f} MB in "
            f"all, delivered with `doveadm save` ({delivered:.0f} s, not counted) into a "
            "Dovecot from tests/support/dovecot.py (plain IMAP on loopback). cadesk: one "
            "`MailboxPoller.poll_once` — list new UIDs, fetch them in batches of "
            f"{FILE_BATCH}, each parsed and its scans checked in a thread pool while the next "
            "is fetched, `UnlockInbox.file_batch` (one transaction, a savepoint per mail: "
            "store the scans, file the order, queue the reply, log the Message-ID; the scan "
            "directories synced and the UID advanced once), flag each filed after the commit "
            "— into SQLite; every mail must come out filed. Baseline: aioimaplib alone, "
            "listing the UIDs and fetching each mail with `BODY.PEEK[]`, the same requests "
            "the poller makes, then Pillow decoding the "
            "three scans (`open` + `load`), as issue 15's target puts it. Both after one "
            "untimed pass that warms Dovecot's index. Each mail: for cadesk from the start of "
            "its fetch to its being flagged filed (a mail waiting in a batch waits in its own "
            "time), for the baseline its fetch and decode; p50 and p99 (nearest rank). "
            f"Python's recursion limit is raised to {RECURSION_LIMIT:,} for this benchmark: "
            "aioimaplib parses each network read recursively, one level per response line "
            "(iroco-co/aioimaplib#118, open), and the one-line-per-mail listing of 1,000 new "
            "mails (`UID FETCH n:* (UID RFC822.SIZE)`, which the baseline sends) overflowed "
            "the default limit of 1,000 in a first run: the command then hangs until its "
            "timeout. The poller, which sent it too, now lists new mail 200 at a time "
            "(`UID SEARCH`, then the sizes), so a backlog can no longer stall it.")
    return figures, note
