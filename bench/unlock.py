"""A forgotten UKEY PIN: from the technician's 通过 in the chat to the applicant told the PIN is
reset, through the real bot process, a real key agent process (``cadesk-agent run``) and a
SoftHSM2 token, against a bare python-pkcs11 SO login + C_InitPIN on the same token."""

import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

import pkcs11

from bench.report import Figure, expect, latencies
from bot.samples import fake_uscc, sample_scan
from bot.services.agents.so_pins import so_pin_for
from tests.e2e.test_e2e_key_agent import file_unlock, unlock_form
from tests.support.agent_process import start_agent
from tests.support.helpers import ScanServer, free_port
from tests.support.onebot_peer import TECHNICIAN, TOKEN, BotProcess, OneBotPeer, talker, text
from tests.support.softhsm import MODULE, new_token, softhsm

NEW_PIN = "24681357"
LABEL = "company-ukey"


async def through_agent(root: Path, softhsm_conf: Path, rounds: int) -> list[float]:
    port = free_port()
    master = os.urandom(32)
    (root / "so-master.key").write_bytes(master)
    agent_dir = root / "applicant-pc"
    agent_dir.mkdir()
    (root / "bot.toml").write_text(f"""
[bot]
adapters = ["onebot"]
data_dir = "live-data"
log_level = "WARNING"
[server]
port = {port}
[onebot]
access_token = "{TOKEN}"
[staff]
technicians = ["qq:{TECHNICIAN}"]
[agents]
enabled = true
so_master_file = "so-master.key"
""", encoding="utf-8")
    token = new_token(LABEL, so_pin="00000000")
    token.set_so_pin("00000000", so_pin_for(master, token.serial))
    rng = random.Random(41)
    bot, peer, agent = BotProcess(root / "bot.toml", port), OneBotPeer(port, TOKEN), None
    async with ScanServer() as scans:
        urls = [scans.add(f"unlock-{n}.jpg", sample_scan(f"unlock {n}")) for n in range(3)]
        await bot.start()
        try:
            await peer.connect()
            say = talker(peer)
            first, code = await file_unlock(say, fake_uscc(rng), urls, rng,
                                            root / "live-data" / "cadesk.db")
            # a UKEY issued before cadesk: recorded for the company before its PIN is reset
            await say(TECHNICIAN, text(f"登记UKEY {token.serial} 临沂解锁测试有限公司"), "已登记")
            agent = await start_agent(agent_dir, port, code, softhsm_conf,
                                      {"CADESK_AGENT_NEW_PIN": NEW_PIN})
            numbers = [first] + [await unlock_form(say, urls, rng)
                                 for _ in range(rounds)]  # one more, for the warm-up
            times = []
            for number in numbers:
                start = time.perf_counter()
                await peer.send_private(TECHNICIAN, text(f"通过 {number}"))
                while not any(number in said and "UKEY 密码已重置" in said
                              for _, said in await peer.replies_until("密码已重置", 60)):
                    pass
                times.append(time.perf_counter() - start)
            expect(token.login_works(NEW_PIN), "the new PIN does not open the token")
            return times[1:]  # the first one waited for the agent to come online
        finally:
            if agent is not None:
                agent.terminate()
                await agent.wait()
            await peer.close()
            await bot.stop()


def bare_init_pin(root: Path, rounds: int) -> list[float]:
    """SO login + C_InitPIN with python-pkcs11 on the same token, with the SO PIN at hand."""
    master = (root / "so-master.key").read_bytes()
    token = pkcs11.lib(MODULE).get_token(token_label=LABEL)
    so_pin = so_pin_for(master, token.serial.decode() if isinstance(token.serial, bytes)
                        else token.serial)
    times = []
    for _ in range(rounds + 1):
        start = time.perf_counter()
        with token.open(rw=True, so_pin=so_pin) as session:
            session.init_pin(NEW_PIN)
        times.append(time.perf_counter() - start)
    return times[1:]


def run(quick: bool) -> tuple[list[Figure], str]:
    rounds = 3 if quick else 15
    with tempfile.TemporaryDirectory(prefix="cadesk-bench-unlock-") as root, \
            softhsm() as softhsm_conf:
        ours = asyncio.run(through_agent(Path(root), softhsm_conf, rounds))
        baseline = bare_init_pin(Path(root), rounds)
    figures = latencies("unlock", "approval → new PIN", ours, baseline)
    note = ("The bot process (agents enabled, log level WARNING) and a paired "
            "`cadesk-agent run --unattended` process (new PIN from the environment) on a "
            "SoftHSM2 token whose SO PIN is derived from the bot's master secret, as in "
            "tests/e2e/test_e2e_key_agent.py. One applicant files unlock orders by chat "
            "(not timed); then, one at a time, the time from the technician's `通过 订单号` "
            "on the OneBot WebSocket to the applicant's 「UKEY 密码已重置」: approval, a signed "
            "`token_info` job to the agent and its answer, a `reset_pin` job with the SO PIN "
            "sealed to the agent, C_InitPIN on the token, the result, the order completed, the "
            f"applicant told. p50 and p99 (nearest rank: of {rounds}, the slowest) after one "
            "warm-up. Baseline: python-pkcs11 in one process, the SO PIN already known: open a "
            f"session, SO login, C_InitPIN, close; {rounds} rounds after one warm-up.")
    return figures, note
