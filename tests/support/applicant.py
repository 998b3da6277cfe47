"""An applicant talking to the dialogue service directly, without nonebot."""

import random
from pathlib import Path

from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_uscc
from bot.services.messages import Account, ImageSource, Incoming

RNG = random.Random(99)


async def say(runtime: Runtime, account: Account, text: str = "", *paths: Path) -> str:
    """One message (text, and images read from ``paths``); the replies as one text."""
    incoming = Incoming(text=text, images=tuple(ImageSource(path=p) for p in paths))
    return "\n".join(await runtime.dialogue.handle(account, incoming))


async def apply_until_summary(runtime: Runtime, account: Account, scans: list[Path]) -> None:
    """Bind a new company and fill a 新办证书 form up to its summary (not yet submitted)."""
    for text in ("你好", fake_uscc(RNG), "临沂测试建设有限公司", "同意", "新办证书", "1", "临沂",
                 "2", "张三", fake_id_number(RNG), "13812345678", "自取"):
        await say(runtime, account, text)
    assert "请核对" in await say(runtime, account, "", *scans)
