"""One-time codes given in chat (a key agent's pairing code, a join code for another channel):
short, without look-alike characters, kept only as their SHA-256, and guessing limited by
counting wrong tries per guesser in a sliding window."""

import hashlib
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable

from bot.domain.order_numbers import ALPHABET

CODE_LENGTH = 8  # 31⁸ ≈ 8.5·10¹¹ codes: with a handful of tries per guesser, none guessed
WRONG_TRIES = 5  # wrong codes allowed per guesser ...
WRONG_TRY_WINDOW = 600.0  # ... within this many seconds


def new_code(length: int = CODE_LENGTH) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def code_hash(code: str) -> str:
    """What is kept of a code: typed in either case, with spaces around, it is the same."""
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


class WrongTries:
    """Wrong codes per guesser (an address, an account), in a sliding window (kept in memory: a
    restart forgets them, which costs a guesser nothing it could not get by waiting)."""

    def __init__(self, limit: int = WRONG_TRIES, window: float = WRONG_TRY_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._tries: defaultdict[str, deque[float]] = defaultdict(deque)

    def _recent(self, guesser: str) -> deque[float]:
        tries, now = self._tries[guesser], self.clock()
        while tries and tries[0] <= now - self.window:
            tries.popleft()
        if not tries:
            del self._tries[guesser]  # no memory kept for guessers that stopped
        return tries

    def used_up(self, guesser: str) -> bool:
        """Whether the guesser has used up its wrong tries (until the oldest falls out)."""
        return len(self._recent(guesser)) >= self.limit

    def wrong(self, guesser: str) -> None:
        self._recent(guesser)
        self._tries[guesser].append(self.clock())
