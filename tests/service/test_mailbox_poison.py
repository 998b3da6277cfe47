"""Mail that once stopped the unlock mailbox (issue 12), in a real Dovecot ahead of a good unlock
request, on SQLite and PostgreSQL: each goes to a person with the reason, the good one is filed
in the same poll. And the automatic reply: to the envelope sender, capped, echoing nothing."""

import asyncio

import asyncpg
import pytest
from sqlalchemy import select, text

from bot.domain.scans import InvalidScan, inspect_scan
from bot.runtime import Runtime
from bot.samples import fake_uscc
from storage.models import Attachment, InboundMail, Order, OutgoingMail
from tests.support import mail_corpus as corpus
from tests.support.dovecot import Dovecot
from tests.support.helpers import MakeRuntime, wait_for
from tests.support.smtp_sink import SmtpSink
from tests.support.unlock_mailbox import count, poller_of, unlock_desk_config

HUMANS = "待人工处理"


@pytest.fixture
async def runtime(make_runtime: MakeRuntime, database_url: str, dovecot: Dovecot,
                  smtp: SmtpSink) -> Runtime:
    return await make_runtime(f'[database]\nurl = "{database_url}"\n'
                              + unlock_desk_config(dovecot, smtp))


def crashes_the_scan_check(runtime: Runtime, data: bytes) -> bool:
    """Whether the scan check raises on these bytes with something other than a refusal (so
    today, before the check itself is hardened; a refusal files the mail without the file)."""
    try:
        inspect_scan(data, runtime.inbox.rules)
    except InvalidScan:
        return False
    except Exception:
        return True
    return False


async def rows(runtime: Runtime) -> dict[str, tuple[str, str | None]]:
    async with runtime.db.transaction() as session:
        found = (await session.scalars(select(InboundMail))).all()
    return {r.message_id: (r.outcome, r.reason) for r in found}


def staff_told(runtime: Runtime) -> list[str]:
    return [str(text) for to, text in runtime.chat_outbox.chat.sent if to == "qq:900001"]


async def test_poison_mails_go_to_a_person_and_the_good_one_behind_them_is_filed(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink) -> None:
    uscc = fake_uscc()
    images = {"sep": (corpus.separator_jpeg(), "line.jpg", "image/jpeg"),
              "gif0": (corpus.DAMAGED_GIFS[0], "logo.gif", "image/gif"),
              "gif1": (corpus.DAMAGED_GIFS[1], "logo.gif", "image/gif")}
    for tag, (data, name, ctype) in images.items():
        dovecot.deliver(corpus.with_attachment(uscc, tag, data, name, ctype))
    for make in (corpus.long_subject, corpus.long_sender, corpus.control_characters):
        dovecot.deliver(make(uscc))
    dovecot.deliver(corpus.qq_mail(uscc))  # the good one, behind them all

    assert await poller_of(runtime).poll_once() == 7
    assert await poller_of(runtime).poll_once() == 0  # every UID advanced

    crashing = {f"<{tag}@client.test>" for tag, (data, _, _) in images.items()
                if crashes_the_scan_check(runtime, data)}
    expected = {
        **{f"<{tag}@client.test>": ("for_humans", f"第 4 个附件无法检查（{error}）")
           for tag, error in (("sep", "ZeroDivisionError"), ("gif0", "struct.error"),
                              ("gif1", "IndexError")) if f"<{tag}@client.test>" in crashing},
        "<long-subject@client.test>": ("for_humans", "主题过长（242 个字符）"),
        "<long-from@client.test>": ("for_humans", "发件人地址无效"),
        "<nul@client.test>": ("for_humans", "主题或发件人含有控制字符"),
        "<qq-1@qq.test>": ("filed", None)}
    found = await rows(runtime)
    assert {k: v for k, v in found.items() if k in expected} == expected
    assert len(found) == 7  # the rest: filed without the file the check refused

    async with runtime.db.transaction() as session:
        orders = (await session.scalars(select(Order))).unique().all()
        kept = (await session.scalars(select(InboundMail))).all()
    filed = {o.source_message_id for o in orders}
    assert filed == {"<qq-1@qq.test>"} | ({f"<{t}@client.test>" for t in images} - crashing)
    assert await count(runtime, Attachment) == 3 * len(filed)  # nothing of a poison mail
    assert all(len(r.sender) <= 254 and "\x00" not in r.subject + r.sender for r in kept)

    set_aside = len(expected) - 1
    assert len(dovecot.folder(HUMANS)) == set_aside
    assert dovecot.folder("INBOX") == ["\\Seen CadeskFiled"] * len(filed)
    told = staff_told(runtime)
    assert sum("需要人工处理" in t for t in told) == set_aside  # once per mail
    assert sum("新订单待审核" in t for t in told) == len(filed)
    assert all("\x00" not in t for t in told)
    await wait_for(lambda: len(smtp.messages) == len(filed))
    assert await count(runtime, OutgoingMail) == len(filed)  # no poison mail answered


