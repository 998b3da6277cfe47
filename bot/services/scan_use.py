"""Whether a scan file may go: the store is content-addressed, so one file may be named by
several orders' rows, by a form still being filled, or by mail waiting to be sent. A file is
deleted only when none of them names it any more."""

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from storage.repositories import Conversations, Orders, OutgoingMails


async def unused_scans(session: AsyncSession, candidates: Iterable[str]) -> list[str]:
    """Those of ``candidates`` that no attachment row, no draft and no unsent mail names."""
    wanted = set(candidates)
    if not wanted:
        return []
    named = await Orders(session).scans_in_use(wanted)
    named |= {scan["sha256"] for state in await Conversations(session).states()
              for scan in state.get("scans", {}).values()}
    named |= await OutgoingMails(session).pending_attachments()
    return sorted(wanted - named)
