"""Two ``python -m bot`` processes on one PostgreSQL ([cluster]) behind QQ's official webhook
(the platform's stand-in, tests/support/qq_platform.py, posting each event to one process or the
other as a load balancer would): one applicant's interleaved messages handled in order, and an
unlock mail filed once while both poll the mailbox; an event the platform delivers again to the
other process is handled once."""

import asyncio
import hashlib
import random
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import func, select

from bot.samples import fake_id_number, fake_uscc, sample_scan
from storage.db import Database
from storage.models import Attachment, InboundMail, Order, OutgoingChat
from tests.support import mail_corpus as corpus
from tests.support.dovecot import DOVEADM, Dovecot, mail_settings
from tests.support.helpers import PENDING_BINDING, wait_for
from tests.support.onebot_peer import BotProcess
from tests.support.qq_platform import QqPlatform, make_qq_instance
from tests.support.smtp_sink import SmtpSink
from tests.support.wechat_platform import APPLICANT, WeChatPlatform, make_wechat_instance

USER, TECHNICIAN = "C1A57E40000000000000000000000001", "7EC40000000000000000000000000009"
MAILS = 6
PHOTO_SECONDS = 1.5  # how long the platform's media server takes to hand out a photo


class SlowMediaQq(QqPlatform):
    """The stand-in whose photos take a while to download: the message carrying one is still
    being handled when the next message reaches the other process."""

    async def _download(self, request: web.Request) -> web.Response:
        await asyncio.sleep(PHOTO_SECONDS)
        return await super()._download(request)


@pytest.fixture
async def qq() -> AsyncIterator[QqPlatform]:
    async with SlowMediaQq() as platform:
        yield platform


@pytest.fixture
async def database(postgres: Callable[[], str]) -> AsyncIterator[Database]:
    """The one PostgreSQL database both processes use (the test reads it too)."""
    db = Database(postgres())
    yield db
    await db.close()


Instance = Callable[[Path, str], BotProcess]  # (its directory, TOML first) → a bot process


def on_qq(qq: QqPlatform) -> Instance:
    return lambda directory, extra: make_qq_instance(directory, qq, extra)


async def two_processes(tmp_path: Path, instance: Instance, url: str,
                        extra: str = "") -> tuple[BotProcess, BotProcess]:
    """Two bot processes, each its own configuration and port, one database and one data
    directory (the scans), [cluster] on; both started."""
    shared = tmp_path / "shared-data"
    shared.mkdir(mode=0o700)
    bots = []
    for name in ("a", "b"):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "live-data").symlink_to(shared)
        bots.append(instance(directory, f"""
[database]
url = "{url}"
[cluster]
enabled = true
[staff]
technicians = ["qqbot:{TECHNICIAN}"]
{extra}"""))
    # at once: the migrations of the first run one after the other
    await asyncio.gather(*(bot.start() for bot in bots))
    return bots[0], bots[1]


async def stop(*bots: BotProcess) -> None:
    await asyncio.gather(*(bot.stop() for bot in bots))


def log_of(bot: BotProcess) -> str:
    return bot.log.read_text(errors="replace")


def doveadm(dovecot: Dovecot, *args: str) -> None:
    subprocess.run([DOVEADM, "-c", str(dovecot.config), *args], check=True,
                   capture_output=True)


async def scalar(db: Database, query: Any) -> Any:
    async with db.transaction() as session:
        return await session.scalar(query)


