"""UKEYs belong to companies: a job that changes a token (``reset_pin``, ``request``,
``write_certificate``) is queued only for a serial on record for the order's company.

A serial gets on record three ways (``Ukey.source``): ``issued`` when 制证 makes the UKEY,
``registered`` by a technician (登记UKEY, for UKEYs issued before cadesk), ``confirmed`` when a
technician confirms what ``token_info`` read for an unlock (确认解锁). A serial on record for one
company is never recorded for another: a technician sorts that out by hand.
"""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.review import ReviewRefused
from storage.models import Company, Ukey
from storage.repositories import Ukeys

GUARDED = frozenset({"reset_pin", "request", "write_certificate"})  # jobs that change a token


class UkeyRefused(ReviewRefused):
    """A token job or a record refused: the serial is not the company's. Told to technicians."""


def whose(ukey: Ukey) -> str:
    return f"{ukey.company.name}（{ukey.company.uscc}）"


async def require_on_record(session: AsyncSession, company_id: int | None, serial: str | None,
                            kind: str) -> None:
    """Refuses a guarded job for a serial that is not on record for this company."""
    if kind not in GUARDED:
        return
    ukey = await Ukeys(session).by_serial(serial or "")
    if ukey is None:
        raise UkeyRefused(f"UKEY {serial} 没有登记，未安排任务。核实归属后可「登记UKEY "
                          f"{serial} 单位名称」。")
    if ukey.company_id != company_id:
        raise UkeyRefused(f"UKEY {serial} 登记在 {whose(ukey)} 名下，不是本订单的单位，"
                          "未安排任务。")


async def record(session: AsyncSession, serial: str, company: Company, source: str,
                 by: str) -> tuple[Ukey, bool]:
    """Put the serial on record for the company; (the record, True when new). Idempotent for
    the same company; refused (naming the owner) when it is on record for another."""
    ukeys = Ukeys(session)
    ukey = await ukeys.by_serial(serial)
    if ukey is not None:
        if ukey.company_id != company.id:
            raise UkeyRefused(f"UKEY {serial} 已登记在 {whose(ukey)} 名下，不能再登记给 "
                              f"{company.name}。请核对卡号，或与这两个单位核实 UKEY 的归属。")
        return ukey, False
    return await ukeys.add(Ukey(token_serial=serial, company_id=company.id, source=source,
                                recorded_by=by)), True


def what_was_read(token: dict[str, Any]) -> str:
    """The serial and the certificates ``token_info`` reported, for the technicians."""
    certificates = token.get("certificates") or []
    lines = [f"UKEY 卡号 {token.get('serial')}"]
    if not certificates:
        lines.append("UKEY 里没有证书。")
    for cert in certificates:
        lines.append(f"证书：{cert.get('subject', '')}（序列号 {cert.get('serial_number', '')}）")
    return "\n".join(lines)
