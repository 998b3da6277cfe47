import dataclasses

import pytest

from bot.domain import lifecycle
from bot.domain.lifecycle import (
    FINAL,
    INITIAL,
    Event,
    LifecycleError,
    OrderStatus,
    OrderType,
    TransitionNotAllowed,
    allowed_events,
    check_lifecycles,
    next_status,
    states_of,
)

S = OrderStatus


def walk(order_type: OrderType, *events: Event) -> OrderStatus:
    status = INITIAL
    for event in events:
        status = next_status(order_type, status, event)
    return status


def test_certificate_happy_path_by_post_and_by_pickup() -> None:
    common = (Event.SUBMIT, Event.REJECT, Event.RESUBMIT, Event.REJECT, Event.RESUBMIT,
              Event.APPROVE, Event.PAY)
    assert walk(OrderType.CERTIFICATE, *common, Event.SHIP, Event.COMPLETE) is S.COMPLETED
    assert walk(OrderType.CERTIFICATE, *common, Event.AWAIT_PICKUP) is S.AWAITING_PICKUP


def test_unlock_needs_no_payment() -> None:
    assert walk(OrderType.UNLOCK, Event.SUBMIT, Event.APPROVE, Event.COMPLETE) is S.COMPLETED
    assert Event.PAY not in allowed_events(OrderType.UNLOCK, S.APPROVED)


def test_wrong_state_says_why_in_chinese() -> None:
    with pytest.raises(TransitionNotAllowed, match="该订单待支付，不能发货"):
        next_status(OrderType.CERTIFICATE, S.APPROVED, Event.SHIP)
    with pytest.raises(TransitionNotAllowed, match="该订单已完成，不能取消"):
        next_status(OrderType.CERTIFICATE, S.COMPLETED, Event.CANCEL)


@pytest.mark.parametrize("order_type", list(OrderType))
def test_every_type_is_a_sound_graph(order_type: OrderType) -> None:
    states = states_of(order_type)
    assert INITIAL in states
    assert FINAL & states
    for final in FINAL & states:
        assert allowed_events(order_type, final) == []
    for state in states - FINAL:
        assert allowed_events(order_type, state), f"{state} is a dead end"


def test_the_check_catches_a_broken_table() -> None:
    leaving_final = dataclasses.replace(
        lifecycle.TRANSITIONS[0], sources=frozenset({S.COMPLETED}), target=S.SUBMITTED)
    with pytest.raises(LifecycleError, match="final state"):
        check_lifecycles((*lifecycle.TRANSITIONS, leaving_final))
    without_complete = tuple(t for t in lifecycle.TRANSITIONS if t.event is not Event.COMPLETE)
    without_cancel_and_complete = tuple(
        t for t in without_complete if t.event is not Event.CANCEL)
    with pytest.raises(LifecycleError, match="cannot finish"):
        check_lifecycles(without_cancel_and_complete)
