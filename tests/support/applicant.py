"""An applicant talking to the dialogue service directly, without nonebot."""

import random
from pathlib import Path

from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_uscc
from bot.services.messages import Account, ImageSource, Incoming, Picture, Reply

RNG = random.Random(99)


async def say(runtime: Runtime, account: Account, text: str = "", *paths: Path,
              ref: str | None = None) -> str:
    """One message (text, and images read from ``paths``; ``ref``: the platform's id of it);
    the replies as one text (a picture as 「（图片：its caption）」)."""
    return "\n".join(map(as_text, await replies_to(runtime, account, text, *paths, ref=ref)))


async def replies_to(runtime: Runtime, account: Account, text: str = "",
                     *paths: Path, ref: str | None = None) -> list[Reply]:
    """One message; the replies as sent, pictures included."""
    incoming = Incoming(text=text, images=tuple(ImageSource(path=p) for p in paths), ref=ref)
    return await runtime.dialogue.handle(account, incoming)


def as_text(reply: Reply) -> str:
    return f"（图片：{reply.alt}）" if isinstance(reply, Picture) else reply


async def apply_until_summary(runtime: Runtime, account: Account, scans: list[Path]) -> None:
    """Bind a new company and fill a 新办证书 form up to its summary (not yet submitted)."""
    await bind(runtime, account, fake_uscc(RNG), "临沂测试建设有限公司")
    for text in ("取消", "是", "新办证书", "1", "临沂",
                 "2", "张三", fake_id_number(RNG), "13812345678", "自取"):
        await say(runtime, account, text)
    assert "请核对" in await say(runtime, account, "", *scans)


DECLARANT, DECLARANT_MOBILE = "王小明", "13812345678"


async def bind(runtime: Runtime, account: Account, uscc: str, company: str,
               declarant: str = DECLARANT, mobile: str = DECLARANT_MOBILE) -> str:
    """Answer the binding questions (the account is then bound, pending); the last replies."""
    reply = ""
    for text in ("你好", uscc, company, "同意", declarant, mobile):
        reply = await say(runtime, account, text)
    return reply


async def send_binding_documents(runtime: Runtime, account: Account, scans: list[Path],
                                 rng: random.Random = RNG) -> str:
    """A first account's request form (open after ``bind``) filled and submitted; its number."""
    for text in ("施工单位", fake_id_number(rng)):
        await say(runtime, account, text)
    await say(runtime, account, "", *scans[:2])
    reply = await say(runtime, account, "确认提交")
    assert "绑定申请已提交" in reply, reply
    return reply.split("编号 ", 1)[1].split("。", 1)[0]


async def verify(runtime: Runtime, account: Account) -> None:
    """Mark the account's binding verified, for tests about something else than binding."""
    from bot.domain.trust import HandlerStatus
    from storage.repositories import Handlers

    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(account.platform, account.user_id)
        assert handler is not None
        handler.status = HandlerStatus.VERIFIED


async def bind_verified(runtime: Runtime, account: Account, uscc: str, company: str) -> None:
    """Bound and verified, the request form put aside: ready for any command."""
    await bind(runtime, account, uscc, company)
    if "单位绑定核验" in await say(runtime, account, "取消"):
        await say(runtime, account, "是")
    await verify(runtime, account)
