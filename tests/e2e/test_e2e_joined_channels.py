"""End to end, one person on two channels: the real bot process serving QQ (a OneBot peer) and
a WeChat official account (the stand-in on 127.0.0.1) at once. A handler who applied for the
binding on QQ joins WeChat with a one-time code, follows the request up there, and is verified
on both by one approval; the QQ account is told of the join."""

import random
import re
import sqlite3
from pathlib import Path

from bot.samples import fake_id_number, fake_uscc, sample_scan
from tests.support.helpers import ScanServer
from tests.support.onebot_peer import (
    TECHNICIAN,
    TOKEN,
    USER,
    BotProcess,
    OneBotPeer,
    make_instance,
    picture,
)
from tests.support.onebot_peer import text as qq_text
from tests.support.wechat_platform import APPLICANT, WeChatPlatform

COMPANY = "临沂两个渠道测试有限公司"


def two_channel_instance(tmp_path: Path, wechat: WeChatPlatform) -> BotProcess:
    bot, port = make_instance(tmp_path, wechat.settings() + f"""
[staff]
technicians = ["qq:{TECHNICIAN}"]
""", adapters=("onebot", "wechat"))
    wechat.bot_port = port
    return bot


async def test_a_binding_applied_for_on_qq_is_followed_up_on_wechat(
        tmp_path: Path, scan_server: ScanServer) -> None:
    rng = random.Random(1616)
    letter, licence = (scan_server.add(f"join-{n}.jpg", sample_scan(f"join e2e {n}"))
                       for n in (1, 2))
    async with WeChatPlatform() as wechat:
        bot = two_channel_instance(tmp_path, wechat)
        await bot.start()
        peer = OneBotPeer(bot.port, TOKEN)
        try:
            await peer.connect()

            async def on_qq(segments: list[dict], until: str, who: int = USER) -> str:
                await peer.send_private(who, segments)
                return "\n".join(t for _, t in await peer.replies_until(until, within=40))

            async def on_wechat(message: str, *until: str) -> str:
                assert await wechat.text(APPLICANT, message) == 200
                return "\n".join(s.reads() for s in await wechat.replies_until(*until))

            # on QQ: bound as the company's first account, the documents sent: pending
            for answer, until in (
                    ("你好", "【统一社会信用代码】"), (fake_uscc(rng), "【单位名称】"),
                    (COMPANY, "【注册协议】"), ("同意", "【申报人】"), ("王小明", "【联系电话】"),
                    ("13812345678", "【用户类型】"), ("施工单位", "【经办人身份证号】"),
                    (fake_id_number(rng), "【附件一")):
                await on_qq(qq_text(answer), until)
            await on_qq(picture(letter), "【附件二")
            await on_qq(picture(licence), "确认提交")
            filed = await on_qq(qq_text("确认提交"), "绑定申请已提交")
            request = filed.split("编号 ", 1)[1].split("。", 1)[0]
            given = await on_qq(qq_text("绑定其他渠道"), "向机器人发送：绑定 ")
            found = re.search(r"向机器人发送：绑定 (\S+)", given)
            assert found is not None
            code = found.group(1)

            # on WeChat: a stranger's guess joins nothing; the code does, and QQ is told
            assert "本账号没有绑定" in await on_wechat("绑定 ABCD2345", "本账号没有绑定")
            assert await wechat.text(APPLICANT, f"绑定 {code}") == 200
            # (the QQ peer answers the bot's send: the notice goes out before the reply)
            [(to, notice)] = await peer.replies_until("【渠道绑定】", within=40)
            joined = "\n".join(s.reads() for s in await wechat.replies_until("绑定成功"))
            assert f"代表【{COMPANY}】（待核验）" in joined
            assert to == f"user:{USER}"
            assert f"账号 wechat:{APPLICANT} 用您申请的渠道绑定码绑定为您本人" in notice
            progress = await on_wechat("认证进度", request)
            assert "待核验" in progress
            assert request in await on_wechat("我的订单", request)

            # one approval, of the request filed on QQ, verifies the person on both channels
            await on_qq(qq_text(f"通过 {request}"), "已通过绑定申请", who=TECHNICIAN)
            menu = await on_wechat("帮助", "请回复：")
            assert "【待核验】" not in menu
            assert "绑定密钥代理" in menu
        finally:
            await peer.close()
            await bot.stop()

    with sqlite3.connect(tmp_path / "live-data" / "cadesk.db") as db:
        handlers = db.execute("SELECT id, platform, user_id, status FROM handlers").fetchall()
        joins = db.execute("SELECT handler_id, platform, user_id FROM joined_accounts").fetchall()
        codes = db.execute("SELECT code_hash, used_by FROM join_codes").fetchall()
    [(handler_id, platform, user_id, status)] = handlers  # one person, not two
    assert (platform, user_id, status) == ("qq", str(USER), "verified")
    assert joins == [(handler_id, "wechat", APPLICANT)]
    assert [used for _, used in codes] == [f"wechat:{APPLICANT}"]
    assert all(code not in code_hash for code_hash, _ in codes)  # kept hashed only
    log = (tmp_path / "bot.log").read_text(errors="replace")
    assert "[ERROR]" not in log
    assert code not in log
