"""E-mail notifications against a real SMTP server (aiosmtpd) started by the test."""

import asyncio
import random
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.adapters.fetch import ImageSource
from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_uscc, sample_scan
from bot.services.messages import Account, Incoming
from storage.models import OutgoingMail, utcnow
from storage.repositories import Handlers
from tests.support.applicant import bind_verified
from tests.support.helpers import MakeRuntime, free_port, wait_for
from tests.support.smtp_sink import SmtpSink, server_tls

RNG = random.Random(11)
APPLICANT, TECHNICIAN = Account("qq", "777"), Account("qq", "900001")


def mail_config(smtp_port: int, **email: object) -> str:
    """bot.toml with [email] at ``smtp_port``; ``email`` overrides options (TOML values)."""
    options = {"enabled": "true", "host": '"127.0.0.1"', "port": smtp_port,
               "security": '"none"', "from_address": '"ca@centre.example"',
               "retry_seconds": 60, "max_attempts": 3, "poll_seconds": 0.2, **email}
    return ('[staff]\ntechnicians = ["qq:900001"]\n[fees]\ncertificate = 260\n[email]\n'
            + "".join(f"{k} = {v}\n" for k, v in options.items()))


async def say(runtime: Runtime, text: str, *paths: Path) -> str:
    incoming = Incoming(text=text, images=tuple(ImageSource(path=p) for p in paths))
    return "\n".join(await runtime.dialogue.handle(APPLICANT, incoming))


async def submitted_order(runtime: Runtime, tmp_path: Path) -> str:
    scans = []
    for n in range(4):
        scans.append(tmp_path / f"{n}.jpg")
        scans[-1].write_bytes(sample_scan(f"mail {n}"))
    await bind_verified(runtime, APPLICANT, fake_uscc(RNG), "临沂邮件测试有限公司")
    assert "已设置通知邮箱" in await say(runtime, "邮箱 zhang.san@example.com")
    for text in ("新办证书", "1", "临沂", "1", "张三", fake_id_number(RNG), "13812345678", "自取"):
        await say(runtime, text)
    await say(runtime, "", *scans)
    done = await say(runtime, "确认提交")
    return done.split("订单号：")[1].split()[0]


async def test_approval_mail_arrives_with_chinese_subject_and_body(
        make_runtime: MakeRuntime, tmp_path: Path) -> None:
    with SmtpSink() as sink:
        runtime = await make_runtime(mail_config(sink.port))
        try:
            number = await submitted_order(runtime, tmp_path)
            await runtime.desk.execute(TECHNICIAN, f"通过 {number}", private=True)
            await wait_for(lambda: len(sink.messages) == 1)
        finally:
            await runtime.stop()
    mail = sink.messages[0]
    assert sink.keeper.envelopes == [("ca@centre.example", ["zhang.san@example.com"])]
    assert mail["Subject"] == f"订单 {number}：审核通过，请支付"
    assert mail["From"].addresses[0].display_name == "CA证书服务"
    assert mail["From"].addresses[0].addr_spec == "ca@centre.example"
    assert mail["To"] == "zhang.san@example.com"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Message-ID"].endswith("@centre.example>")
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    body = mail.get_content()
    assert f"您的订单 {number}（证书新办）已审核通过" in body
    assert "¥260.00" in body
    assert f"order={number}&amount=260.00" in body
    raw = sink.keeper.raw[0]
    assert b"Subject: =?utf-8?" in raw  # RFC 2047 on the wire: any mail client decodes it
    assert "审核通过".encode() not in raw.split(b"\r\n\r\n", 1)[0]


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_mail_over_tls_with_a_private_ca(
        make_runtime: MakeRuntime, tmp_path: Path, security: str) -> None:
    context, ca_file = server_tls(tmp_path)
    with SmtpSink(tls=security, context=context) as sink:
        runtime = await make_runtime(mail_config(sink.port, security=f'"{security}"',
                                     ca_file=f'"{ca_file.name}"'))
        try:
            number = await submitted_order(runtime, tmp_path)
            await runtime.desk.execute(TECHNICIAN, f"驳回 {number} 手机号打不通", private=True)
            await wait_for(lambda: len(sink.messages) == 1)
        finally:
            await runtime.stop()
    assert sink.messages[0]["Subject"] == f"订单 {number}：未通过审核，请修改后重新提交"
    assert "驳回理由：手机号打不通" in sink.messages[0].get_content()


