"""The order log's vocabulary: one enum, every kind labelled, the lifecycle's moves apart from
the notes, and only ``move_order``/``note_order`` writing it."""

import dataclasses

import pytest

from bot.domain import lifecycle
from bot.domain.lifecycle import LifecycleError, check_lifecycles
from bot.domain.order_log import MOVES, NOTES, Event, logged_as
from bot.services.filing import note_order
from storage.models import Order


def test_every_kind_has_a_label_and_the_stored_strings_stay() -> None:
    assert all(event.label for event in Event)
    assert {e.value for e in NOTES} == {"approval", "invoice", "invoice_requested",
                                        "token_job", "cert_issued",
                                        "cert_written", "cert_hold", "cert_active",
                                        "cert_revoked", "company_recorded", "token_mismatch",
                                        "token_confirmed", "token_retry", "scans_purged",
                                        "numbers_masked", "deletion_requested",
                                        "deletion_confirmed", "deletion_refused"}
    assert Event.APPROVAL.label == "通过（待复核）"
    assert Event.INVOICE.label == "登记发票"


def test_the_lifecycle_moves_by_moves_only() -> None:
    assert {t.event for t in lifecycle.TRANSITIONS} == MOVES
    noted = dataclasses.replace(lifecycle.TRANSITIONS[0], event=Event.INVOICE)
    with pytest.raises(LifecycleError, match="invoice is a note"):
        check_lifecycles((*lifecycle.TRANSITIONS, noted))


def test_history_names_a_key_agent_job_and_its_outcome() -> None:
    assert logged_as(Event.TOKEN_JOB, {"kind": "reset_pin", "ok": True}) == \
        "密钥代理任务：重置密码完成"
    assert logged_as(Event.TOKEN_JOB, {"kind": "write_certificate", "ok": False}) == \
        "密钥代理任务：写入证书失败"
    assert logged_as(Event.TOKEN_JOB, None) == "密钥代理任务"
    assert logged_as(Event.CERT_HOLD, {"certificate": "01"}) == "证书挂失"


def test_a_move_is_not_a_note() -> None:
    with pytest.raises(ValueError, match="use move_order"):
        note_order(None, Order(), "qq:1", Event.APPROVE)  # type: ignore[arg-type]
