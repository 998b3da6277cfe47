"""End to end: an unlock approved in the chat resets a real PKCS#11 token (SoftHSM2) through a
separately started agent process, once the technicians confirmed the UKEY it read is the
company's; OpenSC checks the token. The bot restarts and the agent comes back by itself; a
revoked agent is cut off and refused. An agent that reads another company's UKEY gets no reset."""

import asyncio
import contextlib
import json
import os
import random
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from bot.samples import fake_id_number, fake_uscc, sample_scan
from bot.services.agents.so_pins import so_pin_for
from tests.support.agent_process import start_agent
from tests.support.helpers import PENDING_BINDING, ScanServer, verify_in_database
from tests.support.onebot_peer import (
    TECHNICIAN,
    TOKEN,
    USER,
    OneBotPeer,
    make_instance,
    picture,
    talker,
    text,
)
from tests.support.softhsm import USER_PIN, new_token, softhsm

NEW_PIN = "24681357"


@contextmanager
def agent_world(tmp_path: Path):
    """A SoftHSM token issued as the CA would (SO PIN derived from the master), a bot with
    agents enabled, and a directory standing for the applicant's PC."""
    master = os.urandom(32)
    (tmp_path / "so-master.key").write_bytes(master)
    agent_dir = tmp_path / "applicant-pc"
    agent_dir.mkdir()
    with softhsm() as softhsm_conf:
        token = new_token("company-ukey", so_pin="00000000")
        token.set_so_pin("00000000", so_pin_for(master, token.serial))
        bot, port = make_instance(tmp_path, f"""
[staff]
technicians = ["qq:{TECHNICIAN}"]
[agents]
enabled = true
so_master_file = "so-master.key"
""")
        yield master, token, bot, port, softhsm_conf, agent_dir


async def test_an_unlock_approved_in_the_chat_resets_the_ukey(
        tmp_path: Path, scan_server: ScanServer) -> None:
    rng = random.Random(31)
    uscc = fake_uscc(rng)
    urls = [scan_server.add(f"agent-{n}.jpg", sample_scan(f"agent {n}")) for n in range(3)]
    with agent_world(tmp_path) as (master, token, bot, port, softhsm_conf, agent_dir):
        await bot.start()
        peer = OneBotPeer(port, TOKEN)
        agent: asyncio.subprocess.Process | None = None
        try:
            await peer.connect()

            say = talker(peer)
            number, code = await file_unlock(say, uscc, urls, rng,
                                             tmp_path / "live-data" / "cadesk.db")
            agent = await start_agent(agent_dir, port, code, softhsm_conf,
                                      {"CADESK_AGENT_NEW_PIN": NEW_PIN})
            await say(TECHNICIAN, text(f"通过 {number}"), "密钥代理")
            # the UKEY was issued before cadesk: on no record, so the unlock waits for a look
            asked = dict(await peer.replies_until(f"确认解锁 {number}", within=60))
            assert f"UKEY 卡号 {token.serial}" in asked[f"user:{TECHNICIAN}"]
            assert token.login_works(USER_PIN)  # nothing reset yet
            await say(TECHNICIAN, text(f"确认解锁 {number}"), "已确认 UKEY")
            unlocked = await say(TECHNICIAN, text(f"解锁状态 {number}"), "远程解锁")
            if "重置密码：完成" not in unlocked:
                await peer.replies_until("UKEY 密码已重置", within=60)
            assert not token.login_works(USER_PIN)  # the forgotten PIN is gone
            assert token.login_works(NEW_PIN)  # the one typed at the applicant's PC works
            status = await say(USER, text(f"解锁状态 {number}"), "远程解锁")
            assert "读取 UKEY：完成" in status
            assert "重置密码：完成" in status

            # the bot restarts; the agent reconnects by itself
            await peer.close()
            await bot.stop()
            await bot.start()
            peer = OneBotPeer(port, TOKEN)
            await peer.connect()
            say = talker(peer)
            async with asyncio.timeout(30):
                while (tmp_path / "bot.log").read_text().count("agent #1 online") < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)

            # revoked: cut off at once, refused on return, and the agent stops
            await say(TECHNICIAN, text("吊销代理 1"), "已吊销")
            async with asyncio.timeout(60):
                assert await agent.wait() == 3
            agent = None
            [(to, refusal)] = await peer.replies_until("拒绝了密钥代理")  # told to technicians
            assert to == f"user:{TECHNICIAN}"
            assert "revoked" in refusal
        finally:
            if agent is not None:
                agent.terminate()
                await agent.wait()
            await peer.close()
            await bot.stop()
    log = (tmp_path / "bot.log").read_text(errors="replace")
    assert "[ERROR]" not in log
    assert so_pin_for(master, token.serial) not in log  # the SO PIN is never logged
    assert so_pin_for(master, token.serial) not in (agent_dir / "agent.log").read_text()
    with sqlite3.connect(tmp_path / "live-data" / "cadesk.db") as db:
        stored = " ".join(str(row) for row in db.execute("SELECT signed FROM token_jobs"))
        events = [e for (e,) in db.execute("SELECT event FROM order_events ORDER BY id")]
    assert so_pin_for(master, token.serial) not in stored  # sealed, never in plaintext
    assert events[-5:] == ["approve", "token_job", "token_confirmed", "token_job", "complete"]


