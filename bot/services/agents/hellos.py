"""Refused agent hellos on ``/agent/ws``: limited per remote address, told to the staff at most
once a minute.

Anyone who reaches the bot's server can open ``/agent/ws`` and say hello as any agent id.
Each refusal (an unknown agent, a bad proof, a revoked agent, a malformed hello) counts for
the caller's address; after ``HELLO_REFUSALS`` within ``HELLO_WINDOW`` the address is refused
before its hello is read, until the oldest refusal falls out of the window (kept in memory, as
the wrong pairing codes are: a restart forgets them). A paired agent's hello never fails, so
it never counts.

The staff hear of the first refusal at once; further ones within ``NOTICE_INTERVAL`` are
counted and told in one notice when the interval is up: how many, of which kinds, from how
many addresses, and the last agent id claimed, cleaned and clipped (the one word an attacker
chooses that reaches the staff).
"""

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable

from loguru import logger

from bot.services.agents.registry import AgentRefused, WrongCodes
from bot.services.notify import Notifier

HELLO_REFUSALS = 10  # refused hellos allowed per address ...
HELLO_WINDOW = 600.0  # ... within this many seconds
NOTICE_INTERVAL = 60.0  # the staff hear of refused hellos at most this often
_SHOWN_ID = 12  # characters of a claimed agent id shown to the staff


def shown_agent_id(raw: object) -> str:
    """What the staff see of a claimed agent id: letters, digits, - and _ only, 12 at most."""
    cleaned = re.sub(r"[^0-9A-Za-z_-]", "", str(raw))
    return (cleaned[:_SHOWN_ID] + "…" if len(cleaned) > _SHOWN_ID else cleaned) or "（空）"


class HelloGuard:
    def __init__(self, notifier: Notifier, limit: int = HELLO_REFUSALS,
                 window: float = HELLO_WINDOW, interval: float = NOTICE_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.interval, self.clock = interval, clock
        self.refusals = WrongCodes(limit, window, clock)
        self._last_notice: float | None = None
        self._pending: Counter[str] = Counter()  # refusals by code since the last notice
        self._addresses: set[str] = set()
        self._last_id = ""
        self._flush: asyncio.Task[None] | None = None

    def check(self, address: str) -> None:
        """Refuses an address that has used up its refused hellos (``too_many_attempts``)."""
        try:
            self.refusals.check(address)
        except AgentRefused:
            minutes = round(self.refusals.window / 60)
            raise AgentRefused(
                "too_many_attempts",
                f"该地址的连接被拒绝次数过多，请 {minutes} 分钟后再试。Too many refused "
                f"connections from this address; try again in {minutes} minutes.") from None

    def malformed(self, address: str) -> None:
        """A hello that was not one (no JSON, no agent id, too late): counted, not told."""
        logger.warning(f"agent hello from {address} malformed")
        self.refusals.wrong(address)

    async def refused(self, address: str, claimed: object, refusal: AgentRefused) -> None:
        """A refused hello (or an address refused by ``check``): counted for the address, and
        told to the staff, at once when they heard nothing in the last interval, else in the
        next summary."""
        agent = shown_agent_id(claimed) if claimed is not None else ""
        logger.warning(f"agent hello from {address} as {agent or '-'} refused: {refusal.code}")
        if refusal.code != "too_many_attempts":  # a limited address gains no time by trying
            self.refusals.wrong(address)
        now = self.clock()
        if self._last_notice is None or now - self._last_notice >= self.interval:
            self._last_notice = now
            await self.notifier.tell_staff(
                f"拒绝了密钥代理 {agent or '（未报编号）'} 的连接：{refusal}（{refusal.code}）")
            return
        self._pending[refusal.code] += 1
        self._addresses.add(address)
        self._last_id = agent or self._last_id
        if self._flush is None:
            wait = self._last_notice + self.interval - now
            self._flush = asyncio.create_task(self._summary_after(wait))

    async def _summary_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._flush = None
        await self.tell_summary()

    async def tell_summary(self) -> None:
        """The refusals counted since the last notice, in one notice (none when there are none)."""
        if not self._pending:
            return
        count = sum(self._pending.values())
        kinds = "、".join(f"{code} {n} 次" for code, n in self._pending.most_common())
        text = (f"上次通知后又拒绝了 {count} 次密钥代理连接（{kinds}），来自 "
                f"{len(self._addresses)} 个地址")
        text += f"，最近一次自称代理 {self._last_id}。" if self._last_id else "。"
        self._pending.clear()
        self._addresses.clear()
        self._last_id = ""
        self._last_notice = self.clock()
        await self.notifier.tell_staff(text)

    async def stop(self) -> None:
        """At shutdown: the summary waiting for its minute is not sent."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
