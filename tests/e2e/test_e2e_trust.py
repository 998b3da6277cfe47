"""End to end over OneBot: a stranger who knows only a company's public facts (its USCC and its
exact name) binds to it and can do nothing to the company; the real handler, verified by a
technician from the authorisation letter and licence, is told and vouches for a real colleague."""

import asyncio
import contextlib
import os
import random
import subprocess
from pathlib import Path

import aiohttp

from bot.samples import fake_id_number, fake_uscc, sample_scan
from tests.support.helpers import ScanServer
from tests.support.onebot_peer import (
    PKI_CONFIG,
    TECHNICIAN,
    TOKEN,
    USER,
    OneBotPeer,
    make_instance,
    picture,
    text,
)

STRANGER, COLLEAGUE = USER + 7, USER + 8
COMPANY = "临沂信任测试有限公司"


async def test_a_stranger_with_a_companys_uscc_and_name_can_do_nothing_to_it(
        tmp_path: Path, scan_server: ScanServer) -> None:
    rng = random.Random(111)
    uscc = fake_uscc(rng)
    letter, licence = (scan_server.add(f"trust-{n}.jpg", sample_scan(f"trust {n}")) for n in (1, 2))
    (tmp_path / "so-master.key").write_bytes(os.urandom(32))
    bot, port = make_instance(tmp_path, PKI_CONFIG)
    await bot.start()
    peer = OneBotPeer(port, TOKEN)
    try:
        await peer.connect()

        async def say(who: int, segments: list[dict], until: str) -> dict[str, str]:
            await peer.send_private(who, segments)
            told: dict[str, str] = {}
            for to, said in await peer.replies_until(until, within=40):
                told[to] = told.get(to, "") + said + "\n"
            return told

        async def bind(who: int, until: str) -> dict[str, str]:
            for answer, wait in [("你好", "【统一社会信用代码】"), (uscc, "【单位名称】"),
                                 (COMPANY, "【注册协议】"), ("同意", "【申报人】"),
                                 ("王小明", "【联系电话】")]:
                await say(who, text(answer), wait)
            return await say(who, text("13812345678"), until)

        # the first account sends the authorisation letter and the licence; a technician checks
        await bind(USER, "【用户类型】")
        await say(USER, text("施工单位"), "【经办人身份证号】")
        await say(USER, text(fake_id_number(rng)), "【附件一")
        await say(USER, picture(letter), "【附件二")
        await say(USER, picture(licence), "确认提交")
        done = (await say(USER, text("确认提交"), "绑定申请已提交"))[f"user:{USER}"]
        request = done.split("编号 ", 1)[1].split("。", 1)[0]
        told = await say(TECHNICIAN, text(f"通过 {request}"), "已通过绑定申请")
        assert "绑定已核验" in told[f"user:{USER}"]

        # the stranger: bound by a claim, the real handler asked at once
        told = await bind(STRANGER, "申请代表")
        assert f"申请代表【{COMPANY}】办理业务" in told[f"user:{USER}"]
        stranger_request = told[f"user:{USER}"].split("拒绝绑定 ", 1)[1].split("」", 1)[0]
        for word in ("我的证书", "挂失", "解挂", "绑定密钥代理", "续期"):
            reply = (await say(STRANGER, text(word), "尚未核验"))[f"user:{STRANGER}"]
            assert f"暂不能办理「{word}」" in reply
            assert "cadesk-agent pair" not in reply
            assert "【USBKEY卡号】" not in reply
        orders = (await say(STRANGER, text("我的订单"), "订单"))[f"user:{STRANGER}"]
        assert request not in orders  # the company's binding request is not the stranger's
        looked = (await say(STRANGER, text(f"查询 {request}"), request))[f"user:{STRANGER}"]
        assert "没有找到" in looked

        # nothing was held: the CRL the bot serves lists no certificate
        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{port}/pki/crl") as response:
            der = await response.read()
        crl = (await asyncio.to_thread(
            subprocess.run, ["openssl", "crl", "-inform", "DER", "-noout", "-text"], input=der,
            capture_output=True, check=True)).stdout.decode()
        assert "No Revoked Certificates" in crl

        # the real handler turns the stranger away and vouches for a real colleague
        told = await say(USER, text(f"拒绝绑定 {stranger_request} 不认识"), "未获本单位")
        assert "未获本单位已核验的经办人确认" in told[f"user:{STRANGER}"]
        told = await bind(COLLEAGUE, "申请代表")
        colleague_request = told[f"user:{USER}"].split("同意绑定 ", 1)[1].split("」", 1)[0]
        told = await say(USER, text(f"同意绑定 {colleague_request}"), "绑定已核验")
        assert "绑定已核验" in told[f"user:{COLLEAGUE}"]
        reply = (await say(COLLEAGUE, text("我的证书"), "证书"))[f"user:{COLLEAGUE}"]
        assert "尚未核验" not in reply
        reply = (await say(STRANGER, text("我的证书"), "尚未核验"))[f"user:{STRANGER}"]
        assert "暂不能办理" in reply  # still nothing for the stranger
        with contextlib.suppress(TimeoutError):  # the last replies out before the peer leaves
            await peer.replies_until("never said", within=2)
    finally:
        await peer.close()
        await bot.stop()
    assert "[ERROR]" not in (tmp_path / "bot.log").read_text(errors="replace")
