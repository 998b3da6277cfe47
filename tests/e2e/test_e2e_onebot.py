"""End to end: the real bot process, a OneBot v11 peer on a real WebSocket, a restart mid-flow."""

import asyncio
import hashlib
import random
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from bot.samples import fake_id_number, fake_uscc, sample_scan
from tests.support.helpers import PENDING_BINDING, ScanServer
from tests.support.onebot_peer import (
    TECHNICIAN,
    TOKEN,
    USER,
    BotProcess,
    OneBotPeer,
    make_instance,
    picture,
    text,
)


@pytest.fixture
def instance(tmp_path: Path) -> tuple[BotProcess, int]:
    return make_instance(tmp_path)


async def test_application_over_onebot_survives_a_restart(
        instance: tuple[BotProcess, int], scan_server: ScanServer, tmp_path: Path) -> None:
    bot, port = instance
    rng = random.Random(5)
    uscc, id_number = fake_uscc(rng), fake_id_number(rng, ends_with_x=True)
    scans = [sample_scan(f"e2e {n}") for n in range(4)]
    urls = [scan_server.add(f"e2e-{n}.jpg", data) for n, data in enumerate(scans)]

    await bot.start()
    try:
        async with aiohttp.ClientSession() as session:
            peer = OneBotPeer(port, TOKEN)
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(peer.url, headers=peer.headers("wrong-token"))
            assert refused.value.status == 403

        peer = OneBotPeer(port, TOKEN)
        await peer.connect()

        async def say(segments: list[dict], until: str) -> str:
            await peer.send_private(USER, segments)
            replies = await peer.replies_until(until)
            assert {to for to, _ in replies} == {f"user:{USER}"}
            return "\n".join(t for _, t in replies)

        await say(text("你好"), "【统一社会信用代码】")
        await say(text(uscc), "【单位名称】")
        await say(text("临沂端到端测试有限公司"), "【注册协议】")
        await say(text("同意"), "【申报人】")
        for answer, until in PENDING_BINDING:
            await say(text(answer), until)
        await say(text("新办证书"), "【证书年限】")
        await say(text("1"), "【项目所属地区】")
        await say(text("临沂"), "【办理Ukey数量】")
        await say(text("1"), "【经办人姓名】")
        await say(text("张三"), "【经办人身份证号】")
        await say(text(id_number), "【手机号】")
        await say(text("13812345678"), "【是否自取】")
        await say(text("2"), "【地级市】")
        await say(text("山东省临沂市兰山区"), "【邮寄地址】")
        await say(text("金雀山路 1 号"), "【附件一 信息印章采集表】")
        await say(picture(urls[0]), "【附件二 经办人身份证复印件】")

        await peer.close()
        await bot.stop()  # the operator restarts the bot in the middle of the application
        await bot.start()
        peer = OneBotPeer(port, TOKEN)
        await peer.connect()

        replies = await say(picture(urls[1]), "【附件三 单位授权书及诚信承诺书】")
        assert "已收到【附件二" in replies  # nothing re-asked: the flow went on where it was
        await say(picture(urls[2]), "【附件四 机构营业执照】")
        summary = await say(picture(urls[3]), "确认提交")
        assert "138****5678" in summary
        assert id_number not in summary
        done = await say(text("确认提交"), "订单号：")
        number = done.split("订单号：")[1].split()[0]
        assert "¥300.00" in done
        await say(text(f"查询 {number}"), number)
        await peer.close()
    finally:
        await bot.stop()

    data_dir = tmp_path / "live-data"
    with sqlite3.connect(data_dir / "cadesk.db") as db:
        [(order_id, status, fields)] = db.execute(
            "SELECT id, status, fields FROM orders WHERE number = ?", (number,)).fetchall()
        attachments = db.execute(
            "SELECT slot, sha256, format FROM attachments WHERE order_id = ?",
            (order_id,)).fetchall()
        conversations = db.execute("SELECT count(*) FROM conversations").fetchone()[0]
    assert status == "submitted"
    assert id_number in fields
    assert uscc in fields
    assert conversations == 0
    by_slot = {slot: sha for slot, sha, _ in attachments}
    expected = dict(zip(["scan_form", "scan_id_card", "scan_authorisation", "scan_licence"],
                        (hashlib.sha256(d).hexdigest() for d in scans), strict=True))
    assert by_slot == expected
    for sha in by_slot.values():
        stored = data_dir / "scans" / sha[:2] / sha
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
    log = (tmp_path / "bot.log").read_text(errors="replace")
    assert "[ERROR]" not in log
    assert "[INFO]" in log  # logged at the configured level (the checks below can fail)
    assert id_number not in log
    assert "13812345678" not in log


