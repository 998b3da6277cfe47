"""Facts about an order that do not need a database: its number prefix, its name, how its
amount reads (what it costs is ``bot.domain.fees``)."""

from collections.abc import Mapping

from bot.domain.lifecycle import OrderType

# Two letters at the head of the order number, by type (and 办理类型 where it splits a type).
_PREFIXES = {
    (OrderType.CERTIFICATE, "新办"): "XB",
    (OrderType.CERTIFICATE, "补办"): "BB",
    (OrderType.RENEWAL, ""): "XQ",
    (OrderType.UNLOCK, ""): "JS",
    (OrderType.LOSS, "挂失"): "GS",
    (OrderType.LOSS, "解挂"): "JG",
    (OrderType.BINDING, ""): "BD",
}


def _kind(values: Mapping[str, str]) -> str:
    return values.get("apply_kind", "")


def number_prefix(order_type: OrderType, values: Mapping[str, str]) -> str:
    return _PREFIXES.get((order_type, _kind(values))) or _PREFIXES[(order_type, "")]


def order_title(order_type: OrderType, values: Mapping[str, str]) -> str:
    """证书新办, 证书补办, 证书续期, 证书解锁, 证书挂失, 证书解挂."""
    kind = _kind(values)
    return f"证书{kind}" if kind else order_type.label


def yuan(cents: int | None) -> str:
    return "—" if cents is None else f"¥{cents / 100:.2f}"


def fee_text(cents: int | None) -> str:
    """An order's amount in a list: a free order reads 免费, never ¥0.00."""
    return "免费" if cents == 0 else yuan(cents)
