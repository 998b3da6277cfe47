"""Order types and the order lifecycle, as one explicit transition table.

Every order type is an entry in the table; ``check_lifecycles`` proves at import time that each
type's graph is sound (one initial state, nothing leaves a final state, every state reachable,
every state can finish), in the manner of python-statemachine's factory checks. The table's
events are the moves of ``order_log.Event`` (re-exported here); the log's notes move nothing.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from bot.domain.order_log import NOTES, Event


class OrderType(StrEnum):
    CERTIFICATE = "certificate"  # 证书新办 / 补办
    RENEWAL = "renewal"  # 证书续期
    UNLOCK = "unlock"  # 证书解锁
    LOSS = "loss"  # 证书挂失 / 解挂
    BINDING = "binding"  # 单位绑定: a chat account asks to act for a company (bot/domain/trust.py)

    @property
    def label(self) -> str:
        return _TYPE_LABELS[self]


_TYPE_LABELS = {
    OrderType.CERTIFICATE: "证书新办/补办",
    OrderType.RENEWAL: "证书续期",
    OrderType.UNLOCK: "证书解锁",
    OrderType.LOSS: "证书挂失/解挂",
    OrderType.BINDING: "单位绑定",
}


class OrderStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    REJECTED = "rejected"
    RESUBMITTED = "resubmitted"
    APPROVED = "approved"
    PAID = "paid"
    SHIPPED = "shipped"
    AWAITING_PICKUP = "awaiting_pickup"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


INITIAL = OrderStatus.DRAFT
FINAL = frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELLED})

_STATUS_LABELS = {
    OrderStatus.DRAFT: "填写中",
    OrderStatus.SUBMITTED: "待审核",
    OrderStatus.REJECTED: "已驳回",
    OrderStatus.RESUBMITTED: "已重新提交，待审核",
    OrderStatus.APPROVED: "审核通过",
    OrderStatus.PAID: "已支付",
    OrderStatus.SHIPPED: "已发货",
    OrderStatus.AWAITING_PICKUP: "待自取",
    OrderStatus.COMPLETED: "已完成",
    OrderStatus.CANCELLED: "已取消",
}


@dataclass(frozen=True)
class Transition:
    event: Event
    sources: frozenset[OrderStatus]
    target: OrderStatus
    types: frozenset[OrderType]


def _row(event: Event, sources: Iterable[OrderStatus], target: OrderStatus,
         types: Iterable[OrderType] = tuple(OrderType)) -> Transition:
    return Transition(event, frozenset(sources), target, frozenset(types))


S = OrderStatus
PAID_TYPES = (OrderType.CERTIFICATE, OrderType.RENEWAL)  # these are paid for
# free; a binding is approved and completed in one transaction (the account is then verified)
FREE_TYPES = (OrderType.UNLOCK, OrderType.LOSS, OrderType.BINDING)
IN_REVIEW = (S.SUBMITTED, S.RESUBMITTED)

TRANSITIONS: tuple[Transition, ...] = (
    _row(Event.SUBMIT, [S.DRAFT], S.SUBMITTED),
    _row(Event.REJECT, IN_REVIEW, S.REJECTED),
    _row(Event.RESUBMIT, [S.REJECTED], S.RESUBMITTED),
    _row(Event.APPROVE, IN_REVIEW, S.APPROVED),
    _row(Event.PAY, [S.APPROVED], S.PAID, PAID_TYPES),
    _row(Event.SHIP, [S.PAID], S.SHIPPED, [OrderType.CERTIFICATE]),
    _row(Event.AWAIT_PICKUP, [S.PAID], S.AWAITING_PICKUP, [OrderType.CERTIFICATE]),
    _row(Event.COMPLETE, [S.SHIPPED, S.AWAITING_PICKUP], S.COMPLETED, [OrderType.CERTIFICATE]),
    _row(Event.COMPLETE, [S.PAID], S.COMPLETED, [OrderType.RENEWAL]),
    _row(Event.COMPLETE, [S.APPROVED], S.COMPLETED, FREE_TYPES),
    # the applicant's 撤回: only before review (bot/domain/withdrawal.py says what else counts)
    _row(Event.WITHDRAW, IN_REVIEW, S.CANCELLED),
    _row(Event.CANCEL, [S.DRAFT, S.SUBMITTED, S.REJECTED, S.RESUBMITTED, S.APPROVED], S.CANCELLED),
)


class TransitionNotAllowed(ValueError):
    """``str(error)`` says why, e.g. 该订单待支付，不能发货."""


def status_label(order_type: OrderType, status: OrderStatus) -> str:
    if status is OrderStatus.APPROVED and order_type in PAID_TYPES:
        return "待支付"
    return _STATUS_LABELS[status]


def transitions_for(order_type: OrderType) -> list[Transition]:
    return [t for t in TRANSITIONS if order_type in t.types]


def allowed_events(order_type: OrderType, status: OrderStatus) -> list[Event]:
    return [t.event for t in transitions_for(order_type) if status in t.sources]


def next_status(order_type: OrderType, status: OrderStatus, event: Event) -> OrderStatus:
    for t in transitions_for(order_type):
        if t.event is event and status in t.sources:
            return t.target
    raise TransitionNotAllowed(f"该订单{status_label(order_type, status)}，不能{event.label}。")


def states_of(order_type: OrderType) -> set[OrderStatus]:
    states = {INITIAL}
    for t in transitions_for(order_type):
        states |= t.sources | {t.target}
    return states


class LifecycleError(AssertionError):
    """The transition table itself is wrong: a programming error, found at import time."""


def check_lifecycles(transitions: tuple[Transition, ...] = TRANSITIONS) -> None:
    for t in transitions:
        if t.event in NOTES:
            raise LifecycleError(f"{t.event} is a note in the order log: it moves nothing")
    for order_type in OrderType:
        rows = [t for t in transitions if order_type in t.types]
        states = {INITIAL} | {s for t in rows for s in (*t.sources, t.target)}
        edges = {(s, t.target) for t in rows for s in t.sources}
        for source, _ in edges:
            if source in FINAL:
                raise LifecycleError(f"{order_type}: the final state {source} has a way out")
        if any(target == INITIAL for _, target in edges):
            raise LifecycleError(f"{order_type}: something leads back into {INITIAL}")
        seen = {(t.event, s) for t in rows for s in t.sources}
        if len(seen) != sum(len(t.sources) for t in rows):
            raise LifecycleError(f"{order_type}: one event leads two ways from one state")
        reachable = _closure({INITIAL}, edges)
        if states - reachable:
            raise LifecycleError(f"{order_type}: unreachable {sorted(states - reachable)}")
        reversed_edges = {(b, a) for a, b in edges}
        finishing = _closure(set(FINAL & states), reversed_edges)
        if states - finishing:
            raise LifecycleError(f"{order_type}: cannot finish from {sorted(states - finishing)}")


def _closure(start: set[OrderStatus], edges: set[tuple[OrderStatus, OrderStatus]]) -> set:
    seen, frontier = set(start), list(start)
    while frontier:
        node = frontier.pop()
        for a, b in edges:
            if a == node and b not in seen:
                seen.add(b)
                frontier.append(b)
    return seen


check_lifecycles()