def reset_waiting(journal: Path) -> bool:
    if not journal.exists():
        return False
    entries = list(json.loads(journal.read_text()).values())
    return len(entries) == 2 and [e["result"] is None for e in entries].count(True) == 1


async def file_unlock(say, uscc: str, urls: list[str], rng: random.Random,
                      database: Path) -> tuple[str, str]:
    """Bind (verified), get a pairing code, file an unlock order by chat; returns (order number,
    code)."""
    for answer, until in [("你好", "【统一社会信用代码】"), (uscc, "【单位名称】"),
                          ("临沂解锁测试有限公司", "【注册协议】"), ("同意", "【申报人】"),
                          *PENDING_BINDING]:
        await say(USER, text(answer), until)
    verify_in_database(database, USER)
    reply = await say(USER, text("绑定密钥代理"), "cadesk-agent pair")
    code = reply.split("--code ")[1].split()[0]
    return await unlock_form(say, urls, rng), code


async def unlock_form(say, urls: list[str], rng: random.Random) -> str:
    """The bound applicant files an unlock order by chat; returns its number."""
    form = [("解锁", "【单位地址】"), ("临沂市兰山区金雀山路 1 号", "【法定代表人姓名】"),
            ("王五", "【单位电话】"), ("0539-8123456", "【经办人姓名】"),
            ("张三", "【经办人手机号】"), ("13812345678", "【经办人身份证号】"),
            (fake_id_number(rng), "【附件一")]
    for answer, until in form:
        await say(USER, text(answer), until)
    for url, until in zip(urls, ["【附件二", "【附件三", "确认提交"], strict=True):
        await say(USER, picture(url), until)
    done = await say(USER, text("确认提交"), "订单号：")
    return done.split("订单号：")[1].split()[0]


async def test_an_agent_killed_mid_job_neither_loses_nor_reruns_it(
        tmp_path: Path, scan_server: ScanServer) -> None:
    rng = random.Random(32)
    urls = [scan_server.add(f"kill-{n}.jpg", sample_scan(f"kill {n}")) for n in range(3)]
    with agent_world(tmp_path) as (_, token, bot, port, softhsm_conf, agent_dir):
        pin_fifo = agent_dir / "new-pin"
        os.mkfifo(pin_fifo)  # reading it blocks: the person has not typed the new PIN yet
        await bot.start()
        peer = OneBotPeer(port, TOKEN)
        agent = None
        try:
            await peer.connect()
            say = talker(peer)
            number, code = await file_unlock(say, fake_uscc(rng), urls, rng,
                                             tmp_path / "live-data" / "cadesk.db")
            await say(TECHNICIAN, text(f"登记UKEY {token.serial} 临沂解锁测试有限公司"), "已登记")
            env = {"CADESK_AGENT_PIN_FILE": str(pin_fifo)}
            agent = await start_agent(agent_dir, port, code, softhsm_conf, env)
            await say(TECHNICIAN, text(f"通过 {number}"), "密钥代理")
            journal = agent_dir / "journal.json"
            # the chat keeps answering the bot meanwhile (e.g. the agent paired, told to USER)
            chat = asyncio.create_task(peer.replies_until("never said", within=60))
            try:
                async with asyncio.timeout(30):  # token_info done, reset journaled, PIN awaited
                    while not reset_waiting(journal):  # noqa: ASYNC110 - another process writes
                        await asyncio.sleep(0.1)
            finally:
                chat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await chat
            agent.kill()  # kill -9 in the middle of the job
            await agent.wait()
            agent = await start_agent(agent_dir, port, None, softhsm_conf, env)
            told = dict(await peer.replies_until("远程解锁失败", within=30))
            assert "远程解锁没有成功" in told[f"user:{USER}"]  # the applicant, with next step
            assert "interrupted" in told[f"user:{TECHNICIAN}"]
            status = await say(USER, text(f"解锁状态 {number}"), "远程解锁")
            assert "重置密码：失败" in status
        finally:
            if agent is not None:
                agent.kill()
                await agent.wait()
            await peer.close()
            await bot.stop()
        assert token.login_works(USER_PIN)  # not run twice, not half-run: untouched
    with sqlite3.connect(tmp_path / "live-data" / "cadesk.db") as db:
        jobs = db.execute("SELECT kind, status FROM token_jobs ORDER BY created_at").fetchall()
    assert jobs == [("token_info", "done"), ("reset_pin", "failed")]


