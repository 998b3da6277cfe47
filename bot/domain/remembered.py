"""Answers a new form offers again: what the company's earlier orders held (经办人, 单位地址,
法定代表人, the delivery address), so a returning clerk confirms each with one reply.

Which orders may be read is the service's decision (the same company's, filed by its verified
handlers, or the account's own); this module decides which answers travel and keeps those that
belong together (one person's name, ID number and mobile) from one order.
"""

from collections.abc import Iterable, Mapping

from bot.domain.fields import FieldKind
from bot.domain.forms import Form
from bot.domain.validators import InvalidAnswer

# Each group is taken whole from the newest order that answered any of it: a name is never
# offered with another person's ID number, nor a street with another order's city.
GROUPS: tuple[tuple[str, ...], ...] = (
    ("handler_name", "handler_id_number", "mobile"),
    ("company_address", "legal_rep", "company_phone"),
    ("self_pickup", "city", "address"),
    ("region",),
)


def remembered(form: Form, earlier: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The answers ``form`` may offer, from ``earlier`` orders' values (newest first). A value
    its field would refuse today is left out."""
    asked = {f.key: f for f in form.fields if not f.preset and f.kind is not FieldKind.SCAN}
    wanted = [[k for k in group if k in asked] for group in GROUPS]
    offers: dict[str, str] = {}
    for values in earlier:
        for group in [g for g in wanted if g]:
            if any(k in values for k in group):
                offers.update({k: values[k] for k in group if k in values})
                group.clear()  # the newest order answering it decides the whole group
    checked = {}
    for key, value in offers.items():
        try:
            checked[key] = asked[key].check(value)
        except InvalidAnswer:
            continue
    return checked


def suggested_region(form: Form, city: str | None) -> dict[str, str]:
    """项目所属地区 suggested from the centre's city (「临沂市」 or 「临沂」), when it is one of the
    field's choices; nothing otherwise."""
    field = next((f for f in form.fields if f.key == "region" and not f.preset), None)
    if field is None or not city:
        return {}
    for typed in (city.strip(), city.strip().removesuffix("市")):
        if typed in field.choices:
            return {"region": typed}
    return {}
