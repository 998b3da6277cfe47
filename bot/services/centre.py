"""The service centre as applicants read it, from bot.toml ``[centre]``, ``[fees]`` and
``[[faq]]``: how to reach it, what things cost, and the questions answered without a person.

Every text that sends someone to the centre says ``please_contact(...)``, so the phone and QQ
are written in one place."""

from datetime import datetime

from bot.config import CentreSection, Settings
from bot.domain.fees import price_list, years_of
from bot.domain.forms import CERTIFICATE


def reach(centre: CentreSection) -> str:
    """「临沂CA数字证书服务中心（电话 0539-8123456，QQ 800012345）」: who, and how to reach them."""
    ways = "，".join(w for w in (centre.phone and f"电话 {centre.phone}",
                                 centre.qq and f"QQ {centre.qq}") if w)
    return centre.name + (f"（{ways}）" if ways else "")


def please_contact(settings: Settings) -> str:
    """The end of every refusal that needs a person: 「请联系…」 with the phone and QQ."""
    return f"请联系{reach(settings.centre)}。"


def contact_line(settings: Settings) -> str:
    """Everything about reaching the centre, in one line: the menu's footer, the FAQ's
    {contact}."""
    centre = settings.centre
    parts = [reach(centre)]
    if centre.address:
        parts.append(f"地址：{centre.address}")
    parts.append(f"工作时间：{centre.hours().text()}")
    return "；".join(parts) + "。"


def fees_line(settings: Settings, certificates: bool = True) -> str:
    """收费标准 for the menu and the FAQ."""
    terms = tuple(years_of({"years": c}) for c in CERTIFICATE.field("years").choices)
    return price_list(settings.fees, terms, certificates)


def pickup_line(settings: Settings) -> str:
    """Where and when a 待自取 certificate is collected."""
    centre = settings.centre
    where = f"地址：{centre.address}；" if centre.address else ""
    return f"{centre.pickup_notes}{where}工作时间：{centre.hours().text()}。"


def menu_footer(settings: Settings, certificates: bool) -> str:
    return f"{fees_line(settings, certificates)}\n{contact_line(settings)}"


def faq_answers(settings: Settings, text: str) -> list[str]:
    """The answers of every ``[[faq]]`` entry with a keyword in ``text``, in the file's order."""
    typed = text.lower()
    matched = [entry for entry in settings.faq if any(k.lower() in typed for k in entry.keywords)]
    if not matched:  # most messages are form answers: nothing to fill in for them
        return []
    centre = settings.centre
    values = {"name": centre.name, "phone": centre.phone or "（未公布）",
              "qq": centre.qq or "（未公布）", "address": centre.address or "（未公布）",
              "hours": centre.hours().text(), "contact": contact_line(settings),
              "fees": fees_line(settings, certificates=settings.pki.enabled),
              "pickup": pickup_line(settings)}
    return [entry.answer.format(**values) for entry in matched]


def when_answered(settings: Settings, now: datetime) -> str:
    """What someone asking for a person is told about when to expect the answer."""
    return settings.centre.hours().when_answered(now.astimezone(settings.tz),
                                                 settings.centre.reply_minutes)
