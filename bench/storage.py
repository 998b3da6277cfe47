"""``我的订单`` and ``待审核`` through the project's own code (Dialogue, ReviewDesk, the Orders
repository, order_views) over 100,000 orders, in SQLite and in PostgreSQL, against a plain SQL
select of the same rows on the same engine."""

import asyncio
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from bench.report import Figure, Target, expect, latencies
from bot.config import load_settings
from bot.domain.lifecycle import OrderStatus
from bot.domain.trust import HandlerStatus
from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_mobile, fake_uscc
from bot.services.messages import Account, Incoming
from storage.db import sqlite_url
from storage.models import Attachment, Company, Handler, Order
from tests.support.helpers import RecordingChat
from tests.support.postgres import postgres_server

TECHNICIAN = Account("qq", "900001")
COMPANIES = 5_000
IN_REVIEW_SHARE = 0.03  # submitted or resubmitted: what a queue looks like on a busy morning
DONE = [OrderStatus.COMPLETED] * 12 + [OrderStatus.SHIPPED, OrderStatus.PAID,
                                        OrderStatus.APPROVED, OrderStatus.REJECTED,
                                        OrderStatus.CANCELLED]
CITIES = ["济南", "青岛", "淄博", "临沂", "潍坊", "烟台"]
CHUNK = 5_000
P99_TARGET = Target("below", 20)  # issue 15: 我的订单 and 待审核 p99 < 20 ms at 100,000 orders

MY_ORDERS_SQL = text(
    "SELECT o.*, c.name FROM orders o JOIN companies c ON c.id = o.company_id "
    "WHERE o.company_id = :company ORDER BY o.created_at DESC, o.id DESC LIMIT 10")
COUNT_SQL = text("SELECT count(*) FROM orders WHERE company_id = :company")
QUEUE_SQL = text(
    "SELECT o.*, c.name FROM orders o JOIN companies c ON c.id = o.company_id "
    "WHERE o.status IN ('submitted', 'resubmitted') ORDER BY o.submitted_at, o.id LIMIT 30")


def _certificate_fields(rng: random.Random, name: str, uscc: str) -> dict[str, str]:
    return {"cert_type": "机构证书", "years": rng.choice(["1年", "2年", "3年"]),
            "region": rng.choice(CITIES), "ukey_count": str(rng.randint(1, 3)),
            "apply_kind": rng.choice(["新办", "补办"]), "company_name": name,
            "org_id_type": "统一社会信用代码", "org_id": uscc, "handler_name": "张三",
            "handler_id_number": fake_id_number(rng), "mobile": fake_mobile(rng),
            "self_pickup": "邮寄", "city": "山东省临沂市兰山区", "address": "金雀山路 1 号"}


async def seed(runtime: Runtime, orders: int, rng: random.Random) -> list[int]:
    """Companies, one handler each, ``orders`` orders with their scans' rows; returns the
    company of each order."""
    usccs: set[str] = set()
    while len(usccs) < COMPANIES:
        usccs.add(fake_uscc(rng))
    companies = [{"id": i + 1, "uscc": u, "name": f"临沂测试{i:05d}建设工程有限公司",
                  "pledge_accepted_at": datetime(2024, 1, 1, tzinfo=UTC)}
                 for i, u in enumerate(sorted(usccs))]
    # verified by the centre: 我的订单 lists the company's orders, as the baseline's SQL does
    handlers = [{"id": c["id"], "platform": "qq", "user_id": str(500_000 + c["id"]),
                 "company_id": c["id"], "status": HandlerStatus.VERIFIED}
                for c in companies]
    async with runtime.db.transaction() as session:
        await session.execute(insert(Company), companies)
        await session.execute(insert(Handler), handlers)
    start = datetime(2024, 11, 25, tzinfo=UTC)
    sha = f"{rng.getrandbits(256):064x}"
    order_id, owners = 0, []
    for first in range(0, orders, CHUNK):
        rows, scans = [], []
        for _ in range(min(CHUNK, orders - first)):
            order_id += 1
            company = companies[rng.randrange(COMPANIES)]
            owners.append(company["id"])
            at = start + timedelta(seconds=rng.randrange(2 * 365 * 24 * 3600))
            status = (rng.choice([OrderStatus.SUBMITTED] * 4 + [OrderStatus.RESUBMITTED])
                      if rng.random() < IN_REVIEW_SHARE else rng.choice(DONE))
            rows.append({
                "id": order_id, "number": f"XB-{order_id:09d}", "type": "certificate",
                "status": status, "company_id": company["id"], "handler_id": company["id"],
                "channel": "chat", "fields": _certificate_fields(rng, company["name"],
                                                                  company["uscc"]),
                "amount_cents": 30000, "created_at": at, "submitted_at": at, "updated_at": at,
                "version": 1,
                "reject_reason": "附件二不清晰" if status == OrderStatus.REJECTED else None})
            scans += [{"order_id": order_id, "slot": slot, "revision": 1, "sha256": sha,
                       "format": "JPEG", "size": 101_000, "width": 1240, "height": 1754,
                       "created_at": at}
                      for slot in ("scan_form", "scan_id", "scan_authorisation",
                                   "scan_licence")]
        async with runtime.db.transaction() as session:
            await session.execute(insert(Order), rows)
            await session.execute(insert(Attachment), scans)
    if runtime.db.engine.dialect.name == "postgresql":
        async with runtime.db.engine.connect() as connection:
            await connection.execute(text("SELECT setval('orders_id_seq', :n)"), {"n": order_id})
            await connection.commit()
            await connection.execute(text("ANALYZE"))
    else:
        async with runtime.db.engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()
    return owners


