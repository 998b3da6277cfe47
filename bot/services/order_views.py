"""How orders read in a chat: the order list with SPEC.md's columns, and one order in full."""

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.domain.fields import FieldKind
from bot.domain.forms import form_for
from bot.domain.invoices import describe_request
from bot.domain.lifecycle import Event, OrderType, status_label
from bot.domain.masking import mask_personal_numbers
from bot.domain.orders import fee_text, order_title
from bot.domain.scans import ScanInfo
from storage.models import Order, OrderEvent


def _local(at: datetime | None, tz: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return at.astimezone(tz).strftime(fmt) if at else "—"


UNREGISTERED = "单位未登记"


def company_label(order: Order) -> str:
    """The company an order goes by in a list: its record's name, or (an unlock mail from a
    USCC not on record) the name the mail claims, marked 单位未登记."""
    if order.company is not None:
        return order.company.name
    return f"{order.fields.get('company_name') or '—'}【{UNREGISTERED}】"


def company_warning(order: Order) -> str | None:
    """What the reviewer must check about the company: a claim not on record, or a claimed name
    unlike the record of the USCC the order was filed under."""
    claimed = order.fields.get("company_name")
    if order.company is None:
        then = ("审核通过时按此名称和信用代码登记新单位，驳回则不登记。"
                if order.type is OrderType.UNLOCK else "")
        return (f"⚠ {UNREGISTERED}：信用代码 {order.fields.get('uscc') or '—'} 不在单位档案中，"
                f"单位名称「{claimed or '—'}」是申请人自述，请核对营业执照。{then}")
    if claimed and claimed != order.company.name:
        return (f"⚠ 单位名称不一致：申请中写的是「{claimed}」，信用代码 {order.company.uscc} "
                f"登记的是「{order.company.name}」。订单按信用代码归入已登记的单位，"
                "请核对营业执照。")
    return None


def _columns(order: Order, tz: ZoneInfo) -> list[str]:
    express = " ".join(filter(None, (order.express_company, order.express_number))) or "—"
    return [
        f"订单号：{order.number}",
        f"项目：{order.fields.get('region', '—')}　名称：{company_label(order)}",
        f"订单类型：{order_title(order.type, order.fields)}　"
        f"订单日期：{_local(order.submitted_at or order.created_at, tz, '%Y-%m-%d')}　"
        f"金额：{fee_text(order.amount_cents)}",
        f"订单状态：{status_label(order.type, order.status)}",
        f"驳回信息：{order.reject_reason or '—'}",
        f"快递单号：{express}　发票信息：{order.invoice_info or '—'}",
        *([f"证书序列号：{order.certificate_serial}　UKEY 卡号：{order.token_serial}"]
          if order.certificate_serial else []),
    ]


def _purged_scans(events: Sequence[OrderEvent], tz: ZoneInfo) -> dict[str, str]:
    """The scans deleted by retention or at the applicant's request, by slot: what 查看 says
    in their place (the rows are gone; the order log remembers)."""
    said: dict[str, str] = {}
    for e in events:
        if e.event is Event.SCANS_PURGED:
            why = ("应申请人要求删除" if (e.detail or {}).get("why") == "request"
                   else "附件已按保存期限删除")
            for slot in (e.detail or {}).get("slots", []):
                said[slot] = f"{why}（{_local(e.at, tz, '%Y-%m-%d')}）"
    return said


def order_list(company_name: str, orders: Sequence[Order], total: int, tz: ZoneInfo) -> str:
    if not orders:
        return f"【{company_name}】还没有订单。回复「新办证书」开始办理。"
    head = f"【{company_name}】的订单" + (f"（最近 {len(orders)} 个，共 {total} 个）"
                                          if total > len(orders) else f"（共 {total} 个）")
    blocks = [head]
    for i, order in enumerate(orders, 1):
        first, *rest = _columns(order, tz)
        blocks.append("\n".join([f"{i}. {first}", *(f"   {line}" for line in rest)]))
    blocks.append("回复「查询 订单号」查看某个订单的详情。")
    return "\n".join(blocks)


def order_detail(order: Order, events: Sequence[OrderEvent], tz: ZoneInfo,
                 reveal: bool = False) -> str:
    """One order in full; ID and mobile numbers masked unless ``reveal`` (a technician in a
    private chat)."""
    lines = _columns(order, tz)
    if request := (order.invoice or {}).get("request"):
        described = describe_request(request)
        lines.append(f"开票申请：{described if reveal else mask_personal_numbers(described)}")
    if warning := company_warning(order):
        lines.append(warning)
    form = form_for(order.type)
    if form:
        lines.append("—— 申请信息 ——")
        for f in form.fields:
            if f.kind is not FieldKind.SCAN and f.key in order.fields:
                value = order.fields[f.key]
                lines.append(f"{f.label}：{value if reveal else f.shown(value)}")
        current = {a.slot: a for a in order.attachments}  # later revisions win
        purged = _purged_scans(events, tz)
        for f in form.fields:
            if f.kind is FieldKind.SCAN and f.key in current:
                a = current[f.key]
                shown = ScanInfo(a.sha256, a.format, a.size, a.width, a.height).describe()
                lines.append(f"{f.title}：已上传（{shown}）")
            elif f.kind is FieldKind.SCAN and f.key in purged:
                lines.append(f"{f.title}：{purged[f.key]}")
    if order.channel == "email":
        body = order.fields.get("mail_body", "")
        body = body if reveal else mask_personal_numbers(body)
        lines += ["—— 来自解锁邮箱 ——", f"发件人：{order.contact_email}",
                  f"邮件主题：{order.fields.get('mail_subject', '')}",
                  f"邮件正文：{body[:300] + ('…' if len(body) > 300 else '') or '（空）'}"]
    if events:
        lines.append("—— 办理进度 ——")
        for e in events:
            why = f"（{e.reason}）" if e.reason else ""
            lines.append(f"{_local(e.at, tz)} {status_label(order.type, e.to_status)}{why}")
    return "\n".join(lines)
