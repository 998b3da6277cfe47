"""The unlock mailbox against a real Dovecot (IMAP) and a real SMTP sink (aiosmtpd): every mail
filed exactly once, across crashes, with the right automatic replies."""

import asyncio
import sqlite3
import ssl
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from bot.adapters import mailbox
from bot.runtime import Runtime
from bot.samples import fake_uscc
from bot.services.messages import Account
from bot.services.unlock.inbox import UnlockInbox
from storage.db import DatabaseUnavailable
from storage.models import Company, InboundMail, MailboxState, Order
from tests.support import mail_corpus as corpus
from tests.support.dovecot import Dovecot, dovecot_server
from tests.support.helpers import MakeRuntime, wait_for
from tests.support.smtp_sink import SmtpSink
from tests.support.unlock_mailbox import count, poller_of, unlock_desk_config

TECHNICIAN = Account("qq", "900001")


@pytest.fixture
async def runtime(make_runtime: MakeRuntime, dovecot: Dovecot, smtp: SmtpSink) -> Runtime:
    return await make_runtime(unlock_desk_config(dovecot, smtp))


async def test_a_mixed_mailbox_is_filed_answered_and_sorted(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink) -> None:
    uscc = fake_uscc()
    filed_makers = [corpus.qq_mail, corpus.foxmail, corpus.outlook, corpus.phone,
                    corpus.forwarded]
    for make in filed_makers:
        dovecot.deliver(make(uscc))
    for make in (corpus.no_attachments, corpus.bounce, corpus.auto_reply, corpus.not_unlock,
                 corpus.mailing_list):
        dovecot.deliver(make())

    assert await poller_of(runtime).poll_once() == 10
    await wait_for(lambda: len(smtp.messages) == 6)

    async with runtime.db.transaction() as session:
        orders = (await session.scalars(select(Order).order_by(Order.id))).unique().all()
    assert [o.type for o in orders] == ["unlock"] * 5
    assert all(o.company is None for o in orders)  # a claim: no company made from a mail
    assert {(o.fields["uscc"], o.fields["company_name"]) for o in orders} == {
        (uscc, corpus.COMPANY)}
    assert all(len(o.attachments) == 3 and o.channel == "email" for o in orders)
    assert "PDF" in {a.format for o in orders for a in o.attachments}

    replies = {m["To"]: m for m in smtp.messages}
    assert set(replies) == {"zhangsan@qq.test", "lisi@foxmail.test", "wangwu@outlook.test",
                            "zhaoliu@phone.test", "admin@company.test", "nobody@company.test"}
    for order in orders:
        reply = replies[order.contact_email]
        assert reply["In-Reply-To"] == order.source_message_id
        assert order.source_message_id in reply["References"]
        assert reply["Auto-Submitted"] == "auto-replied"
        assert reply["Subject"].startswith("Re: ")
        assert f"订单号：{order.number}" in reply.get_content()
    missing = replies["nobody@company.test"].get_content()
    assert "还不能受理" in missing
    assert "缺少：附件一 CA数字证书密码重置申请表" in missing
    assert "缺少：附件三 经办人身份证复印件" in missing

    assert dovecot.folder("INBOX") == ["\\Seen CadeskFiled"] * 6
    assert len(dovecot.folder("待人工处理")) == 4  # bounce, auto-reply, not unlock, list
    told = [text for to, text in runtime.chat_outbox.chat.sent if to == "qq:900001"]
    assert sum("新订单待审核" in t for t in told) == 5
    assert sum("需要人工处理" in t for t in told) == 4

    # a technician's decision goes back to the sender, in the same thread
    await runtime.desk.execute(TECHNICIAN, f"通过 {orders[0].number}", private=True)
    await wait_for(lambda: len(smtp.messages) == 7)
    decision = smtp.messages[-1]
    assert decision["To"] == orders[0].contact_email
    assert decision["In-Reply-To"] == orders[0].source_message_id
    assert "已审核通过" in decision.get_content()
    assert await count(runtime, Company) == 1  # recorded by the approval