Work = Callable[[int], Awaitable[object]]


async def _side_by_side(ours: Work, baseline: Work,
                        rounds: int) -> tuple[list[float], list[float]]:
    """Seconds per round of each, taken in turns so a busy moment of the machine hits both."""
    for i in range(10):  # warm-up: statement caches, connection pool
        await ours(i)
        await baseline(i)
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(rounds):
        for work, kept in ((ours, times[0]), (baseline, times[1])):
            start = time.perf_counter()
            await work(i)
            kept.append(time.perf_counter() - start)
    return times


async def measure(url: str, backend: str, orders: int, rounds: int,
                  root: Path) -> list[Figure]:
    config = root / f"{backend}.toml"
    config.write_text(f"""
[bot]
data_dir = "{backend}-data"
log_level = "WARNING"
[database]
url = "{url}"
[staff]
technicians = ["{TECHNICIAN}"]
""", encoding="utf-8")
    runtime = await Runtime.start(load_settings(config), RecordingChat())
    try:
        rng = random.Random(11)
        owners = await seed(runtime, orders, rng)
        chosen = [rng.choice(owners) for _ in range(50)]  # companies with orders

        async def my_orders(i: int) -> None:
            [reply] = await runtime.dialogue.handle(Account("qq", str(500_000 + chosen[i % 50])),
                                                    Incoming(text="我的订单"))
            expect("的订单" in reply, reply)

        async def my_orders_sql(i: int) -> None:
            company = chosen[i % 50]
            async with runtime.db.engine.connect() as connection:
                rows = (await connection.execute(MY_ORDERS_SQL, {"company": company})).all()
                count = (await connection.execute(COUNT_SQL, {"company": company})).scalar()
            expect(bool(rows) and bool(count), "no orders for a chosen company")

        async def queue(_: int) -> None:
            [reply] = await runtime.desk.execute(TECHNICIAN, "待审核", private=True)
            expect("待审核订单（30 个" in reply, reply)

        async def queue_sql(_: int) -> None:
            async with runtime.db.engine.connect() as connection:
                rows = (await connection.execute(QUEUE_SQL)).all()
            expect(len(rows) == 30, f"{len(rows)} orders waiting, not 30")

        figures: list[Figure] = []
        for case, ours, plain in (("我的订单", my_orders, my_orders_sql),
                                  ("待审核", queue, queue_sql)):
            cadesk, baseline = await _side_by_side(ours, plain, rounds)
            figures += latencies("storage", f"{backend}, {orders:,} orders: {case}", cadesk,
                                 baseline, p99=P99_TARGET)
        return figures
    finally:
        await runtime.stop()


def run(quick: bool) -> tuple[list[Figure], str]:
    orders, rounds = (10_000, 30) if quick else (100_000, 300)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="cadesk-bench-storage-") as root:
        figures += asyncio.run(measure(sqlite_url(Path(root) / "cadesk.db"), "SQLite",
                                       orders, rounds, Path(root)))
        with postgres_server() as new_database:
            figures += asyncio.run(measure(new_database(), "PostgreSQL", orders, rounds,
                                           Path(root)))
    note = (f"{orders:,} certificate orders (4 scan rows each) over {COMPANIES:,} companies, "
            f"{IN_REVIEW_SHARE:.0%} of them waiting for review, seeded through the models. "
            "`我的订单` goes through `Dialogue.handle` (handler and draft lookup, "
            "`Orders.of_company` + `count_of_company`, `order_views.order_list`) for 50 "
            "different applicants in turn; `待审核` through `ReviewDesk.execute` "
            f"(`Orders.in_review`, 30 oldest). p50 and p99 (nearest rank) of {rounds} rounds, "
            "taken in turns with the baseline's, after 10 untimed. Baseline: the same rows by one "
            "plain `SELECT … JOIN companies` "
            "(and the `count(*)` for 我的订单) with `text()` on the same engine. PostgreSQL "
            "is a throwaway server from tests/support/postgres.py (fsync off); "
            "SQLite is a WAL file.")
    return figures, note