async def test_an_untrusted_certificate_is_not_sent_to(
        make_runtime: MakeRuntime, tmp_path: Path) -> None:
    context, _ = server_tls(tmp_path)
    with SmtpSink(tls="starttls", context=context) as sink:
        runtime = await make_runtime(mail_config(sink.port, security='"starttls"'))
        try:
            number = await submitted_order(runtime, tmp_path)
            await runtime.desk.execute(TECHNICIAN, f"通过 {number}", private=True)
            await wait_for(lambda: _attempts(runtime) == 1)
            async with runtime.db.transaction() as session:
                mail = await session.scalar(select(OutgoingMail))
                assert "CERTIFICATE_VERIFY_FAILED" in mail.last_error
        finally:
            await runtime.stop()
    assert sink.messages == []


async def test_a_mail_server_that_is_down_does_not_block_and_is_retried(
        make_runtime: MakeRuntime, tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet
    runtime = await make_runtime(mail_config(port))
    number = await submitted_order(runtime, tmp_path)
    async with asyncio.timeout(5):  # the technician is answered at once
        replies = await runtime.desk.execute(TECHNICIAN, f"通过 {number}", private=True)
    assert "已通过" in replies[0]
    await wait_for(lambda: _attempts(runtime) == 1)
    async with runtime.db.transaction() as session:
        mail = await session.scalar(select(OutgoingMail))
        assert mail.sent_at is None
        assert "ConnectionRefused" in mail.last_error or "connect" in mail.last_error.lower()
        assert mail.next_attempt_at - utcnow() > timedelta(seconds=50)  # backs off
    with SmtpSink(port) as sink:
        async with runtime.db.transaction() as session:  # time passes
            await session.execute(update(OutgoingMail).values(next_attempt_at=utcnow()))
        runtime.mail.wake()
        await wait_for(lambda: len(sink.messages) == 1)
        # the outbox records the send once the server has answered: wait for that too
        await wait_for(lambda: _attempts(runtime) == 2)
    async with runtime.db.transaction() as session:
        mail = await session.scalar(select(OutgoingMail))
        assert mail.attempts == 2
        assert mail.sent_at is not None


async def test_the_outbox_gives_up_after_the_last_attempt(
        make_runtime: MakeRuntime, tmp_path: Path) -> None:
    runtime = await make_runtime(mail_config(free_port(), max_attempts=2, retry_seconds=0.01))
    number = await submitted_order(runtime, tmp_path)
    await runtime.desk.execute(TECHNICIAN, f"通过 {number}", private=True)
    await wait_for(lambda: _attempts(runtime) == 2)
    async with runtime.db.transaction() as session:
        mail = await session.scalar(select(OutgoingMail))
        assert mail.failed_at is not None
        assert mail.sent_at is None


async def test_no_address_no_mail_and_the_address_can_be_removed(
        make_runtime: MakeRuntime, tmp_path: Path) -> None:
    runtime = await make_runtime(mail_config(free_port()))
    await submitted_order(runtime, tmp_path)
    assert "不是有效的电子邮箱地址" in await say(runtime, "邮箱 不是邮箱")
    assert "zhang.san@example.com" in await say(runtime, "邮箱")
    assert "已取消邮件通知" in await say(runtime, "邮箱 删除")
    assert "（未设置）" in await say(runtime, "邮箱")


async def test_with_mail_off_no_address_is_taken_and_none_promised(
        make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(mail_config(free_port(), enabled="false"))
    await bind_verified(runtime, APPLICANT, fake_uscc(RNG), "临沂邮件测试有限公司")
    for text in ("邮箱 zhang.san@example.com", "邮箱"):
        reply = await say(runtime, text)
        assert "暂未开通邮件通知" in reply, reply
        assert "所有通知都会在这里" in reply
        assert "已设置通知邮箱" not in reply
        assert "同时发邮件" not in reply
    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(APPLICANT.platform, APPLICANT.user_id)
    assert handler is not None
    assert handler.email is None
    assert "已取消邮件通知" in await say(runtime, "邮箱 删除")  # an old address may still go


def _attempts(runtime: Runtime) -> int:
    path = runtime.settings.data_dir / "cadesk.db"
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT max(attempts) FROM outgoing_mail").fetchone()
    return row[0] or 0

