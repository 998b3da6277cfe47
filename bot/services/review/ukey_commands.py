"""Technicians' commands for UKEYs on record: 登记UKEY (a UKEY issued before cadesk) and
确认解锁 (the UKEY an unlock read is the company's). See bot/services/agents/ukeys.py."""

from typing import TYPE_CHECKING

from loguru import logger

from bot.domain.lifecycle import OrderStatus, OrderType
from bot.domain.order_numbers import parse_order_number
from bot.domain.review import ReviewRefused
from bot.services.agents.ukeys import record
from bot.services.messages import Account, Reply
from storage.repositories import Companies, Orders

if TYPE_CHECKING:
    from bot.services.review.desk import ReviewDesk

REGISTER_USAGE = "登记UKEY 卡号 单位名称或信用代码"
CONFIRM_USAGE = "确认解锁 订单号"


async def register_ukey(desk: "ReviewDesk", actor: Account, args: list[str],
                        private: bool) -> list[Reply]:
    """登记UKEY 卡号 单位: a UKEY issued before cadesk goes on record for its company."""
    serial, company_key = (args[0].strip(), args[1].strip()) if len(args) == 2 else ("", "")
    if not serial or not company_key:
        raise ReviewRefused(f"用法：{REGISTER_USAGE}，例如：登记UKEY 4A7F0012 临沂某某有限公司")
    async with desk.db.transaction() as session:
        companies = Companies(session)
        company = (await companies.by_uscc(company_key.upper())
                   or await companies.by_name(company_key))
        if company is None:
            raise ReviewRefused(f"没有找到单位「{company_key}」，请用完整的单位名称或统一社会"
                                "信用代码。")
        ukey, new = await record(session, serial, company, "registered", str(actor))
        name, uscc = company.name, company.uscc
    if not new:
        return [f"UKEY {serial} 已经登记在 {name}（{uscc}）名下（{ukey.source}），无需重复登记。"]
    logger.info(f"token {serial} registered for company #{ukey.company_id} by {actor}")
    return [f"已登记 UKEY {serial} 属于 {name}（{uscc}）。该单位的远程解锁和续期现在可以使用"
            "这个 UKEY；正在等待核对的解锁订单请再发「确认解锁 订单号」。"]


async def confirm_unlock(desk: "ReviewDesk", actor: Account, args: list[str],
                         private: bool) -> list[Reply]:
    """确认解锁 订单号: the UKEY the unlock read is the company's; its PIN reset is queued."""
    number = parse_order_number(args[0]) if args else None
    if number is None:
        raise ReviewRefused(f"请写上订单号。用法：{CONFIRM_USAGE}")
    async with desk.db.transaction() as session:
        order = await Orders(session).by_number(number)
    if order is None:
        raise ReviewRefused(f"没有找到订单 {number}，请核对订单号。")
    if order.type is not OrderType.UNLOCK or order.status is not OrderStatus.APPROVED:
        raise ReviewRefused("只有审核通过、尚未完成的解锁订单才能确认解锁。")
    if not desk.settings.agents.enabled:
        raise ReviewRefused("本服务未开通密钥代理。")
    return [await desk.hub.confirm_unlock(order, str(actor))]
