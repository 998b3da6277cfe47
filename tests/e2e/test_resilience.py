"""Resilience: the bot process killed (SIGKILL) at seeded random points of scripted applicant
conversations, and the database locked or unreachable for a few seconds — nothing acknowledged
is lost, every conversation resumes, and the bot recovers by itself."""

import asyncio
import hashlib
import json
import random
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_mobile, fake_uscc, sample_scan
from bot.services.applications.dialogue import DATABASE_BUSY
from bot.services.messages import Account
from storage.models import Conversation, Order
from storage.repositories import Conversations
from tests.support.applicant import apply_until_summary, say
from tests.support.helpers import MakeRuntime, ScanServer
from tests.support.onebot_peer import TOKEN, BotProcess, OneBotPeer, make_instance, picture, text
from tests.support.tcp_proxy import TcpProxy


# --- the database locked or unreachable -----------------------------------------------------
class Outage:
    """Makes the bot's database unusable for a while, the way it happens in production."""

    async def begin(self) -> None:
        raise NotImplementedError

    async def end(self) -> None:
        raise NotImplementedError


class SqliteLock(Outage):
    """Another program (a backup, a DB browser) holding SQLite's write lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.holder: sqlite3.Connection | None = None

    async def begin(self) -> None:
        self.holder = sqlite3.connect(self.path, isolation_level=None)
        self.holder.execute("BEGIN EXCLUSIVE")

    async def end(self) -> None:
        assert self.holder is not None
        self.holder.execute("COMMIT")
        self.holder.close()


class ServerGone(Outage):
    """The PostgreSQL server unreachable: open connections reset, new ones refused."""

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy

    async def begin(self) -> None:
        await self.proxy.cut()

    async def end(self) -> None:
        await self.proxy.open()


@pytest.fixture
async def troubled(make_runtime: MakeRuntime, database_url: str
                   ) -> AsyncIterator[tuple[Runtime, Outage]]:
    """A runtime on either backend, and the outage that fits it."""
    async with TcpProxy("127.0.0.1", urlsplit(database_url).port or 5432) as proxy:
        if database_url.startswith("sqlite"):
            outage: Outage = SqliteLock(Path(urlsplit(database_url).path.removeprefix("/")))
            url = database_url
        else:
            outage = ServerGone(proxy)
            url = database_url.replace(f":{urlsplit(database_url).port}/", f":{proxy.port}/")
        runtime = await make_runtime(f'[database]\nurl = "{url}"\n[fees]\ncertificate = 100\n')
        try:
            yield runtime, outage
        finally:  # before the proxy closes
            await runtime.stop()


async def values_of(runtime: Runtime, account: Account) -> dict[str, str]:
    async with runtime.db.transaction() as session:
        conversation = await Conversations(session).get(account.platform, account.user_id)
    assert conversation is not None
    return conversation.state["values"]


OUTAGE_SECONDS = 2


async def test_the_database_locked_or_gone_for_a_while(
        troubled: tuple[Runtime, Outage], tmp_path: Path) -> None:
    runtime, outage = troubled
    scans = []
    for n in range(4):
        scans.append(tmp_path / f"{n}.jpg")
        scans[-1].write_bytes(sample_scan(f"outage {n}"))
    filling, submitting = Account("qq", "701"), Account("qq", "702")
    for answer in ("你好", fake_uscc(), "临沂停电测试有限公司", "同意", "王小明", "13812345678",
                   "取消", "是", "新办证书", "1", "临沂", "1"):
        await say(runtime, filling, answer)
    await apply_until_summary(runtime, submitting, scans)

    await outage.begin()
    try:  # both applicants write at once: SQLite makes each wait its busy timeout (5 s)
        answered, submitted, _ = await asyncio.gather(
            say(runtime, filling, "张三"), say(runtime, submitting, "确认提交"),
            asyncio.sleep(OUTAGE_SECONDS))
    finally:
        await outage.end()
    # told, in Chinese, that nothing was kept and to send it again in a moment
    assert answered == submitted == DATABASE_BUSY
    assert "没有保存" in DATABASE_BUSY
    assert "稍等" in DATABASE_BUSY

    # nothing half-written; no restart needed: the very next messages are handled
    assert "handler_name" not in await values_of(runtime, filling)
    async with runtime.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 0
    assert "请输入【经办人姓名】" in await say(runtime, filling, "继续")
    assert "请输入【经办人身份证号】" in await say(runtime, filling, "张三")
    assert (await values_of(runtime, filling))["handler_name"] == "张三"
    assert "提交成功" in await say(runtime, submitting, "确认提交")
    async with runtime.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 1


# --- the bot killed mid-conversation ---------------------------------------------------------
SEED = 20261125


@dataclass
class Step:
    message: list[dict]
    after: str  # what the bot says once the message is taken
    where: str  # what 继续 shows once the message is taken


@dataclass
class Script:
    user: int
    uscc: str
    id_number: str
    mobile: str
    scans: list[bytes]
    steps: list[Step] = field(default_factory=list)
    done: int = 0  # steps acknowledged by the bot (or found taken after a restart)


def script_for(user: int, rng: random.Random, server: ScanServer) -> Script:
    s = Script(user, fake_uscc(rng), fake_id_number(rng), fake_mobile(rng),
               [sample_scan(f"kill {user} {n}") for n in range(4)])
    idle = "当前没有未完成的办理"
    answers = [("你好", "【统一社会信用代码】"), (s.uscc, "【单位名称】"),
               (f"临沂断电{user}号有限公司", "【注册协议】"), ("同意", "【申报人】"),
               ("王小明", "【联系电话】"), ("13812345678", "【用户类型】"),
               ("1", "【经办人身份证号】"), (s.id_number, "【附件一 单位授权书】"),
               (server.add(f"kill-{user}-letter.jpg", s.scans[0]), "【附件二 营业执照】"),
               (server.add(f"kill-{user}-licence.jpg", s.scans[1]), "请核对"),
               ("确认提交", idle),
               ("新办证书", "【证书年限】"), ("1", "【项目所属地区】"),
               ("临沂", "【办理Ukey数量】"), ("2", "【经办人姓名】"),
               ("张三", "【经办人身份证号】"),
               (s.id_number, "【手机号】"), (s.mobile, "【是否自取】"), ("2", "【地级市】"),
               ("山东省临沂市兰山区", "【邮寄地址】"), (f"金雀山路 {user} 号", "【附件一")]
    s.steps = [Step(picture(a) if a.startswith("http") else text(a),
                    "绑定申请已提交" if w == idle else w, w) for a, w in answers]
    for n, (after, where) in enumerate([("【附件二", "【附件二"), ("【附件三", "【附件三"),
                                        ("【附件四", "【附件四"), ("确认提交", "请核对")]):
        s.steps.append(Step(picture(server.add(f"kill-{user}-{n}.jpg", s.scans[n])), after,
                            where))
    s.steps.append(Step(text("确认提交"), "订单号：", idle))
    return s


class KilledBot:
    """The bot process and one OneBot peer, killed and restarted by the test."""

    def __init__(self, bot: BotProcess, port: int) -> None:
        self.bot, self.port = bot, port
        self.peer = OneBotPeer(port, TOKEN)

    async def start(self) -> None:
        await self.bot.start()
        self.peer = OneBotPeer(self.port, TOKEN)
        await self.peer.connect()

    async def kill(self) -> None:
        assert self.bot.process is not None
        self.bot.process.kill()  # SIGKILL: no shutdown hook runs
        await self.bot.process.wait()
        await self.peer.close()

    async def ask(self, user: int, message: list[dict], until: str) -> str:
        await self.peer.send_private(user, message)
        return "\n".join(t for _, t in await self.peer.replies_until(until))


async def test_the_bot_killed_at_random_points_loses_no_acknowledged_answer(
        scan_server: ScanServer, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    scripts = [script_for(user, rng, scan_server) for user in (41001, 41002, 41003)]
    turns = [s for s in scripts for _ in s.steps]
    rng.shuffle(turns)  # the applicants take turns in a random (seeded) order
    # when the kill comes after a message went out: once its reply is in (None), at once,
    # or a few milliseconds later (while the bot may be writing it); each at least once
    delays: list[float | None] = [None, 0.0, *(rng.uniform(0.001, 0.05) for _ in range(2))]
    rng.shuffle(delays)
    kills = dict(zip(sorted(rng.sample(range(len(turns)), len(delays))), delays, strict=True))
    bot = KilledBot(*make_instance(tmp_path))
    await bot.start()
    try:
        for turn, script in enumerate(turns):
            if script.done == len(script.steps):  # a 继续 after a restart took its first step
                continue
            step = script.steps[script.done]
            if turn not in kills:
                await bot.ask(script.user, step.message, step.after)
                script.done += 1
                continue
            delay = kills[turn]
            await bot.peer.send_private(script.user, step.message)
            if delay is None:  # killed right after the acknowledgement
                await bot.peer.replies_until(step.after)
                script.done += 1
            else:
                await asyncio.sleep(delay)
            await bot.kill()
            await bot.start()
            for other in scripts:  # everyone finds their conversation where it was
                if other.done == len(other.steps):
                    continue
                taken = other.steps[other.done].where
                before = other.steps[other.done - 1].where if other.done else "【统一社会信用代码】"
                # one reply, but two (welcome, first question) for someone still unknown
                shown = await bot.ask(other.user, text("继续"),
                                      "" if other.done else "【统一社会信用代码】")
                if other is script and delay is not None and taken in shown:
                    other.done += 1  # taken just before the kill, its reply lost with it
                else:
                    assert before in shown, (turn, other.user, other.done, shown)
                if other.done == 0:  # 继续 to a stranger started the binding: that is step 0
                    other.done = 1
        remaining = [s for s in scripts if s.done < len(s.steps)]
        for script in remaining:
            for step in script.steps[script.done:]:
                await bot.ask(script.user, step.message, step.after)
            script.done = len(script.steps)
        await bot.ask(scripts[0].user, text("我的订单"), "订单")
    finally:
        await bot.peer.close()
        await bot.bot.stop()

    data_dir = tmp_path / "live-data"
    with sqlite3.connect(data_dir / "cadesk.db") as db:
        orders = db.execute("SELECT id, fields FROM orders WHERE type = 'certificate' "
                            "ORDER BY id").fetchall()
        requests = db.execute("SELECT count(*) FROM orders WHERE type = 'binding' "
                              "AND status = 'submitted'").fetchone()[0]
        attachments = db.execute("SELECT order_id, sha256 FROM attachments").fetchall()
        left = db.execute("SELECT count(*) FROM conversations").fetchone()[0]
    assert left == 0
    assert len(orders) == len(scripts)  # one each: none lost, none filed twice
    assert requests == len(scripts)  # and one binding request each
    by_uscc = {json.loads(fields)["org_id"]: (order_id, json.loads(fields))
               for order_id, fields in orders}
    for script in scripts:
        order_id, fields = by_uscc[script.uscc]
        assert (fields["handler_id_number"], fields["mobile"], fields["address"]) == (
            script.id_number, script.mobile, f"金雀山路 {script.user} 号")
        stored = sorted(sha for oid, sha in attachments if oid == order_id)
        assert stored == sorted(hashlib.sha256(d).hexdigest() for d in script.scans)
        for sha in stored:
            assert (data_dir / "scans" / sha[:2] / sha).read_bytes() in script.scans


async def test_the_bot_killed_while_a_batch_of_100_answers_is_in_flight(
        tmp_path: Path) -> None:
    """100 applicants answer at once (their states go to the group-commit writer together) and
    the bot is killed as the first reply comes back: whoever got a reply finds the answer kept;
    whoever did not finds it either kept or not taken, and can send it again."""
    rng = random.Random(SEED + 1)
    users = range(42001, 42101)
    usccs = {user: fake_uscc(rng) for user in users}
    bot = KilledBot(*make_instance(tmp_path))
    await bot.start()
    try:
        for user in users:
            await bot.ask(user, text("你好"), "【统一社会信用代码】")
        for user in users:  # all at once: nobody waits for their reply before the next sends
            await bot.peer.send_private(user, text(usccs[user]))
        first = await bot.peer.replies_until("【单位名称】")
        await bot.kill()
        acknowledged = {int(to.removeprefix("user:"))
                        for to, said in first if "【单位名称】" in said}
        assert 0 < len(acknowledged) < len(users)  # killed with answers still in flight
        await bot.start()
        resent = 0
        for user in users:
            shown = await bot.ask(user, text("继续"), "")
            if user in acknowledged or "【单位名称】" in shown:
                assert "【单位名称】" in shown, (user, shown)
                continue
            assert "【统一社会信用代码】" in shown, (user, shown)  # not taken: asked again
            assert "【单位名称】" in await bot.ask(user, text(usccs[user]), "【单位名称】")
            resent += 1
    finally:
        await bot.peer.close()
        await bot.bot.stop()
    with sqlite3.connect(tmp_path / "live-data" / "cadesk.db") as db:
        states = dict(db.execute("SELECT user_id, state FROM conversations").fetchall())
    for user in users:  # each form holds its own company's code, nobody else's
        assert usccs[user] in states[str(user)]
        assert sum(uscc in states[str(user)] for uscc in usccs.values()) == 1
    assert resent < len(users)
