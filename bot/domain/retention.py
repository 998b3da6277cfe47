"""How long personal information is kept (China's PIPL art. 19: no longer than its purpose
needs), as rules the purge applies: which orders are past which term, and what a finished
order's answers read like once its ID numbers and mobiles are reduced to their masked form.

Only finished orders (``lifecycle.FINAL``) are ever touched: an open order still needs its
scans and numbers. Certificates and the CRL history are the CA's record and are kept.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.domain.forms import form_for
from bot.domain.lifecycle import FINAL, OrderStatus, OrderType
from bot.domain.masking import mask_id_number, mask_mobile, mask_personal_numbers

# the masks that hide a personal number; a name's mask (mask_name) is not one of them
NUMBER_MASKS = (mask_id_number, mask_mobile)


@dataclass(frozen=True)
class RetentionTerms:
    """The terms of ``[retention]``, as durations."""

    scans: timedelta  # a finished order's scans are deleted after this
    numbers: timedelta  # ... its ID numbers and mobiles masked after this
    drafts: timedelta  # a form left unfinished this long is dropped
    outbox: timedelta  # a sent (or given-up) mail or chat notice is deleted after this
    rejected: timedelta  # a rejected order nobody corrected this long is cancelled

    def cutoffs(self, now: datetime) -> "Cutoffs":
        return Cutoffs(now - self.scans, now - self.numbers, now - self.drafts,
                       now - self.outbox, now - self.rejected)


@dataclass(frozen=True)
class Cutoffs:
    """What finished (or was last touched) before these instants is due."""

    scans: datetime
    numbers: datetime
    drafts: datetime
    outbox: datetime
    rejected: datetime


def is_finished(status: OrderStatus) -> bool:
    """Whether retention may touch the order: never while it is open."""
    return status in FINAL


def masked_fields(order_type: OrderType, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The order's answers with every ID number and mobile reduced to its masked form (by its
    form's own mask: one source of truth), and numbers inside free text starred. Masking a
    masked value changes nothing, so this may run twice."""
    form = form_for(order_type)
    masks = {f.key: f.mask for f in (form.fields if form else ()) if f.mask in NUMBER_MASKS}
    result: dict[str, Any] = {}
    for key, value in fields.items():
        if not isinstance(value, str):
            result[key] = value
        elif (mask := masks.get(key)) is not None:
            result[key] = mask(value)
        else:  # an address or a note may quote a mobile too
            result[key] = mask_personal_numbers(value)
    return result


def masked_invoice(invoice: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The 开票 request's texts (地址电话 holds a number) with personal numbers starred."""
    if invoice is None:
        return None
    request = invoice.get("request")
    if not isinstance(request, Mapping):
        return dict(invoice)
    return {**invoice, "request": {k: mask_personal_numbers(v) if isinstance(v, str) else v
                                   for k, v in request.items()}}
