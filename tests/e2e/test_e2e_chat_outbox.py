"""End to end: the QQ connection drops while a technician approves; once the OneBot client is
back, the applicant receives the approval exactly once (the chat outbox, over a real
WebSocket to the real bot process)."""

import asyncio
import random
import sqlite3
from pathlib import Path

from bot.samples import fake_id_number, fake_uscc, sample_scan
from tests.support.helpers import PENDING_BINDING, ScanServer
from tests.support.onebot_peer import (
    TECHNICIAN,
    TOKEN,
    USER,
    OneBotPeer,
    make_instance,
    picture,
    text,
)


async def test_an_approval_made_as_the_connection_drops_arrives_once_it_is_back(
        scan_server: ScanServer, tmp_path: Path) -> None:
    bot, port = make_instance(tmp_path, f'[staff]\ntechnicians = ["qq:{TECHNICIAN}"]\n')
    rng = random.Random(12)
    urls = [scan_server.add(f"outbox-{n}.jpg", sample_scan(f"outbox {n}")) for n in range(4)]
    await bot.start()
    peer = OneBotPeer(port, TOKEN)
    try:
        await peer.connect()

        async def say(segments: list[dict], until: str) -> str:
            await peer.send_private(USER, segments)
            return "\n".join(t for _, t in await peer.replies_until(until))

        for answer, until in [("你好", "【统一社会信用代码】"), (fake_uscc(rng), "【单位名称】"),
                              ("临沂断线测试有限公司", "【注册协议】"), ("同意", "【申报人】"),
                              *PENDING_BINDING,
                              ("新办证书", "【证书年限】"), ("1", "【项目所属地区】"),
                              ("临沂", "【办理Ukey数量】"), ("1", "【经办人姓名】"),
                              ("李四", "【经办人身份证号】"), (fake_id_number(rng), "【手机号】"),
                              ("13912345678", "【是否自取】"), ("2", "【地级市】"),
                              ("山东省临沂市兰山区", "【邮寄地址】"),
                              ("金雀山路 3 号", "【附件一")]:
            await say(text(answer), until)
        for url, until in zip(urls, ["【附件二", "【附件三", "【附件四", "确认提交"], strict=True):
            await say(picture(url), until)
        done = await say(text("确认提交"), "订单号：")
        number = done.split("订单号：")[1].split()[0]

        # the technician's command reaches the bot, and the connection is gone at once
        await peer.send_private(TECHNICIAN, text(f"通过 {number}"))
        await peer.close()
        await asyncio.sleep(1)

        peer = OneBotPeer(port, TOKEN)  # NapCat reconnects
        await peer.connect()
        # the approval's text, then its payment QR code
        got = await peer.replies_until("[图片]", within=60)
    finally:
        await peer.close()
        await bot.stop()

    to_applicant = [message for to, message in got if to == f"user:{USER}"]
    assert sum("已审核通过" in m for m in to_applicant) == 1
    assert sum("[图片]" in m for m in to_applicant) == 1  # the payment QR code, once
    with sqlite3.connect(tmp_path / "live-data" / "cadesk.db") as db:
        waiting = db.execute("SELECT count(*) FROM outgoing_chat WHERE sent_at IS NULL"
                             ).fetchone()[0]
    assert waiting == 0