async def test_a_crash_between_fetch_and_commit_files_every_mail_once(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    uscc = fake_uscc()
    for n in range(1, 6):  # a sender each: the per-sender reply limit stays out
        dovecot.deliver(corpus.qq_mail(uscc, n).replace(b"zhangsan@", f"user{n}@".encode()))
    monkeypatch.setattr(mailbox, "FILE_BATCH", 2)
    real_file = UnlockInbox.file_batch
    fetched = asyncio.Event()

    async def stuck_on_the_second(self, box, uidvalidity, reads):
        if reads[0].uid == 3:  # the batch is read, nothing of it is committed yet
            fetched.set()
            await asyncio.Event().wait()
        return await real_file(self, box, uidvalidity, reads)

    monkeypatch.setattr(UnlockInbox, "file_batch", stuck_on_the_second)
    first_run = asyncio.create_task(poller_of(runtime).poll_once())
    await asyncio.wait_for(fetched.wait(), 10)
    first_run.cancel()  # the process dies here
    with pytest.raises(asyncio.CancelledError):
        await first_run
    assert await count(runtime, Order) == 2  # the first batch, whole; nothing of the second
    assert dovecot.folder("INBOX") == ["\\Seen CadeskFiled"] * 2 + [""] * 3
    monkeypatch.setattr(UnlockInbox, "file_batch", real_file)

    assert await poller_of(runtime).poll_once() == 3  # the restart picks up at mail 3
    assert await poller_of(runtime).poll_once() == 0
    await wait_for(lambda: len(smtp.messages) == 5)
    await asyncio.sleep(0.5)  # nothing else is on its way
    assert await count(runtime, Order) == 5
    assert len(smtp.messages) == 5
    assert sorted(m["In-Reply-To"] for m in smtp.messages) == [
        f"<qq-{n}@qq.test>" for n in range(1, 6)]
    assert dovecot.folder("INBOX") == ["\\Seen CadeskFiled"] * 5


async def test_an_outage_inside_the_transaction_leaves_no_trace_and_the_mail_waits(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    dovecot.deliver(corpus.qq_mail(fake_uscc()))
    from bot.services.unlock import inbox as unlock_inbox

    real = unlock_inbox.file_order

    async def breaks_after_the_order(*args, **kwargs):
        await real(*args, **kwargs)  # the order row is written …
        raise DatabaseUnavailable("server closed the connection")  # … and the server goes

    monkeypatch.setattr(unlock_inbox, "file_order", breaks_after_the_order)
    with pytest.raises(DatabaseUnavailable):
        await poller_of(runtime).poll_once()
    assert await count(runtime, Order) == 0
    assert await count(runtime, InboundMail) == 0
    assert dovecot.folder("INBOX") == [""]  # not put away: fetched again next time
    monkeypatch.setattr(unlock_inbox, "file_order", real)
    assert await poller_of(runtime).poll_once() == 1
    await wait_for(lambda: len(smtp.messages) == 1)
    assert await count(runtime, Order) == 1


async def test_any_other_failure_inside_the_transaction_rolls_back_and_goes_to_a_person(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    uscc = fake_uscc()
    for n in (1, 2):
        dovecot.deliver(corpus.qq_mail(uscc, n))
    from bot.services.unlock import inbox as unlock_inbox

    real = unlock_inbox.file_order

    async def breaks_on_the_first(*args, **kwargs):
        order = await real(*args, **kwargs)  # the order row is written …
        if kwargs["source_message_id"] == "<qq-1@qq.test>":
            raise KeyError("a bug")  # … and then something breaks
        return order

    monkeypatch.setattr(unlock_inbox, "file_order", breaks_on_the_first)
    assert await poller_of(runtime).poll_once() == 2
    async with runtime.db.transaction() as session:
        rows = (await session.scalars(select(InboundMail).order_by(InboundMail.uid))).all()
        orders = (await session.scalars(select(Order))).unique().all()
    assert [(r.outcome, r.reason, r.order_id) for r in rows] == [
        ("for_humans", "无法登记，已回滚（KeyError）", None), ("filed", None, orders[0].id)]
    assert [o.source_message_id for o in orders] == ["<qq-2@qq.test>"]
    assert len(dovecot.folder("待人工处理")) == 1
    await wait_for(lambda: len(smtp.messages) == 1)
    await asyncio.sleep(0.3)
    assert [m["In-Reply-To"] for m in smtp.messages] == ["<qq-2@qq.test>"]  # none for the 1st
    told = [text for to, text in runtime.chat_outbox.chat.sent if to == "qq:900001"]
    assert sum("需要人工处理（无法登记，已回滚（KeyError））" in t for t in told) == 1


@pytest.mark.parametrize("forget", ["the UID state", "the UIDVALIDITY"])
async def test_mail_seen_again_is_not_filed_again(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink, forget: str) -> None:
    uscc = fake_uscc()
    for n in range(1, 3):
        dovecot.deliver(corpus.qq_mail(uscc, n))
    assert await poller_of(runtime).poll_once() == 2
    await wait_for(lambda: len(smtp.messages) == 2)
    async with runtime.db.transaction() as session:
        if forget == "the UID state":
            await session.execute(delete(MailboxState))
        else:  # as after the server rebuilt the folder
            await session.execute(update(MailboxState).values(uidvalidity=1))
    assert await poller_of(runtime).poll_once() == 2  # looked at again …
    await asyncio.sleep(0.5)
    assert await count(runtime, Order) == 2  # … and filed no second time
    assert len(smtp.messages) == 2


async def test_replies_per_sender_are_limited(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink) -> None:
    for n in range(5):
        dovecot.deliver(corpus.no_attachments().replace(b"<bare@", f"<bare{n}@".encode()))
    assert await poller_of(runtime).poll_once() == 5
    await wait_for(lambda: len(smtp.messages) == 3)
    await asyncio.sleep(0.5)
    assert len(smtp.messages) == 3  # replies_per_sender_per_hour = 3


async def test_an_oversized_mail_goes_to_humans_without_being_downloaded(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.settings.mailbox, "max_message_megabytes", 0.1)
    dovecot.deliver(corpus.qq_mail(fake_uscc()))
    assert await poller_of(runtime).poll_once() == 1
    assert await count(runtime, Order) == 0
    assert len(dovecot.folder("待人工处理")) == 1
    path = runtime.settings.data_dir / "cadesk.db"
    with sqlite3.connect(path) as db:
        [(outcome, reason)] = db.execute("SELECT outcome, reason FROM inbound_mail").fetchall()
    assert (outcome, reason) == ("for_humans", "邮件超过 0.1 MB")
    assert smtp.messages == []


async def test_chat_and_mail_unlocks_share_one_review_queue(
        runtime: Runtime, dovecot: Dovecot, smtp: SmtpSink, tmp_path: Path) -> None:
    from bot.adapters.fetch import ImageSource
    from bot.samples import fake_id_number, sample_scan
    from bot.services.messages import Incoming

    uscc, applicant = fake_uscc(), Account("qq", "555")
    scans = []
    for n in range(3):
        scans.append(tmp_path / f"{n}.jpg")
        scans[-1].write_bytes(sample_scan(f"queue {n}"))
    for text in ("你好", uscc, corpus.COMPANY, "同意", "王小明", "13812345678", "取消", "是",
                 "解锁", "临沂市兰山区金雀山路 1 号", "王五",
                 "0539-8123456", "张三", "13812345678", fake_id_number()):
        await runtime.dialogue.handle(applicant, Incoming(text=text))
    await runtime.dialogue.handle(applicant, Incoming(
        images=tuple(ImageSource(path=p) for p in scans)))
    await runtime.dialogue.handle(applicant, Incoming(text="确认提交"))
    dovecot.deliver(corpus.qq_mail(uscc))  # the same company, by mail
    assert await poller_of(runtime).poll_once() == 1

    [queue] = await runtime.desk.execute(TECHNICIAN, "待审核", private=True)
    assert queue.count("证书解锁") == 2
    async with runtime.db.transaction() as session:
        orders = (await session.scalars(select(Order))).unique().all()
    assert sorted(o.channel for o in orders) == ["chat", "email"]
    assert len({o.company_id for o in orders}) == 1  # the mail found the bound company


async def test_imap_over_tls_with_a_private_ca(runtime: Runtime, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.smtp_sink import server_tls

    _, ca_file = server_tls(tmp_path)
    with dovecot_server(corpus.MAILBOX, tls=(tmp_path / "cert.pem", tmp_path / "key.pem")
                        ) as secure:
        secure.deliver(corpus.qq_mail(fake_uscc()))
        box = runtime.settings.mailbox
        monkeypatch.setattr(box, "port", secure.port)
        monkeypatch.setattr(box, "security", "tls")
        (tmp_path / "other").mkdir()
        _, other_ca = server_tls(tmp_path / "other")
        monkeypatch.setattr(box, "ca_file", other_ca)
        with pytest.raises(ssl.SSLCertVerificationError):  # a CA we do not trust: no login
            await poller_of(runtime).poll_once()
        monkeypatch.setattr(box, "ca_file", ca_file)
        assert await poller_of(runtime).poll_once() == 1
    assert await count(runtime, Order) == 1