async def test_an_agent_reading_another_companys_ukey_gets_no_reset(
        tmp_path: Path, scan_server: ScanServer) -> None:
    """Company A's agent, with company B's UKEY plugged in, reports B's serial: no reset_pin
    is sent, the token keeps its PIN (OpenSC), the technicians and the applicant are told, and
    the order's history says why."""
    rng = random.Random(33)
    urls = [scan_server.add(f"other-{n}.jpg", sample_scan(f"other {n}")) for n in range(3)]
    with agent_world(tmp_path) as (master, token, bot, port, softhsm_conf, agent_dir):
        await bot.start()
        peer = OneBotPeer(port, TOKEN)
        agent = None
        try:
            await peer.connect()
            say = talker(peer)
            other = USER + 1  # company B's handler binds B; the UKEY is recorded as B's
            binding = [("你好", "【统一社会信用代码】"), (fake_uscc(rng), "【单位名称】"),
                       ("临沂乙方测试有限公司", "【注册协议】"), ("同意", "【申报人】"),
                       *PENDING_BINDING]
            for answer, until in binding:
                await say(other, text(answer), until)
            await say(TECHNICIAN, text(f"登记UKEY {token.serial} 临沂乙方测试有限公司"), "已登记")
            number, code = await file_unlock(say, fake_uscc(rng), urls, rng,  # company A
                                             tmp_path / "live-data" / "cadesk.db")
            agent = await start_agent(agent_dir, port, code, softhsm_conf,
                                      {"CADESK_AGENT_NEW_PIN": NEW_PIN})
            await say(TECHNICIAN, text(f"通过 {number}"), "密钥代理")
            told = dict(await peer.replies_until("远程解锁已停止", within=60))  # applicant first
            assert "登记在 临沂乙方测试有限公司" in told[f"user:{TECHNICIAN}"]
            assert "登记在其他单位名下" in told[f"user:{USER}"]
            assert "请联系CA数字证书服务中心" in told[f"user:{USER}"]  # [centre] name
            refused = await say(TECHNICIAN, text(f"确认解锁 {number}"), "已登记在")
            assert "临沂乙方测试有限公司" in refused
            history = await say(TECHNICIAN, text(f"历史 {number}"), "办理记录")
            assert "UKEY 不属于本单位，任务停止" in history
        finally:
            if agent is not None:
                agent.terminate()
                await agent.wait()
            await peer.close()
            await bot.stop()
        assert token.login_works(USER_PIN)  # untouched: the old PIN still logs in
        assert not token.login_works(NEW_PIN)
    with sqlite3.connect(tmp_path / "live-data" / "cadesk.db") as db:
        kinds = [k for (k,) in db.execute("SELECT kind FROM token_jobs")]
    assert kinds == ["token_info"]  # no reset_pin was ever queued
    assert so_pin_for(master, token.serial) not in (agent_dir / "agent.log").read_text()
