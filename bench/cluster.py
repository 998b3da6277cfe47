"""What ``[cluster]`` costs a chat message: a form answer through ``Dialogue.handle`` on
PostgreSQL with ``[cluster] enabled`` (the account's advisory lock taken and released on a
connection of its own, the binding and form read from the database: no memo) against the same
answer in one process (the memo, no advisory lock)."""

import asyncio
import tempfile
import time
from pathlib import Path

from bench.report import Figure, expect, latencies
from bot.config import load_settings
from bot.runtime import Runtime
from bot.samples import fake_uscc
from bot.services.messages import Account, Incoming
from tests.support.helpers import RecordingChat
from tests.support.postgres import postgres_server

ACCOUNTS = 20


async def _start(url: str, root: Path, name: str, cluster: bool) -> Runtime:
    config = root / f"{name}.toml"
    config.write_text(f"""
[bot]
adapters = []
data_dir = "{name}-data"
log_level = "WARNING"
[database]
url = "{url}"
[cluster]
enabled = {"true" if cluster else "false"}
""", encoding="utf-8")
    return await Runtime.start(load_settings(config), RecordingChat())


async def measure(urls: tuple[str, str], rounds: int, root: Path) -> list[Figure]:
    one = await _start(urls[0], root, "one", cluster=False)
    shared = await _start(urls[1], root, "cluster", cluster=True)
    try:
        accounts = [Account("qq", str(800_000 + n)) for n in range(ACCOUNTS)]
        uscc = fake_uscc()
        for runtime in (one, shared):
            for account in accounts:  # each with the binding form open at its USCC
                await runtime.dialogue.handle(account, Incoming(text="你好"))

        async def answer(runtime: Runtime, i: int) -> None:
            # the USCC, then 上一步 back to it: every message reads and saves the form
            text, awaited = (uscc, "单位名称") if i % 2 == 0 else ("上一步", "统一社会信用代码")
            account = accounts[(i // 2) % ACCOUNTS]
            replies = await runtime.dialogue.handle(account, Incoming(text=text))
            expect(any(awaited in str(r) for r in replies), str(replies))

        for i in range(2 * ACCOUNTS):  # warm-up: statement caches, both connection pools
            await answer(one, i)
            await answer(shared, i)
        times: tuple[list[float], list[float]] = ([], [])
        for i in range(rounds):  # in turns, so a busy moment of the machine hits both
            for runtime, kept in ((shared, times[0]), (one, times[1])):
                start = time.perf_counter()
                await answer(runtime, 2 * ACCOUNTS + i)
                kept.append(time.perf_counter() - start)
        return latencies("cluster", "PostgreSQL, a form answer, [cluster] vs one process",
                         *times)
    finally:
        await shared.stop()
        await one.stop()


def run(quick: bool) -> tuple[list[Figure], str]:
    rounds = 100 if quick else 1_000
    with tempfile.TemporaryDirectory(prefix="cadesk-bench-cluster-") as root, \
            postgres_server() as new_database:
        figures = asyncio.run(measure((new_database(), new_database()), rounds, Path(root)))
    note = ("A form answer (the binding form's USCC, then 上一步 back to it, over "
            f"{ACCOUNTS} accounts in turn) through `Dialogue.handle`, {rounds} rounds after "
            "untimed ones, taken in turns. cadesk: `[cluster] enabled` — the account's "
            "PostgreSQL advisory lock (`pg_advisory_lock` / `pg_advisory_unlock` on a pooled "
            "connection of its own) and the binding and form read from the database on every "
            "message. Baseline: one process, the same database kind, the account memo serving "
            "them (no read) and no advisory lock. PostgreSQL is a throwaway server from "
            "tests/support/postgres.py (fsync off).")
    return figures, note