GROUP = 900


async def test_review_cycle_over_onebot(scan_server: ScanServer, tmp_path: Path) -> None:
    """Submit, reject, correct one scan, resubmit, approve, pay, ship: each message reaches the
    right person, and nothing personal shows in the staff group or the log."""
    bot, port = make_instance(tmp_path, f"""
[staff]
technicians = ["qq:{TECHNICIAN}"]
group = "qq:{GROUP}"
""")
    rng = random.Random(8)
    uscc, id_number = fake_uscc(rng), fake_id_number(rng)
    urls = [scan_server.add(f"cycle-{n}.jpg", sample_scan(f"cycle {n}")) for n in range(5)]
    seen: list[tuple[str, str]] = []
    await bot.start()
    peer = OneBotPeer(port, TOKEN)
    try:
        await peer.connect()

        async def act(send, until: str) -> dict[str, str]:
            await send
            replies = await peer.replies_until(until)
            seen.extend(replies)
            by_target: dict[str, str] = {}
            for to, message in replies:
                by_target[to] = by_target.get(to, "") + message + "\n"
            return by_target

        def applicant(value: list[dict], until: str):
            return act(peer.send_private(USER, value), until)

        def staff_private(command: str, until: str):
            return act(peer.send_private(TECHNICIAN, text(command)), until)

        def staff_group(command: str, until: str):
            return act(peer.send_group(GROUP, TECHNICIAN, text(command)), until)

        for answer, until in [("你好", "【统一社会信用代码】"), (uscc, "【单位名称】"),
                              ("临沂审核测试有限公司", "【注册协议】"), ("同意", "【申报人】"),
                              *PENDING_BINDING,
                              ("新办证书", "【证书年限】"), ("1", "【项目所属地区】"),
                              ("临沂", "【办理Ukey数量】"), ("1", "【经办人姓名】"),
                              ("李四", "【经办人身份证号】"), (id_number, "【手机号】"),
                              ("13912345678", "【是否自取】"), ("2", "【地级市】"),
                              ("山东省临沂市兰山区", "【邮寄地址】"),
                              ("金雀山路 2 号", "【附件一")]:
            await applicant(text(answer), until)
        for url, until in zip(urls[:4], ["【附件二", "【附件三", "【附件四", "确认提交"],
                              strict=True):
            await applicant(picture(url), until)
        got = await applicant(text("确认提交"), "订单号：")
        number = got[f"user:{USER}"].split("订单号：")[1].split()[0]
        assert "新订单待审核" in got[f"group:{GROUP}"]

        got = await staff_group(f"驳回 {number} 附件二复印件模糊", "已驳回")
        assert "驳回理由：附件二复印件模糊" in got[f"user:{USER}"]
        assert "附件二 经办人身份证复印件" in got[f"group:{GROUP}"]

        await applicant(text(f"修改 {number}"), "请发送【附件二")
        await applicant(picture(urls[4]), "确认提交")
        got = await applicant(text("确认提交"), "已重新提交")
        assert "修改了：附件二 经办人身份证复印件" in got[f"group:{GROUP}"]

        got = await staff_private(f"通过 {number}", f"已通过订单 {number}")
        assert "审核通过" in got[f"user:{USER}"]
        assert "[图片]" in got[f"user:{USER}"]  # the payment QR code
        got = await staff_private(f"收款 {number}", "已登记")
        assert "的付款 ¥300.00" in got[f"user:{USER}"]
        got = await staff_private(f"发货 {number} 顺丰 SF9876543210", "已登记")
        assert "顺丰 快递单号 SF9876543210" in got[f"user:{USER}"]
        got = await staff_group(f"查看 {number}", "扫描件含个人信息")
        assert "139****5678" in got[f"group:{GROUP}"]
    finally:
        await peer.close()
        await bot.stop()

    targets = {to for to, _ in seen}
    assert targets == {f"user:{USER}", f"user:{TECHNICIAN}", f"group:{GROUP}"}
    for to, message in seen:
        if to.startswith("group:"):
            assert id_number not in message
            assert "13912345678" not in message
    log = (tmp_path / "bot.log").read_text(errors="replace")
    assert "[ERROR]" not in log
    assert id_number not in log
    assert "13912345678" not in log
    with sqlite3.connect(tmp_path / "live-data" / "cadesk.db") as db:
        events = [e for (e,) in db.execute(
            "SELECT event FROM order_events JOIN orders ON orders.id = order_id "
            "WHERE number = ? ORDER BY order_events.id", (number,))]
    assert events == ["submit", "reject", "resubmit", "approve", "pay", "ship"]


