"""Chat over the real OneBot v11 reverse WebSocket: cadesk (``python -m bot``) with 1,000
applicants persisted in the middle of an application, 1 / 100 / 1,000 of them talking at once,
against a bare nonebot2 echo bot (bench/echo_bot.py) started the same way, scenario by scenario."""

import asyncio
import itertools
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.report import BenchmarkFailed, Figure, Target, expect, latencies
from bot.domain.flow import FormFlow
from bot.domain.forms import CERTIFICATE
from bot.samples import fake_uscc
from storage.db import Database, sqlite_url
from storage.repositories import Companies, Conversations, Handlers
from tests.support.helpers import SELF_ID, free_port
from tests.support.onebot_peer import BotProcess

TOKEN = "bench-access-token"
FIRST_USER = 700_001
SEND_ACTIONS = {"send_msg", "send_private_msg"}
BUSY = "系统繁忙"  # cadesk's answer when the database stayed busy: nothing kept, send it again
RESEND_AFTER = 1.0  # seconds an applicant waits before sending a refused message again
MAX_SENDS = 30
Script = Callable[[int], tuple[str, str]]  # message number → (text sent, fragment awaited)


def in_application(i: int) -> tuple[str, str]:
    """Answer 经办人姓名, then go back to it: every message moves the form and is saved."""
    return ("张三", "【经办人身份证号】") if i % 2 == 0 else ("上一步", "【经办人姓名】")


def echoed(i: int) -> tuple[str, str]:
    return f"你好 {i}", f"你好 {i}"


async def seed_applicants(database: Path, count: int) -> None:
    """``count`` bound applicants, each with a certificate application saved at 经办人姓名."""
    db = Database(sqlite_url(database))
    await db.migrate()
    rng = random.Random(3)
    try:
        async with db.transaction() as session:
            for n in range(count):
                uscc = fake_uscc(rng)
                name = f"临沂压测{n:04d}建设有限公司"
                company = await Companies(session).add(uscc, name, None)
                await Handlers(session).bind("qq", str(FIRST_USER + n), company)
                flow, _ = FormFlow.start(CERTIFICATE, CERTIFICATE.presets(name, uscc,
                                                                          apply_kind="新办"))
                for answer in ("1", "临沂", "1"):  # 证书年限, 项目所属地区, 办理Ukey数量
                    flow.handle_text(answer)
                await Conversations(session).save("qq", str(FIRST_USER + n),
                                                  flow.state.to_json())
    finally:
        await db.close()


class EchoProcess(BotProcess):
    """``python -m bench.echo_bot``, started and awaited exactly like the bot."""

    startup_seconds = 60

    def __init__(self, root: Path, port: int) -> None:
        super().__init__(root / "echo.toml", port)
        self.log = root / "echo.log"

    def command(self) -> list[str]:
        return ["-m", "bench.echo_bot", "--port", str(self.port), "--token", TOKEN]


class Peer:
    """The OneBot implementation's side (NapCat's role): one connection for every user; each
    reply is matched to the user it goes to, and the send action is answered at once."""

    def __init__(self, port: int) -> None:
        self.url = f"ws://127.0.0.1:{port}/onebot/v11/ws"
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[str, asyncio.Future[tuple[float, bool]]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.url, max_msg_size=0, headers={
            "X-Self-ID": str(SELF_ID), "X-Client-Role": "Universal",
            "Authorization": f"Bearer {TOKEN}"})
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def _read(self) -> None:
        assert self._ws is not None
        async for frame in self._ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                break
            action = json.loads(frame.data)
            if "action" not in action:
                continue
            await self._ws.send_str(json.dumps({
                "status": "ok", "retcode": 0, "data": {"message_id": next(self._ids)},
                "echo": action.get("echo")}))
            if action["action"] not in SEND_ACTIONS:
                continue
            params = action["params"]
            message = params["message"]
            if isinstance(message, str):
                text = message
            else:
                text = "".join(s["data"].get("text", "") for s in message)
            waiting = self._waiting.get(int(params.get("user_id") or 0))
            if waiting and not waiting[1].done() and (waiting[0] in text or BUSY in text):
                waiting[1].set_result((time.perf_counter(), waiting[0] in text))
        for _, future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the bot closed the WebSocket"))

    async def ask(self, user: int, text: str, expect: str) -> tuple[float, bool]:
        """Send one private message; when the reply came back, and whether it holds ``expect``
        (else the bot said it was too busy to keep it)."""
        assert self._ws is not None
        future: asyncio.Future[tuple[float, bool]] = (
            asyncio.get_running_loop().create_future())
        self._waiting[user] = (expect, future)
        event = {"time": int(time.time()), "self_id": SELF_ID, "post_type": "message",
                 "message_type": "private", "sub_type": "friend",
                 "message_id": next(self._ids), "user_id": user,
                 "message": [{"type": "text", "data": {"text": text}}], "raw_message": text,
                 "font": 0, "sender": {"user_id": user, "nickname": f"user{user}"}}
        await self._ws.send_str(json.dumps(event))
        async with asyncio.timeout(180):
            return await future


@dataclass
class Talk:
    wall: float  # seconds, first message sent to last reply received
    latencies: list[float]  # per message, first send to the awaited reply (resends included)
    busy: int  # replies saying 系统繁忙 (each followed by a resend)


