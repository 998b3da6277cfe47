"""Invoices: what a company asks to be invoiced (the 开票 form, kept on the order under
``invoice["request"]``), who may ask, and the file a technician attaches to the invoice issued
(an electronic invoice's PDF, or a photo of a paper one)."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.domain.forms import INVOICE
from bot.domain.lifecycle import OrderStatus

PDF = "application/pdf"


class InvalidInvoiceFile(ValueError):
    """Not a file an invoice comes as; ``str`` says so in Chinese."""


@dataclass(frozen=True)
class InvoiceFile:
    content_type: str
    suffix: str

    @property
    def picture(self) -> bool:
        """Shown in the chat itself; a PDF goes by mail (chat platforms take no PDF)."""
        return self.content_type != PDF


_MAGIC = ((b"%PDF-", InvoiceFile(PDF, ".pdf")),
          (b"\xff\xd8\xff", InvoiceFile("image/jpeg", ".jpg")),
          (b"\x89PNG\r\n\x1a\n", InvoiceFile("image/png", ".png")))


def invoice_file(data: bytes) -> InvoiceFile:
    """What the bytes are, by their first bytes (never by a file name)."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    raise InvalidInvoiceFile("发票文件须为 PDF（电子发票）或 JPG、PNG 图片。")


def invoice_refused(status: OrderStatus, amount_cents: int | None,
                    invoice: Mapping[str, Any] | None) -> str | None:
    """Why an order cannot be invoiced (None: it can)."""
    if status is OrderStatus.CANCELLED:
        return "该订单已取消，不能开票。"
    if not amount_cents:
        return "该订单不收费，无需开票。"
    if invoice and invoice.get("issued"):
        return f"该订单的发票已开具（{invoice['issued'].get('number')}），不能重复申请。"
    return None


def describe_request(request: Mapping[str, Any]) -> str:
    """The request in one line, labelled as the form labels it."""
    return "；".join(f"{f.label}：{request[f.key]}" for f in INVOICE.fields
                     if f.key in request and f.key != "order_number")
