"""Rules of the review desk that need no database: what a rejection asks to fix, four-eyes
approval, and the checks a technician's command must pass before the lifecycle is asked."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bot.domain.fields import Field
from bot.domain.forms import Form
from bot.domain.lifecycle import PAID_TYPES, Event, OrderStatus, OrderType

# Short names a technician may write in a rejection reason, beside the label and the 附件 slot.
ALIASES: Mapping[str, tuple[str, ...]] = {
    "years": ("年限",),
    "region": ("地区",),
    "ukey_count": ("数量",),
    "handler_name": ("姓名",),
    "handler_id_number": ("身份证号",),
    "mobile": ("手机",),
    "self_pickup": ("自取", "领取方式"),
    "city": ("地级市",),
    "address": ("地址",),
    "scan_form": ("采集表",),
    "scan_reset_form": ("申请表",),
    "company_address": ("单位地址",),
    "legal_rep": ("法定代表人", "法人"),
    "company_phone": ("单位电话", "座机"),
    "scan_id_card": ("身份证复印件", "身份证扫描件", "身份证正反面"),
    "scan_authorisation": ("授权书", "承诺书"),
    "scan_licence": ("营业执照", "执照"),
}


def named_fields(form: Form, reason: str) -> list[Field]:
    """The fields and scans a rejection reason names, in form order (附件二, 手机号 …)."""
    found = []
    for f in form.fields:
        if f.preset:
            continue  # company name and USCC come from the company profile, not the form
        names = {f.label, *ALIASES.get(f.key, ())} | ({f.slot} if f.slot else set())
        if any(name in reason for name in names):
            found.append(f)
    return found


class ReviewRefused(ValueError):
    """``str(error)`` is told to the technician."""


class Logged(Protocol):
    """A row of the order log, as the four-eyes rule reads it."""

    @property
    def event(self) -> str: ...

    @property
    def actor(self) -> str: ...


def approvers_since_submission(log: Iterable[Logged]) -> list[str]:
    """Who approved since the order was last (re)submitted: a resubmission starts afresh."""
    approvers: list[str] = []
    for entry in log:
        if entry.event in (Event.SUBMIT, Event.RESUBMIT):
            approvers = []
        elif entry.event == Event.APPROVAL:
            approvers.append(entry.actor)
    return approvers


@dataclass(frozen=True)
class Approval:
    approvers: tuple[str, ...]  # since the last submission, this one last
    required: int  # [staff] approvals_required: 2 = four eyes

    @property
    def complete(self) -> bool:
        return len(self.approvers) >= self.required


def check_approval(log: Iterable[Logged], actor: str, required: int) -> Approval:
    """Four eyes: ``actor``'s approval of an order whose log is ``log`` (in order), refused
    when they approved already; complete once ``required`` different technicians agree. Who
    may approve at all (technicians) is the command's own check."""
    approvers = approvers_since_submission(log)
    if actor in approvers:
        raise ReviewRefused(f"您已经通过过该订单（{len(approvers)}/{required}），"
                            "需要另一位技术人员复核。")
    return Approval((*approvers, actor), required)


def check_delivery(values: Mapping[str, str], event: Event) -> None:
    pickup = values.get("self_pickup")
    if event is Event.SHIP and pickup == "自取":
        raise ReviewRefused("该订单选择了自取，不能发货。证书制好后请用「待自取 订单号」。")
    if event is Event.AWAIT_PICKUP and pickup == "邮寄":
        raise ReviewRefused("该订单选择了邮寄，请用「发货 订单号 快递公司 快递单号」。")


def changed_fields(form: Form, before: Mapping[str, str], after: Mapping[str, str],
                   scans_before: Mapping[str, str], scans_after: Mapping[str, str]) -> list[Field]:
    """Fields whose value, or scans whose SHA-256, differ between two versions of an order."""
    changed = []
    for f in form.fields:
        old, new = (scans_before, scans_after) if f.slot else (before, after)
        if old.get(f.key) != new.get(f.key):
            changed.append(f)
    return changed


@dataclass(frozen=True)
class StatusFilter:
    """Orders in one of ``statuses``, of one of ``types``."""

    statuses: frozenset[OrderStatus]
    types: frozenset[OrderType] = frozenset(OrderType)


def _in(*statuses: OrderStatus) -> StatusFilter:
    return StatusFilter(frozenset(statuses))


# what a technician may type after 订单 to filter by status; 待支付 is an approved order of a
# type that is paid for (as ``status_label`` reads it): an approved unlock owes nothing
STATUS_WORDS: Mapping[str, StatusFilter] = {
    "待审核": _in(OrderStatus.SUBMITTED, OrderStatus.RESUBMITTED),
    "已驳回": _in(OrderStatus.REJECTED),
    "驳回": _in(OrderStatus.REJECTED),
    "待支付": StatusFilter(frozenset({OrderStatus.APPROVED}), frozenset(PAID_TYPES)),
    "审核通过": _in(OrderStatus.APPROVED),
    "已支付": _in(OrderStatus.PAID),
    "已发货": _in(OrderStatus.SHIPPED),
    "待自取": _in(OrderStatus.AWAITING_PICKUP),
    "已完成": _in(OrderStatus.COMPLETED),
    "已取消": _in(OrderStatus.CANCELLED),
}
