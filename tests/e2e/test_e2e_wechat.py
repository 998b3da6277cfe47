"""End to end on a WeChat official account: the real bot process, and a stand-in for WeChat on
127.0.0.1 that signs and encrypts users' messages (安全模式) and serves the API the bot calls."""

import hashlib
import random
import sqlite3
from pathlib import Path

import aiohttp

from bot.samples import fake_id_number, fake_uscc, sample_scan
from tests.support.wechat_platform import (
    APPLICANT,
    TECHNICIAN,
    WeChatPlatform,
    make_wechat_instance,
    signature,
)

STAFF = f"""
[staff]
technicians = ["wechat:{TECHNICIAN}"]
"""


async def test_a_whole_application_with_scans_on_wechat(tmp_path: Path) -> None:
    """Bind, the binding verified by a technician (on WeChat too), 新办证书 with four scans sent
    as photos, 确认提交: the order is filed with exactly those scans. Replies come as 客服消息,
    photos are fetched by MediaId with the access token, and an expired token is replaced."""
    rng = random.Random(16)
    uscc, id_number = fake_uscc(rng), fake_id_number(rng)
    letter, licence = (sample_scan(f"wechat binding {n}") for n in (1, 2))
    scans = [sample_scan(f"wechat {n}") for n in range(4)]
    async with WeChatPlatform() as wechat:
        bot = make_wechat_instance(tmp_path, wechat, STAFF)
        await bot.start()
        try:
            async def say(text: str, until: str, who: str = APPLICANT) -> str:
                assert await wechat.text(who, text) == 200
                return "\n".join(s.reads() for s in await wechat.replies_until(until))

            async def photo(data: bytes, until: str) -> str:
                assert await wechat.image(APPLICANT, data) == 200
                return "\n".join(s.reads() for s in await wechat.replies_until(until))

            await say("你好", "【统一社会信用代码】")
            await say(uscc, "【单位名称】")
            await say("临沂微信测试有限公司", "【注册协议】")
            await say("同意", "【申报人】")
            await say("王小明", "【联系电话】")
            await say("13812345678", "【用户类型】")
            await say("施工单位", "【经办人身份证号】")
            await say(fake_id_number(rng), "【附件一")
            await photo(letter, "【附件二")
            await photo(licence, "确认提交")
            done = await say("确认提交", "绑定申请已提交")
            request = done.split("编号 ", 1)[1].split("。", 1)[0]
            assert await wechat.text(TECHNICIAN, f"通过 {request}") == 200
            told = await wechat.replies_until("绑定已核验", "已通过绑定申请")
            assert {s.to for s in told if "绑定已核验" in s.text} == {APPLICANT}
            assert {s.to for s in told if "已通过绑定申请" in s.text} == {TECHNICIAN}

            wechat.expire_tokens()  # two hours later: the bot's access token is refused
            await say("新办证书", "【证书年限】")
            assert wechat.token_requests == 2
            await say("1", "【项目所属地区】")
            await say("临沂", "【办理Ukey数量】")
            await say("1", "【经办人姓名】")
            await say("张三", "【经办人身份证号】")
            await say(id_number, "【手机号】")
            await say("13812345678", "【是否自取】")
            await say("2", "【地级市】")
            await say("山东省临沂市兰山区", "【邮寄地址】")
            await say("金雀山路 1 号", "【附件一 信息印章采集表】")
            # the same scan checks as on any channel: a thumbnail is refused, nothing kept
            small = await photo(sample_scan("too small", size=(300, 400)), "分辨率太低")
            assert "300×400" in small
            for data in scans:  # four photos picked at once: WeChat posts them back to back
                assert await wechat.image(APPLICANT, data) == 200
            await wechat.replies_until("已收到【附件四", "确认提交")
            assert await wechat.text(APPLICANT, "确认提交") == 200
            told = await wechat.replies_until("订单号：", "新订单待审核")
            [done] = [s.text for s in told if "订单号：" in s.text]
            number = done.split("订单号：")[1].split()[0]
            assert "¥300.00" in done
            [staff] = [s for s in told if "新订单待审核" in s.text]
            # pictures (the blank paper forms) go out uploaded as temporary media
            assert await wechat.text(APPLICANT, "模板") == 200
            assert await wechat.text(APPLICANT, f"查询 {number}") == 200
            forms = await wechat.replies_until("需要打印的表格", f"订单号：{number}")
            pictures = [s.image for s in forms if s.image is not None]
            assert len(pictures) >= 2
            assert all(p.startswith(b"\x89PNG") for p in pictures)
            assert wechat.uploads == pictures
            assert staff.to == TECHNICIAN
            assert number in staff.text
        finally:
            await bot.stop()
        assert wechat.pic_url_requests == 0  # photos came by MediaId, never by PicUrl

    with sqlite3.connect(tmp_path / "live-data" / "cadesk.db") as db:
        [(order_id, status, fields)] = db.execute(
            "SELECT id, status, fields FROM orders WHERE number = ?", (number,)).fetchall()
        attachments = dict(db.execute(
            "SELECT slot, sha256 FROM attachments WHERE order_id = ?", (order_id,)).fetchall())
        [(platform, user_id, standing)] = db.execute(
            "SELECT platform, user_id, status FROM handlers").fetchall()
    assert status == "submitted"
    assert id_number in fields
    assert uscc in fields
    assert (platform, user_id, standing) == ("wechat", APPLICANT, "verified")
    assert attachments == dict(zip(
        ["scan_form", "scan_id_card", "scan_authorisation", "scan_licence"],
        (hashlib.sha256(d).hexdigest() for d in scans), strict=True))
    log = (tmp_path / "bot.log").read_text(errors="replace")
    assert "[ERROR]" not in log
    assert id_number not in log
    assert "13812345678" not in log


