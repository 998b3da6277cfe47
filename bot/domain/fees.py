"""What an order costs, from the centre's fee table (bot.toml ``[fees]``).

A certificate is charged per UKEY and by its 证书年限: a flat price is per UKEY per year (2 UKEYs
× 2年 at 260 is 1040), a table by years sets each term's price per UKEY (a discount for longer
terms). The other order types cost one price per order; a binding is never charged for.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from bot.domain.lifecycle import OrderType
from bot.domain.orders import yuan

# a flat price, or a price per 证书年限 (years → yuan)
Price = Decimal | Mapping[int, Decimal]
Fees = Mapping[OrderType, Price]

_YEARS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Quote:
    cents: int
    detail: str = ""  # how it is made up, e.g. 「2 个 UKEY × 2年，每个 ¥520.00」

    @property
    def line(self) -> str:
        """The summary's and the menu's way of saying it: 「费用：¥1040.00（…）」 or 免费."""
        if not self.cents:
            return "费用：免费"
        return f"费用：{yuan(self.cents)}" + (f"（{self.detail}）" if self.detail else "")


def years_of(values: Mapping[str, str]) -> int:
    """证书年限 as a number of years ("2年" → 2); 1 when not (yet) answered."""
    found = _YEARS.search(values.get("years", ""))
    return int(found.group(1)) if found else 1


def unit_price(price: Price, years: int) -> Decimal:
    """One UKEY's price for a term of ``years``."""
    if isinstance(price, Mapping):
        return price[years]  # the configuration is checked to cover every term offered
    return price * years


def _cents(value: Decimal) -> int:
    return int((value * 100).to_integral_value())


def quote(order_type: OrderType, values: Mapping[str, str], fees: Fees) -> Quote:
    """The price of an order of ``order_type`` with the answers ``values``, explained."""
    if order_type is OrderType.BINDING:
        return Quote(0)  # binding a company is never charged for
    price = fees.get(order_type, Decimal(0))
    if order_type is not OrderType.CERTIFICATE:
        return Quote(_cents(unit_price(price, 1)))
    years = years_of(values)
    count = int(values.get("ukey_count") or "1")
    each = _cents(unit_price(price, years))
    return Quote(each * count, f"{count} 个 UKEY × {years}年，每个 {yuan(each)}")


def amount_cents(order_type: OrderType, values: Mapping[str, str], fees: Fees) -> int:
    return quote(order_type, values, fees).cents


def price_list(fees: Fees, years_offered: tuple[int, ...], certificates: bool) -> str:
    """The menu's 收费标准 line: what each kind of order costs, free ones named as free."""
    price = fees.get(OrderType.CERTIFICATE, Decimal(0))
    terms = "，".join(f"{y}年 {yuan(_cents(unit_price(price, y)))}" for y in years_offered)
    parts = [f"新办/补办证书每个 UKEY {terms}" if _cents(unit_price(price, 1)) else
             "新办/补办证书免费"]
    named = [(OrderType.RENEWAL, "续期")] if certificates else []
    named += [(OrderType.UNLOCK, "解锁")]
    named += [(OrderType.LOSS, "挂失/解挂")] if certificates else []
    free = []
    for order_type, label in named:
        cents = _cents(unit_price(fees.get(order_type, Decimal(0)), 1))
        if cents:
            parts.append(f"{label}每单 {yuan(cents)}")
        else:
            free.append(label)
    if free:
        parts.append("、".join(free) + "免费")
    return "收费标准：" + "；".join(parts) + "。"