async def test_mailed_unlock_reaches_the_technician_and_the_decision_goes_back_by_mail(
        tmp_path: Path) -> None:
    from tests.support import mail_corpus as corpus
    from tests.support.dovecot import dovecot_server, mail_settings
    from tests.support.smtp_sink import SmtpSink

    with dovecot_server(corpus.MAILBOX) as dovecot, SmtpSink() as smtp:
        bot, port = make_instance(tmp_path, f"""
[staff]
technicians = ["qq:{TECHNICIAN}"]
{mail_settings(dovecot, smtp.port)}""")
        await bot.start()
        peer = OneBotPeer(port, TOKEN)
        try:
            await peer.connect()
            dovecot.deliver(corpus.qq_mail(fake_uscc()))
            [(to, notice)] = await peer.replies_until("新订单待审核")
            assert to == f"user:{TECHNICIAN}"
            number = notice.split("】")[1].split()[0]
            await peer.send_private(TECHNICIAN, text(f"通过 {number}"))
            await peer.replies_until(f"已通过订单 {number}")
            async with asyncio.timeout(15):
                while len(smtp.messages) < 2:  # noqa: ASYNC110 - another thread fills it
                    await asyncio.sleep(0.1)
        finally:
            await peer.close()
            await bot.stop()
    received, decided = smtp.messages
    assert f"订单号：{number}" in received.get_content()
    assert received["Auto-Submitted"] == "auto-replied"
    assert "已审核通过" in decided.get_content()
    assert decided["In-Reply-To"] == "<qq-1@qq.test>"
    assert "[ERROR]" not in (tmp_path / "bot.log").read_text(errors="replace")


async def test_replies_keep_the_order_of_the_messages_with_a_slow_client(
        instance: tuple[BotProcess, int]) -> None:
    """Two messages sent at once, the first answered in two messages: even when the client is
    slow to take each send, the second message's reply never comes between them."""
    bot, port = instance
    await bot.start()
    try:
        peer = OneBotPeer(port, TOKEN)
        await peer.connect()
        peer.answer_after = 0.3  # NapCat busy: each send action answered late
        await peer.send_private(USER, text("你好"))  # welcome, then the first question
        await peer.send_private(USER, text("帮助"))  # the form's help
        replies = await peer.replies_until("【统一社会信用代码】")
        replies += await peer.replies_for(1.5)
        await peer.close()
    finally:
        await bot.stop()
    texts = [t for _, t in replies]
    assert len(texts) == 3, texts
    assert "欢迎使用" in texts[0]
    assert texts[1].startswith("请输入【统一社会信用代码】")
    assert "直接回复即可" in texts[2]  # the help last, as it was asked
