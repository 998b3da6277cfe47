"""The retention purge: what ``[retention]`` says has been kept long enough goes, one order per
transaction (its change and its event together), files after the commit that forgot them.

- a finished order's scans, ``scan_days`` after it finished: rows deleted, files deleted when
  nothing else names them (``scan_use``), a ``SCANS_PURGED`` event on the order;
- its ID numbers and mobiles, ``mask_days`` after: reduced to the masked form by the form's own
  masks (``domain/retention.py``), a ``NUMBERS_MASKED`` event;
- forms left unanswered ``draft_days``: dropped with their scans;
- sent or given-up mail and chat notices, ``outbox_days`` after;
- a rejected order nobody corrected for ``rejected_days``: cancelled (the lifecycle's
  ``CANCEL``), the applicant told; from then on it is a finished order like any other.

A pass with nothing due only reads (so it takes no write lock). An open order is never touched
(``domain/retention.is_finished`` is checked again on the row read inside the transaction).
``now`` is a parameter, so a test moves the clock.
"""

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.lifecycle import Event, OrderStatus
from bot.domain.masking import mask_personal_numbers
from bot.domain.retention import is_finished, masked_fields, masked_invoice
from bot.services.filing import move_order, note_order
from bot.services.notify import NoticeKind, Notifier, applicant_notice
from bot.services.ports import ScanStorage
from bot.services.scan_use import unused_scans
from storage.db import Database
from storage.models import Order, OrderEvent, utcnow
from storage.repositories import (
    ChatReaches,
    Conversations,
    Orders,
    OutgoingChats,
    OutgoingMails,
)

SYSTEM = "system"
BATCH = 200


@dataclass
class Purged:
    """What one pass (or one confirmed request) removed: counts only, never whose."""

    lapsed: int = 0  # rejected orders cancelled
    scan_orders: int = 0
    masked_orders: int = 0
    drafts: int = 0
    files: int = 0
    outbox: int = 0
    hashes: set[str] = field(default_factory=set)  # candidates for deletion from disk

    def summary(self) -> str:
        return (f"retention: {self.lapsed} uncorrected rejected orders cancelled, "
                f"scans of {self.scan_orders} orders deleted ({self.files} files), "
                f"{self.masked_orders} orders masked, {self.drafts} drafts dropped, "
                f"{self.outbox} sent notices deleted")


def is_masked(events: Sequence[OrderEvent]) -> bool:
    return any(e.event is Event.NUMBERS_MASKED for e in events)


async def purge_order(session: AsyncSession, order: Order, actor: str, why: str, at: datetime,
                      *, scans: bool, numbers: bool) -> tuple[list[str], bool]:
    """In the caller's transaction: the order's scan rows deleted (``scans``) and its numbers
    masked (``numbers``), each logged on the order with ``why`` ("retention" or "request").
    Returns the deleted rows' hashes (files to delete once nothing names them) and whether it
    masked. Refuses an open order."""
    if not is_finished(order.status):
        raise ValueError(f"order #{order.id} is open: retention never touches it")
    hashes: list[str] = []
    if scans:
        rows = await Orders(session).delete_attachments(order)
        if rows:
            hashes = sorted({r.sha256 for r in rows})
            note_order(session, order, actor, Event.SCANS_PURGED, at=at, detail={
                "why": why, "count": len(rows), "slots": sorted({r.slot for r in rows})})
    if numbers:
        order.fields = masked_fields(order.type, order.fields)
        order.invoice = masked_invoice(order.invoice)
        if order.reject_reason:
            order.reject_reason = mask_personal_numbers(order.reject_reason)
        note_order(session, order, actor, Event.NUMBERS_MASKED, at=at, detail={"why": why})
    return hashes, numbers


PUSH_MONTH = timedelta(days=32)  # a channel's pushes are counted by calendar month


class Retention:
    """The purge worker's pass (``run``) and the deletion of scan files nothing names."""

    def __init__(self, settings: Settings, db: Database, scans: ScanStorage,
                 notifier: Notifier) -> None:
        self.settings = settings
        self.db = db
        self.scans = scans
        self.notifier = notifier

    async def run(self, now: datetime | None = None) -> Purged:
        """One pass over everything due at ``now``; logs a summary without personal data."""
        now = now or utcnow()
        cut = self.settings.retention.terms().cutoffs(now)
        done = Purged()
        done.lapsed = await self._lapse_rejected(cut.rejected, now)
        await self._orders(cut.scans, now, done, scans=True)
        await self._orders(cut.numbers, now, done, scans=False)
        async with self.db.transaction() as session:
            dropped = await Conversations(session).drop_idle(cut.drafts)
            done.drafts = len(dropped)
            done.hashes |= {s["sha256"] for state in dropped
                            for s in state.get("scans", {}).values()}
            done.outbox = (await OutgoingMails(session).delete_settled(cut.outbox)
                           + await OutgoingChats(session).delete_settled(cut.outbox))
            # a channel's record of someone silent that long, kept past a month's pushes
            done.outbox += await ChatReaches(session).forget_before(
                min(cut.outbox, now - PUSH_MONTH))
        done.files = await self.discard_unused(done.hashes)
        if done.lapsed or done.scan_orders or done.masked_orders or done.drafts or done.outbox:
            logger.info(done.summary())
        return done

    async def _orders(self, cutoff: datetime, now: datetime, done: Purged, *,
                      scans: bool) -> None:
        """Every order due for this kind of purge, each in its own transaction."""
        last = 0
        while True:
            async with self.db.transaction() as session:
                ids = [i for i in await Orders(session).finished_before(
                    cutoff, with_scans=scans, unmasked=not scans, limit=BATCH) if i > last]
            if not ids:
                return
            for order_id in ids:
                async with self.db.transaction() as session:
                    order = await Orders(session).by_id(order_id)
                    if order is None or not is_finished(order.status):
                        continue
                    hashes, masked = await purge_order(session, order, SYSTEM, "retention",
                                                       now, scans=scans, numbers=not scans)
                done.hashes |= set(hashes)
                done.scan_orders += bool(hashes)
                done.masked_orders += masked
            last = ids[-1]

    async def _lapse_rejected(self, cutoff: datetime, now: datetime) -> int:
        """Rejected orders untouched since ``cutoff`` are cancelled, each applicant told."""
        days = self.settings.retention.rejected_days
        async with self.db.transaction() as session:
            ids = await Orders(session).rejected_before(cutoff)
        lapsed = 0
        for order_id in ids:
            async with self.db.transaction() as session:
                order = await Orders(session).by_id(order_id)
                if order is None or order.status is not OrderStatus.REJECTED:
                    continue
                move_order(session, order, SYSTEM, Event.CANCEL, at=now,
                           reason=f"驳回后 {days} 天未修改，按保存期限取消")
                await self.notifier.notify_applicant(session, order, applicant_notice(
                    order, NoticeKind.REJECTION_LAPSED, self.settings, reason=str(days)))
            lapsed += 1
        if lapsed:
            await self.notifier.deliver()
        return lapsed

    async def discard_unused(self, hashes: Iterable[str]) -> int:
        """Delete from disk those files no row, draft or unsent mail names; how many."""
        async with self.db.transaction() as session:
            unused = await unused_scans(session, hashes)
        for sha256 in unused:
            await asyncio.to_thread(self.scans.discard, sha256)
        return len(unused)