async def talk(peer: Peer, users: int, per_user: int, script: Script) -> Talk:
    """``users`` applicants at once, each sending ``per_user`` messages, one after the other's
    reply; a message the bot was too busy to keep is sent again, as the bot asks."""
    busy = 0

    async def message(user: int, text: str, expect: str) -> float:
        nonlocal busy
        start = time.perf_counter()
        for _ in range(MAX_SENDS):
            arrived, answered = await peer.ask(user, text, expect)
            if answered:
                return arrived - start
            busy += 1
            await asyncio.sleep(RESEND_AFTER)
        raise BenchmarkFailed(f"{user}: {text!r} refused {MAX_SENDS} times")

    async def one(user: int) -> list[float]:
        return [await message(user, *script(i)) for i in range(per_user)]

    start = time.perf_counter()
    latencies = await asyncio.gather(*(one(FIRST_USER + n) for n in range(users)))
    return Talk(time.perf_counter() - start, [x for each in latencies for x in each], busy)


# issue 15's goals for chat, each against the echo bot in the same scenario
THROUGHPUT = Target("share", 0.6)  # at 100 applicants and more
ALONE_P50 = Target("times", 2)  # one applicant
CROWD_P99 = Target("times", 3)  # the largest crowd (1,000 applicants)
CROWD_BUSY = Target("none")  # the largest crowd: nobody told 系统繁忙


def _figures(users: int, per_user: int, crowd: bool, ours: Talk,
             echo: Talk) -> list[Figure]:
    """``crowd``: the largest scenario of the run, which the deadline-day targets apply to."""
    who = f"{'1 applicant' if users == 1 else f'{users:,} applicants'} × {per_user:,}"
    return [
        Figure("chat", f"{who}: messages/s", "msg/s", len(ours.latencies) / ours.wall,
               len(echo.latencies) / echo.wall, higher_is_better=True,
               target=THROUGHPUT if users >= 100 else None),
        *latencies("chat", f"{who}: reply", ours.latencies, echo.latencies,
                   p50=ALONE_P50 if users == 1 else None, p99=CROWD_P99 if crowd else None),
        Figure("chat", f"{who}: replies 「{BUSY}」 (message resent)", "replies", ours.busy,
               echo.busy, count=True, target=CROWD_BUSY if crowd else None),
    ]


async def measure(root: Path, applicants: int,
                  plan: list[tuple[int, int]]) -> tuple[list[Figure], str]:
    """``plan``: (applicants talking at once, messages each), in order."""
    port, echo_port = free_port(), free_port()
    data = root / "data"
    data.mkdir()
    await seed_applicants(data / "cadesk.db", applicants)
    config = root / "bot.toml"
    config.write_text(f"""
[bot]
adapters = ["onebot"]
data_dir = "data"
log_level = "WARNING"
[server]
port = {port}
[onebot]
access_token = "{TOKEN}"
""", encoding="utf-8")
    bot, echo = BotProcess(config, port), EchoProcess(root, echo_port)
    await bot.start()
    await echo.start()
    ours, theirs = Peer(port), Peer(echo_port)
    figures: list[Figure] = []
    try:
        await ours.connect()
        await theirs.connect()
        await talk(ours, 1, 10, in_application)  # warm-up, not counted
        await talk(theirs, 1, 10, echoed)
        crowd = max(users for users, _ in plan)
        for users, per_user in plan:
            measured = await talk(ours, users, per_user, in_application)
            baseline = await talk(theirs, users, per_user, echoed)
            figures += _figures(users, per_user, users == crowd, measured, baseline)
    except Exception:
        tail = bot.log.read_text(errors="replace")[-4000:]
        sys.stderr.write(f"--- the end of cadesk's log ---\n{tail}\n")
        raise
    finally:
        await ours.close()
        await theirs.close()
        await bot.stop()
        await echo.stop()
    with sqlite3.connect(data / "cadesk.db") as db:
        saved = db.execute("SELECT count(*) FROM conversations").fetchone()[0]
    expect(saved == applicants, f"{saved} applications left in the database, not {applicants}")
    log = bot.log.read_text(errors="replace")
    expect("[ERROR]" not in log, f"the bot logged an error: {log[-3000:]}")
    sizes = ", ".join(f"{u:,} × {m}" for u, m in plan)
    note = (f"{applicants:,} applicants bound to their companies, each with a certificate "
            "application saved in SQLite at 【经办人姓名】 (the bot's own tables, written "
            "before it starts). The real bot process (`python -m bot`, log level WARNING) and "
            "the echo bot (`python -m bench.echo_bot`: nonebot2, `~fastapi`, OneBot v11, one "
            "plugin that sends the text back) run side by side; one OneBot connection each, "
            "as NapCat would hold. Scenarios, run for cadesk then the echo bot before the next "
            f"(applicants at once × messages each): {sizes}. Each applicant sends its next "
            "message when the reply to the last one has come; cadesk's messages alternate "
            "`张三` (→ 【经办人身份证号】) and `上一步` (→ 【经办人姓名】), so every one "
            "moves the form and is saved. Latency: from sending the event to receiving the "
            "send action that carries the awaited reply. When cadesk answers 「系统繁忙…请稍等"
            "后重新发送」 (its database stayed busy: nothing was kept), the applicant sends the "
            f"same message again after {RESEND_AFTER:g} s; that message's latency runs from its "
            "first sending, and messages/s counts answered messages only; the 「系统繁忙」 row "
            "counts those resends. p99: the nearest-rank 99th percentile of every message's "
            "latency in the scenario (in the quick run's smaller ones, close to the slowest).")
    return figures, note


def run(quick: bool) -> tuple[list[Figure], str]:
    with tempfile.TemporaryDirectory(prefix="cadesk-bench-chat-") as root:
        if quick:
            return asyncio.run(measure(Path(root), 100, [(1, 100), (10, 4), (100, 3)]))
        return asyncio.run(measure(Path(root), 1_000, [(1, 1_000), (100, 20), (1_000, 10)]))