async def test_a_scan_check_that_raises_sets_the_mail_aside_whatever_pillow_does(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard is the inbox's, not the check's: a check raising anything at all (here on
    purpose, on one file) sends that mail to a person and files the next."""
    from bot.services.unlock import inbox as unlock_inbox

    uscc, marker = fake_uscc(), b"\xff\xd8\xff\xe0poison"
    real = unlock_inbox.accept_scan

    def raises_on_the_marked_file(data: bytes, rules):
        if data.startswith(marker):
            raise RuntimeError("a decoder bug")
        return real(data, rules)

    monkeypatch.setattr(unlock_inbox, "accept_scan", raises_on_the_marked_file)
    dovecot.deliver(corpus.with_attachment(uscc, "marked", marker + b"\0" * 64, "x.jpg",
                                           "image/jpeg"))
    dovecot.deliver(corpus.qq_mail(uscc))
    assert await poller_of(runtime).poll_once() == 2
    assert await rows(runtime) == {
        "<marked@client.test>": ("for_humans", "第 4 个附件无法检查（RuntimeError）"),
        "<qq-1@qq.test>": ("filed", None)}
    assert len(dovecot.folder(HUMANS)) == 1
    assert await count(runtime, Order) == 1
    assert sum("第 4 个附件无法检查" in t for t in staff_told(runtime)) == 1


async def test_a_message_id_reused_with_other_content_goes_to_a_person(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink) -> None:
    uscc = fake_uscc()
    dovecot.deliver(corpus.qq_mail(uscc))
    assert await poller_of(runtime).poll_once() == 1
    # the same mail again, as a second delivery (another Received line): the same mail
    dovecot.deliver(b"Received: from mx2.test by mx.test; Tue, 25 Nov 2026 09:31:00 +0000\r\n"
                    + corpus.qq_mail(uscc))
    # another mail under the first one's Message-ID: not "already filed"
    forged = corpus.qq_mail(fake_uscc(), 2).replace(b"<qq-2@qq.test>", b"<qq-1@qq.test>")
    dovecot.deliver(forged)
    assert await poller_of(runtime).poll_once() == 2

    async with runtime.db.transaction() as session:
        kept = (await session.scalars(select(InboundMail).order_by(InboundMail.uid))).all()
    assert [(r.uid, r.outcome, r.reason) for r in kept] == [
        (1, "filed", None), (3, "for_humans", "Message-ID 与此前的另一封邮件相同，内容却不同")]
    assert await count(runtime, Order) == 1
    assert dovecot.folder("INBOX") == ["\\Seen CadeskFiled"] * 2
    assert len(dovecot.folder(HUMANS)) == 1
    assert sum("内容却不同" in t for t in staff_told(runtime)) == 1
    await wait_for(lambda: len(smtp.messages) == 1)
    await asyncio.sleep(0.3)
    assert len(smtp.messages) == 1


async def test_the_reply_goes_to_the_envelope_sender_and_echoes_nothing(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink) -> None:
    bait = "中奖通知请访问 http://prize.example.test 领取"
    raw = corpus.no_attachments().replace(b"From: nobody@company.test", (
        b"Return-Path: <Zhang.San+unlock@Client.TEST>\r\n"
        b"From: someone@elsewhere.test\r\nReply-To: victim@third-party.test"))
    raw = raw.replace(corpus.word(f"CA解锁+{corpus.COMPANY}", "utf-8").encode(),
                      corpus.word(f"CA解锁+{corpus.COMPANY} {bait}", "utf-8").encode())
    raw = raw.replace("附件稍后补发".encode(), bait.encode())
    assert bait.encode() not in raw  # only encoded: the bot decoded it to mail it back
    dovecot.deliver(raw)
    assert await poller_of(runtime).poll_once() == 1
    await wait_for(lambda: len(smtp.messages) == 1)
    [reply] = smtp.messages
    assert reply["To"] == "zhang.san@client.test"  # Return-Path, tag folded, lower case
    assert reply["Subject"] == "Re: CA数字证书解锁申请"
    assert "还不能受理" in reply.get_content()
    assert "prize" not in reply.as_string()
    assert "中奖" not in reply.get_content()


async def test_replies_are_capped_per_address_with_tags_folded_and_per_domain(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.settings.mailbox, "replies_per_domain_per_hour", 4)
    senders = [f"user+{n}@one.test" for n in range(4)]  # one mailbox: cap 3
    senders += [f"u{n}@two.test" for n in range(6)]  # one domain: cap 4
    for n, sender in enumerate(senders):
        dovecot.deliver(corpus.no_attachments()
                        .replace(b"<bare@", f"<bare{n}@".encode())
                        .replace(b"nobody@company.test", sender.encode()))
    assert await poller_of(runtime).poll_once() == len(senders)
    await wait_for(lambda: len(smtp.messages) == 7)
    await asyncio.sleep(0.5)
    assert sorted(m["To"] for m in smtp.messages) == sorted(
        ["user@one.test"] * 3 + ["u0@two.test", "u1@two.test", "u2@two.test", "u3@two.test"])


async def test_a_statement_the_database_refuses_rolls_back_only_that_mail_of_the_batch(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Three mails, one batch, one transaction: the middle one's statement is refused by the
    database after its order was written (on PostgreSQL a data exception, SQLSTATE class 22,
    which aborts the whole transaction unless it happened in a savepoint; SQLAlchemy's asyncpg
    dialect raises it as a plain DBAPIError). The mail before it and the one after it
    are filed in the same commit; the refused one goes to a person with nothing of it kept."""
    from bot.services.unlock import inbox as unlock_inbox

    postgres = runtime.db.engine.dialect.name == "postgresql"
    refused = text("SELECT CAST('x' AS integer)" if postgres  # DataError, server side
                   else "INSERT INTO inbound_mail (message_id) VALUES (NULL)")  # NOT NULL
    real, raised = unlock_inbox.file_order, []

    async def refused_on_the_second(session, *args, **kwargs):
        order = await real(session, *args, **kwargs)  # the order row is written …
        if kwargs["source_message_id"] == "<qq-2@qq.test>":
            try:
                await session.execute(refused)  # … and then the database refuses a statement
            except Exception as error:
                raised.append(error)
                raise
        return order

    batches: list[int] = []
    file_batch = runtime.inbox.file_batch

    async def counted(mailbox, uidvalidity, reads):
        batches.append(len(reads))
        return await file_batch(mailbox, uidvalidity, reads)

    monkeypatch.setattr(unlock_inbox, "file_order", refused_on_the_second)
    monkeypatch.setattr(runtime.inbox, "file_batch", counted)
    uscc = fake_uscc()
    for n in (1, 2, 3):
        dovecot.deliver(corpus.qq_mail(uscc, n).replace(b"zhangsan@", f"user{n}@".encode()))
    assert await poller_of(runtime).poll_once() == 3
    assert batches == [3]
    [refusal] = raised
    if postgres:
        assert isinstance(refusal.orig.__cause__, asyncpg.exceptions.DataError)

    error = "sqlalchemy.exc.DBAPIError" if postgres else "sqlalchemy.exc.IntegrityError"
    assert await rows(runtime) == {"<qq-1@qq.test>": ("filed", None),
                                   "<qq-2@qq.test>": ("for_humans", f"无法登记，已回滚（{error}）"),
                                   "<qq-3@qq.test>": ("filed", None)}
    async with runtime.db.transaction() as session:
        orders = (await session.scalars(select(Order))).unique().all()
    assert sorted(o.source_message_id for o in orders) == ["<qq-1@qq.test>", "<qq-3@qq.test>"]
    assert await count(runtime, Attachment) == 6  # the refused mail's scans' rows are gone too
    assert dovecot.folder("INBOX") == ["\\Seen CadeskFiled"] * 2
    assert len(dovecot.folder(HUMANS)) == 1
    told = staff_told(runtime)
    assert sum("新订单待审核" in t for t in told) == 2
    assert sum("需要人工处理" in t and "无法登记" in t for t in told) == 1
    await wait_for(lambda: len(smtp.messages) == 2)
    assert sorted(m["In-Reply-To"] for m in smtp.messages) == ["<qq-1@qq.test>", "<qq-3@qq.test>"]
    assert await count(runtime, OutgoingMail) == 2  # the refused mail's reply rolled back
