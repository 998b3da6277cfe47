"""Pairing a key agent for real: the chat gives a one-time code, ``cadesk-agent pair`` uses it
against the running bot, the bot key is pinned, technicians see and revoke the agent."""

import asyncio
import json
import random
import sys
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import update

from bot.key_agent.config import PairedState
from bot.key_agent.protocol import AgentKeys
from bot.samples import fake_uscc
from bot.services.agents.registry import AgentRefused
from bot.services.messages import Account, Incoming
from storage.models import PairingCode, utcnow
from tests.support.applicant import bind_verified
from tests.support.helpers import PENDING_BINDING, MakeRuntime, verify_in_database
from tests.support.onebot_peer import TECHNICIAN, TOKEN, USER, OneBotPeer, make_instance, text

ROOT = Path(__file__).resolve().parents[2]


async def run_agent(*args: str, cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.key_agent.cli", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode()


async def install_as_the_chat_says(reply: str, port: int, tmp_path: Path) -> None:
    """The chat names the guide and the package; both are served, and the package installs
    into a fresh Python environment whose ``cadesk-agent --help`` speaks Chinese."""
    guide = f"http://127.0.0.1:{port}/agent/"
    assert f"图文说明：{guide}" in reply
    [install] = [line for line in reply.splitlines() if "pip install" in line]
    package_url = install.split()[-1]
    assert package_url.startswith(f"http://127.0.0.1:{port}/agent/download/cadesk_agent-")
    async with aiohttp.ClientSession() as http:
        async with http.get(guide) as response:
            assert response.status == 200
            page = await response.text()
        async with http.get(package_url) as response:
            assert response.status == 200
            wheel = tmp_path / package_url.rsplit("/", 1)[1]
            wheel.write_bytes(await response.read())
        async with http.get(f"http://127.0.0.1:{port}/agent/download/other.whl") as response:
            assert response.status == 404
    assert "请输入新密码" in page
    assert "请再次输入新密码" in page
    assert package_url in page
    venv = tmp_path / "clerk-python"
    for command in ([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                    [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                     "install", "--no-deps", "--no-index", "--disable-pip-version-check",
                     "-q", str(wheel)]):
        process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.STDOUT)
        output, _ = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, output.decode()
    process = await asyncio.create_subprocess_exec(
        str(venv / "bin" / "cadesk-agent"), "--help", stdout=asyncio.subprocess.PIPE,
        cwd=tmp_path)  # not the checkout: the installed files only
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    assert output.decode().startswith("用法：cadesk-agent")
    assert "密钥代理" in output.decode()


async def test_pairing_an_agent_through_the_running_bot(tmp_path: Path) -> None:
    bot, port = make_instance(tmp_path, f"""
[staff]
technicians = ["qq:{TECHNICIAN}"]
[agents]
enabled = true
""")
    uscc = fake_uscc(random.Random(21))
    agent_dir = tmp_path / "agent-pc"
    agent_dir.mkdir()
    await bot.start()
    peer = OneBotPeer(port, TOKEN)
    try:
        await peer.connect()
        for answer, until in [("你好", "【统一社会信用代码】"), (uscc, "【单位名称】"),
                              ("临沂代理测试有限公司", "【注册协议】"), ("同意", "【申报人】"),
                              *PENDING_BINDING]:
            await peer.send_private(USER, text(answer))
            await peer.replies_until(until)
        verify_in_database(tmp_path / "live-data" / "cadesk.db", USER)
        await peer.send_private(USER, text("绑定密钥代理"))
        [(_, reply)] = await peer.replies_until("cadesk-agent pair")
        code = reply.split("--code ")[1].split()[0]
        assert f"--server http://127.0.0.1:{port}" in reply
        await install_as_the_chat_says(reply, port, tmp_path)

        status, output = await run_agent("pair", "--server", f"http://127.0.0.1:{port}",
                                         "--code", code, cwd=agent_dir)
        assert status == 0, output
        assert f"单位 {uscc}" in output
        state = PairedState.load(agent_dir / "agent-state.json")
        assert state.company == uscc
        assert (agent_dir / "agent-state.json").stat().st_mode & 0o077 == 0
        bot_key = (tmp_path / "live-data" / "bot-signing-key.raw")
        assert bot_key.stat().st_mode & 0o077 == 0

        again, output = await run_agent("pair", "--server", f"http://127.0.0.1:{port}",
                                        "--code", code, cwd=tmp_path)
        assert again != 0
        assert "绑定码无效、已使用或已过期" in output  # the first wrong try from 127.0.0.1
        url = f"http://127.0.0.1:{port}/agent/pair"
        async with aiohttp.ClientSession() as http:
            for n in range(5):
                keys = AgentKeys.generate().public()
                async with http.post(url, json={"code": f"WRONG00{n}", **keys}) as response:
                    answer = await response.json()
                if n < 4:  # the 2nd to 5th wrong tries: refused, not yet limited
                    assert (response.status, answer["code"]) == (403, "bad_code")
            assert (response.status, answer["code"]) == (429, "too_many_attempts")
            assert "输错绑定码的次数过多" in answer["message"]

        await peer.send_private(TECHNICIAN, text("代理"))
        listing = (await peer.replies_until("吊销代理"))[-1][1]  # after the staff's notices
        assert f"{state.agent_id}. 临沂代理测试有限公司 有效" in listing
        await peer.send_private(TECHNICIAN, text(f"吊销代理 {state.agent_id}"))
        await peer.replies_until("已吊销")
        await peer.send_private(USER, text(f"吊销代理 {state.agent_id}"))  # not a technician
        await peer.replies_until("没有权限")
    finally:
        await peer.close()
        await bot.stop()
    assert json.loads((agent_dir / "agent-state.json").read_text())["bot_public"]


async def test_wrong_codes_are_limited_per_address(make_runtime: MakeRuntime) -> None:
    """5 wrong codes per address in 10 minutes; a success does not count; other addresses and,
    after the window, the same one may try again."""
    runtime = await make_runtime("[agents]\nenabled = true\n")
    registry = runtime.agents
    now = [1000.0]
    registry.wrong_codes.clock = lambda: now[0]

    async def pair(code: str, address: str) -> str:
        keys = AgentKeys.generate().public()
        try:
            await registry.pair(code, keys["identity"], keys["sealing"], address)
        except AgentRefused as refusal:
            return refusal.code
        return "paired"

    for _ in range(4):
        assert await pair("WRONGONE", "203.0.113.9") == "bad_code"
    good, _ = await registry.new_code(None, "qq:900001")
    assert await pair(good, "203.0.113.9") == "paired"  # a success is not a wrong try
    assert await pair("WRONGONE", "203.0.113.9") == "bad_code"  # the 5th wrong one
    another, _ = await registry.new_code(None, "qq:900001")
    assert await pair(another, "203.0.113.9") == "too_many_attempts"  # even a good code
    assert await pair("WRONGONE", "198.51.100.7") == "bad_code"  # another address
    now[0] += 601
    assert await pair(another, "203.0.113.9") == "paired"  # the code was not used up
    assert len(await registry.of_company()) == 2


async def test_codes_expire_and_are_single_use(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime("[agents]\nenabled = true\n")
    account = Account("qq", "8")
    await bind_verified(runtime, account, fake_uscc(), "临沂过期测试有限公司")
    [reply] = await runtime.dialogue.handle(account, Incoming(text="绑定密钥代理"))
    code = reply.split("--code ")[1].split()[0]
    async with runtime.db.transaction() as session:
        await session.execute(update(PairingCode).values(
            expires_at=utcnow() - timedelta(minutes=1)))
    keys = AgentKeys.generate().public()
    with pytest.raises(AgentRefused, match="已过期"):
        await runtime.agents.pair(code, keys["identity"], keys["sealing"])
    assert await runtime.agents.of_company() == []
