"""The service centre's opening hours: how they read, and when someone will next be there to
answer (a 人工客服 request is told that)."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

WEEKDAYS = "一二三四五六日"  # ISO weekday 1 (Monday) … 7


def parse_period(text: str) -> tuple[time, time]:
    """「08:30-12:00」 → (08:30, 12:00); ValueError when it is not a period within a day."""
    start, _, end = text.replace("–", "-").partition("-")
    opens, closes = time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    if not opens < closes:
        raise ValueError(f"{text!r}: the end must come after the start")
    return opens, closes


def _days_text(days: tuple[int, ...]) -> str:
    """(1, 2, 3, 4, 5) → 周一至周五; (1, 3, 6) → 周一、周三、周六."""
    if len(days) > 2 and days == tuple(range(days[0], days[-1] + 1)):
        return f"周{WEEKDAYS[days[0] - 1]}至周{WEEKDAYS[days[-1] - 1]}"
    return "、".join(f"周{WEEKDAYS[d - 1]}" for d in days)


@dataclass(frozen=True)
class OpeningHours:
    days: tuple[int, ...]  # ISO weekdays, ascending
    periods: tuple[tuple[time, time], ...]  # ascending, within each open day
    note: str = ""  # e.g. 法定节假日除外

    def text(self) -> str:
        """「周一至周五 08:30-12:00、13:30-17:30（法定节假日除外）」."""
        periods = "、".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in self.periods)
        return f"{_days_text(self.days)} {periods}" + (f"（{self.note}）" if self.note else "")

    def is_open(self, now: datetime) -> bool:
        return now.isoweekday() in self.days and any(
            a <= now.time() < b for a, b in self.periods)

    def next_opening(self, now: datetime) -> datetime:
        """The next time the centre opens after ``now`` (local time, with its zone)."""
        for ahead in range(8):
            day = now.date() + timedelta(days=ahead)
            if day.isoweekday() not in self.days:
                continue
            for opens, _ in self.periods:
                at = datetime.combine(day, opens, tzinfo=now.tzinfo)
                if at > now:
                    return at
        raise ValueError("no opening day")  # the configuration is checked to name one

    def when_answered(self, now: datetime, reply_minutes: int) -> str:
        """What someone asking for a person is told: soon, or when the centre next opens."""
        if self.is_open(now):
            return f"技术人员会尽快回复您，一般在 {reply_minutes} 分钟内。"
        at = self.next_opening(now)
        if at.date() == now.date():
            day = "今天"
        elif at.date() == now.date() + timedelta(days=1):
            day = "明天"
        else:
            day = f"{at.month}月{at.day}日（周{WEEKDAYS[at.isoweekday() - 1]}）"
        return (f"现在是非工作时间，技术人员会在{day}{at:%H:%M}上班后尽快回复您。"
                f"工作时间：{self.text()}。")
