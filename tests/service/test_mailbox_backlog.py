"""A backlog in a real Dovecot is listed in bounded batches, every mail once and in order.

Why: aioimaplib parses each network read recursively, one level per response line
(iroco-co/aioimaplib#118). Listing a backlog of about a thousand mails in one command overflowed
the stack in a benchmark run and hung the poll until its timeout, at every poll after it. Whether
one read carries that many lines depends on the network, so the failure itself cannot be
reproduced at will; what the test holds is the bound that makes it impossible."""

from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from aioimaplib import IMAP4

from bot.adapters.mailbox import LIST_BATCH, MailboxPoller
from bot.config import MailboxSection
from tests.support.dovecot import Dovecot, dovecot_server

BACKLOG = 450


@pytest.fixture
def dovecot() -> Dovecot:
    with dovecot_server() as server:
        yield server


async def append_backlog(dovecot: Dovecot) -> None:
    imap = IMAP4("127.0.0.1", dovecot.port, timeout=30)
    await imap.wait_hello_from_server()
    await imap.login(dovecot.user, dovecot.password)
    for n in range(BACKLOG):
        mail = EmailMessage()
        mail["From"], mail["To"] = f"u{n}@example.test", dovecot.user
        mail["Subject"], mail["Message-ID"] = f"CA解锁+公司{n}", make_msgid()
        mail.set_content("请解锁")
        assert (await imap.append(mail.as_bytes(), mailbox="INBOX")).result == "OK"
    await imap.logout()


async def test_a_backlog_is_listed_in_bounded_batches(dovecot: Dovecot) -> None:
    await append_backlog(dovecot)
    settings = MailboxSection(enabled=True, host="127.0.0.1", port=dovecot.port,
                              security="none", username=dovecot.user, password=dovecot.password)
    poller = MailboxPoller(settings, inbox=None)  # type: ignore[arg-type]  # listing only
    imap = await poller._connect()
    try:
        await poller._select(imap)
        last, seen, batches = 0, [], 0
        while batch := await poller._new_mail(imap, last):
            assert len(batch) <= LIST_BATCH
            assert all(size > 0 for _, size in batch)
            seen += [uid for uid, _ in batch]
            last, batches = batch[-1][0], batches + 1
    finally:
        await imap.logout()
    assert seen == sorted(set(seen))
    assert len(seen) == BACKLOG
    assert batches == -(-BACKLOG // LIST_BATCH)