async def test_one_applicants_interleaved_messages_are_handled_in_order(
        tmp_path: Path, qq: QqPlatform, database: Database) -> None:
    """A binding, every message to the other process than the one before, each sent a moment
    after the previous without waiting for its answer; the two photos take long to fetch, so
    the message after each arrives while it is being handled elsewhere."""
    rng = random.Random(1616)
    photos = [sample_scan(f"cluster binding {n}") for n in range(2)]
    attached = [qq.add_photo(f"cluster-{n}", data) for n, data in enumerate(photos)]
    # each message and a fragment of the answer it gets when handled after the one before
    script: list[tuple[str, list[dict] | None, str]] = [
        ("你好", None, "【统一社会信用代码】"), (fake_uscc(rng), None, "【单位名称】"),
        ("临沂集群测试有限公司", None, "【注册协议】"), ("同意", None, "【申报人】"),
        *((text, None, until) for text, until in PENDING_BINDING[:2]),
        ("施工单位", None, "【经办人身份证号】"), (fake_id_number(rng), None, "【附件一"),
        ("", [attached[0]], "【附件二"), ("", [attached[1]], "确认提交"),
        ("确认提交", None, "绑定申请已提交")]
    a, b = await two_processes(tmp_path, on_qq(qq), database.url)
    try:
        sent = []
        for n, (text, attachments, _) in enumerate(script):
            port = (a, b)[n % 2].port
            sent.append(asyncio.create_task(qq.say(USER, text, attachments, port=port)))
            await asyncio.sleep(0.3)
        ids = [await message for message in sent]
        await qq.received(USER, "绑定申请已提交", within=40)
        # the platform retries the last event (A took it) and the balancer picks B
        answered = len(qq.sent)
        assert await qq.deliver_again(port=b.port) == 200
        await asyncio.sleep(1)
        assert len(qq.sent) == answered  # acknowledged, not handled again
    finally:
        await stop(a, b)
    answers = {msg_id: "\n".join(s.text() for s in qq.sent if s.msg_id == msg_id)
               for msg_id in ids}
    for msg_id, (text, _, until) in zip(ids, script, strict=True):
        assert until in answers[msg_id], (text, answers[msg_id])
    assert qq.downloads == ["cluster-0", "cluster-1"]  # each photo fetched once
    async with database.transaction() as session:
        request = await session.scalar(select(Order).where(Order.type == "binding"))
        assert request is not None
        by_slot = dict((await session.execute(select(Attachment.slot, Attachment.sha256).where(
            Attachment.order_id == request.id))).all())
    assert by_slot == {"scan_authorisation": hashlib.sha256(photos[0]).hexdigest(),
                       "scan_licence": hashlib.sha256(photos[1]).hexdigest()}
    for bot in (a, b):  # each took messages of the applicant's
        assert "[ERROR]" not in log_of(bot)
    assert qq.refused == []


async def test_each_unlock_mail_is_filed_once_with_both_processes_polling(
        tmp_path: Path, qq: QqPlatform, database: Database, dovecot: Dovecot,
        smtp: SmtpSink) -> None:
    uscc = fake_uscc(random.Random(5))
    doveadm(dovecot, "mailbox", "create", "-u", dovecot.user, "Arriving")
    for n in range(1, MAILS + 1):  # a sender each: the per-sender reply limit stays out
        dovecot.deliver(corpus.qq_mail(uscc, n).replace(b"zhangsan@", f"user{n}@".encode()),
                        folder="Arriving")
    a, b = await two_processes(tmp_path, on_qq(qq), database.url,
                               mail_settings(dovecot, smtp.port, 0.2)
                               + 'human_folder = "待人工处理"\n')
    try:
        await asyncio.sleep(1)  # both polling the empty folder by now
        # the mails arrive at once: both processes' next polls find all of them new
        await asyncio.to_thread(doveadm, dovecot, "move", "-u", dovecot.user, "INBOX",
                                "mailbox", "Arriving", "ALL")
        await wait_for(lambda: len(smtp.messages) == MAILS, 60)
        await asyncio.sleep(2)  # ten polls more of each process: nothing more happens
        inbound = await scalar(database, select(func.count()).select_from(InboundMail))
        orders = await scalar(database, select(func.count()).select_from(Order))
        told = await scalar(database, select(func.count()).select_from(OutgoingChat))
    finally:
        await stop(a, b)
    assert (inbound, orders) == (MAILS, MAILS)
    assert told == MAILS  # the technician told of each new order once
    assert sorted(m["To"] for m in smtp.messages) == [f"user{n}@qq.test"
                                                      for n in range(1, MAILS + 1)]
    assert all("订单号：" in m.get_content() for m in smtp.messages)
    assert dovecot.folder("INBOX") == ["\\Seen CadeskFiled"] * MAILS
    assert dovecot.folder("待人工处理") == []
    polled = [log_of(bot) for bot in (a, b)]
    assert all("[ERROR]" not in log for log in polled)


async def test_a_wechat_message_retried_to_the_other_process_is_handled_once(
        tmp_path: Path, database: Database) -> None:
    """WeChat retries a message it had no answer to within 5 seconds; behind a balancer the
    retry reaches the other process, which acknowledges it and does nothing more."""
    async with WeChatPlatform() as wechat:
        a, b = await two_processes(
            tmp_path, lambda directory, extra: make_wechat_instance(directory, wechat, extra),
            database.url)
        try:
            hello = {"MsgType": "text", "Content": "你好", "MsgId": "7100000000000000001"}
            wechat.bot_port = a.port
            assert await wechat.post(APPLICANT, hello) == 200
            await wechat.replies_until("【统一社会信用代码】")
            wechat.bot_port = b.port
            assert await wechat.post(APPLICANT, hello) == 200  # the retry, to B
            assert await wechat.quiet(1.5) == []
            assert await wechat.text(APPLICANT, fake_uscc(random.Random(3))) == 200
            await wechat.replies_until("【单位名称】")  # B goes on where A left the form
        finally:
            await stop(a, b)