async def test_a_forged_callback_is_refused_and_files_nothing(tmp_path: Path) -> None:
    async with WeChatPlatform() as wechat:
        bot = make_wechat_instance(tmp_path, wechat)
        await bot.start()
        try:
            # WeChat's URL check (服务器配置): the echostr back for the right token only
            url = f"http://127.0.0.1:{wechat.bot_port}/wechat/callback"
            async with aiohttp.ClientSession() as http:
                query = {"timestamp": "1700000000", "nonce": "4711", "echostr": "echo-8231"}
                right = signature(wechat.token, query["timestamp"], query["nonce"])
                async with http.get(url, params=query | {"signature": right}) as response:
                    assert (response.status, await response.text()) == (200, "echo-8231")
                wrong = signature("not-the-token", query["timestamp"], query["nonce"])
                async with http.get(url, params=query | {"signature": wrong}) as response:
                    assert response.status == 403
                    assert "echo-8231" not in await response.text()

            # signed with another token; unsigned and plain; with a good request signature
            # but an Encrypt made with another token (its msg_signature does not match)
            assert await wechat.post(APPLICANT, {"MsgType": "text", "Content": "你好"},
                                     token="not-the-token") == 403
            plain = wechat.message_xml(APPLICANT, {"MsgType": "text", "Content": "你好"})
            assert await wechat.raw_post({"openid": APPLICANT}, plain) == 403
            timestamp, nonce = "1700000000", "99"
            assert await wechat.raw_post(
                {"signature": signature(wechat.token, timestamp, nonce), "timestamp": timestamp,
                 "nonce": nonce, "openid": APPLICANT}, plain) == 403  # 安全模式: plain refused
            other = WeChatPlatform(wechat.bot_port, token="another-token")
            sealed = other.crypto.encrypt_message(plain, nonce, timestamp)
            assert await wechat.raw_post(
                {"signature": signature(wechat.token, timestamp, nonce), "timestamp": timestamp,
                 "nonce": nonce, "openid": APPLICANT, "encrypt_type": "aes",
                 "msg_signature": signature("another-token", timestamp, nonce, "x")},
                sealed) == 403
            assert await wechat.quiet(1.5) == []  # nobody was answered

            # the same message, signed right, is answered: the refusals were the forgeries'
            assert await wechat.text(APPLICANT, "你好") == 200
            await wechat.replies_until("【统一社会信用代码】")
            # WeChat retries a message it thinks unanswered: one answer all the same
            retried = {"MsgType": "text", "Content": "帮助", "MsgId": "7000000000000000001"}
            assert await wechat.post(APPLICANT, retried) == 200
            assert await wechat.post(APPLICANT, retried) == 200
            assert len(await wechat.quiet(1.5)) == 1
            # what the bot cannot read is said; a new follower is greeted, other events left
            assert await wechat.post(APPLICANT, {"MsgType": "voice", "MediaId": "v-1",
                                                 "Format": "amr"}) == 200
            [said] = await wechat.replies_until("只能处理文字和图片")
            assert said.to == APPLICANT
            assert await wechat.post(APPLICANT, {"MsgType": "event", "Event": "subscribe"}) == 200
            [said] = await wechat.replies_until("欢迎关注CA数字证书服务中心")
            assert "发送任意消息开始" in said.text
            assert await wechat.post(APPLICANT, {"MsgType": "event", "Event": "VIEW",
                                                 "EventKey": "https://example.invalid/"}) == 200
            assert await wechat.quiet(1) == []
            async with aiohttp.ClientSession() as http, http.get(
                    f"http://127.0.0.1:{wechat.bot_port}/healthz") as response:
                health = await response.json()
            assert health["chat"]["wechat"] == {"connected": True, "bots": 1}
        finally:
            await bot.stop()
    with sqlite3.connect(tmp_path / "live-data" / "cadesk.db") as db:
        assert db.execute("SELECT count(*) FROM orders").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM handlers").fetchone() == (0,)
    log = (tmp_path / "bot.log").read_text(errors="replace")
    assert log.count("WeChat callback refused") == 4
