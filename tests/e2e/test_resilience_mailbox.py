"""The mailbox poller killed (SIGKILL, in a process of its own) at seeded random points of a
batch, again and again, then left to finish: every mail filed exactly once, answered at most
once, and put away in the mailbox; poison mails in the batch go to a person once each. Servers
and runtime are those of test_mailbox_dovecot."""

import asyncio
import random
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.runtime import Runtime
from bot.samples import fake_uscc
from storage.models import Attachment, InboundMail, Order, OutgoingMail
from tests.support import mail_corpus as corpus
from tests.support.dovecot import Dovecot
from tests.support.helpers import MakeRuntime, wait_for
from tests.support.onebot_peer import ROOT
from tests.support.smtp_sink import SmtpSink
from tests.support.unlock_mailbox import count, poller_of, unlock_desk_config

SEED = 7
UNLOCKS, FOR_HUMANS = 6, 2
POISON = {corpus.long_subject: "<long-subject@client.test>",  # each once stopped the mailbox
          corpus.control_characters: "<nul@client.test>",
          corpus.long_sender: "<long-from@client.test>"}
KILLS = 4


@pytest.fixture
async def runtime(make_runtime: MakeRuntime, dovecot: Dovecot, smtp: SmtpSink) -> Runtime:
    return await make_runtime(unlock_desk_config(dovecot, smtp))


async def poller_run(config: Path, die_at: str, report: Path) -> int:
    """One poller process until it dies at ``die_at`` (KIND:N, see
    tests/support/poller_process.py)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.poller_process", str(config), str(die_at), str(report),
        cwd=ROOT)
    async with asyncio.timeout(60):
        return await process.wait()


async def test_a_poller_killed_again_and_again_files_every_mail_once(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink, tmp_path: Path) -> None:
    uscc = fake_uscc(random.Random(SEED))
    ids = []
    for n in range(1, UNLOCKS + 1):  # a sender each: the per-sender reply limit stays out
        dovecot.deliver(corpus.qq_mail(uscc, n).replace(b"zhangsan@", f"user{n}@".encode()))
        ids.append(f"<qq-{n}@qq.test>")
    for n in range(FOR_HUMANS):
        dovecot.deliver(corpus.not_unlock().replace(b"<ask-1@", f"<ask-{n}@".encode()))
        make = list(POISON)[n]  # between the others
        dovecot.deliver(make(uscc))
    dovecot.deliver(list(POISON)[-1](uscc))

    rng = random.Random(SEED)
    # each kind of point at least once, each at a seeded random place in what is left
    kinds = ["sql", "commit", "imap", rng.choice(["sql", "imap"])]
    rng.shuffle(kinds)
    most = {"sql": 40, "commit": 3, "imap": 6}
    deaths = []
    for kind in kinds:  # each run starts over from what the database says, as after a crash
        report = tmp_path / "died.txt"
        report.unlink(missing_ok=True)
        die_at = f"{kind}:{rng.randint(1, most[kind])}"
        assert await poller_run(tmp_path / "bot.toml", die_at, report) == -9, die_at
        deaths.append(report.read_text(encoding="utf-8"))
    assert await poller_run(tmp_path / "bot.toml", "never:0", tmp_path / "unused") == 0, deaths

    total = UNLOCKS + FOR_HUMANS + len(POISON)
    assert await count(runtime, InboundMail) == total
    async with runtime.db.transaction() as session:
        orders = (await session.scalars(select(Order))).unique().all()
        poisoned = (await session.scalars(select(InboundMail.outcome).where(
            InboundMail.message_id.in_(POISON.values())))).all()
        replied = await session.scalar(
            select(func.count()).select_from(InboundMail).where(InboundMail.replied))
    assert poisoned == ["for_humans"] * len(POISON)  # once each
    assert sorted(o.source_message_id for o in orders) == sorted(ids)  # each once
    assert await count(runtime, Attachment) == 3 * UNLOCKS
    for order in orders:
        for attachment in order.attachments:
            assert runtime.scans.path(attachment.sha256).exists()
    assert replied == UNLOCKS
    assert await count(runtime, OutgoingMail) == UNLOCKS  # one answer per filed mail
    await wait_for(lambda: len(smtp.messages) == UNLOCKS)
    assert sorted(m["In-Reply-To"] for m in smtp.messages) == sorted(ids)

    # put away in the mailbox too, even when the kill came between the commit and the flag
    assert dovecot.folder("INBOX") == ["\\Seen CadeskFiled"] * UNLOCKS
    assert len(dovecot.folder("待人工处理")) == FOR_HUMANS + len(POISON)


async def test_a_mail_the_reader_fails_on_goes_to_a_person_and_the_rest_flows(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.services.unlock import inbox as unlock_inbox

    uscc = fake_uscc(random.Random(SEED))
    for n in (1, 2):
        dovecot.deliver(corpus.qq_mail(uscc, n))
    real = unlock_inbox.read_mail

    def fails_on_the_first(raw: bytes, own: tuple[str, ...] = ()):
        if b"<qq-1@" in raw:  # a bug in the reader, hit by one odd mail
            raise LookupError("unknown encoding: x-odd")
        return real(raw, own)

    monkeypatch.setattr(unlock_inbox, "read_mail", fails_on_the_first)
    assert await poller_of(runtime).poll_once() == 2
    async with runtime.db.transaction() as session:
        outcomes = (await session.scalars(
            select(InboundMail.outcome).order_by(InboundMail.uid))).all()
    assert outcomes == ["for_humans", "filed"]
    assert len(dovecot.folder("待人工处理")) == 1
    assert dovecot.folder("INBOX") == ["\\Seen CadeskFiled"]
    told = [text for to, text in runtime.chat_outbox.chat.sent if to == "qq:900001"]
    assert any("无法读取的邮件" in t for t in told)
    await wait_for(lambda: len(smtp.messages) == 1)  # only the readable one is answered
