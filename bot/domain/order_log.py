"""The order log's vocabulary: every kind of event an order's history records, with its label.

Two sorts share one enum: the lifecycle's moves (``MOVES``, used by the transition table in
``lifecycle``) and notes that move nothing (``NOTES``: an approval awaiting its second pair of
eyes, an invoice, a key agent's job, a certificate step). The values are what the database
stores in ``order_events.event``.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Event(StrEnum):
    # moves: the lifecycle table says where each leads
    SUBMIT = "submit"
    REJECT = "reject"
    RESUBMIT = "resubmit"
    APPROVE = "approve"
    PAY = "pay"
    SHIP = "ship"
    AWAIT_PICKUP = "await_pickup"
    COMPLETE = "complete"
    CANCEL = "cancel"
    WITHDRAW = "withdraw"  # the applicant's 撤回 before any review
    # notes: logged on the order, its status unchanged
    APPROVAL = "approval"  # one technician's approval, when more are required
    INVOICE = "invoice"  # a technician's 发票: the invoice issued
    INVOICE_REQUESTED = "invoice_requested"  # the applicant's 开票: what to invoice
    TOKEN_JOB = "token_job"  # a key agent's result; detail: the job's kind and outcome
    CERT_ISSUED = "cert_issued"
    CERT_WRITTEN = "cert_written"
    CERT_HOLD = "cert_hold"
    CERT_ACTIVE = "cert_active"
    CERT_REVOKED = "cert_revoked"
    COMPANY_RECORDED = "company_recorded"  # an unregistered company's record, at approval
    TOKEN_MISMATCH = "token_mismatch"  # the UKEY read is on record for another company: stopped
    TOKEN_CONFIRMED = "token_confirmed"  # a technician confirmed the UKEY read is the company's
    TOKEN_RETRY = "token_retry"  # a failed or expired token step queued again (重新制证/重新续期)
    # retention (bot/domain/retention.py): detail says why ("retention" or "request") and what
    SCANS_PURGED = "scans_purged"  # the order's scans deleted (disk and rows); detail: slots
    NUMBERS_MASKED = "numbers_masked"  # its ID numbers and mobiles reduced to the masked form
    DELETION_REQUESTED = "deletion_requested"  # the applicant's 删除我的资料, for this order
    DELETION_CONFIRMED = "deletion_confirmed"  # a technician's 确认删除
    DELETION_REFUSED = "deletion_refused"  # a technician's 拒绝删除, with the reason

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Event.SUBMIT: "提交",
    Event.REJECT: "驳回",
    Event.RESUBMIT: "重新提交",
    Event.APPROVE: "通过",
    Event.PAY: "收款",
    Event.SHIP: "发货",
    Event.AWAIT_PICKUP: "设为待自取",
    Event.COMPLETE: "完成",
    Event.CANCEL: "取消",
    Event.WITHDRAW: "撤回",
    Event.APPROVAL: "通过（待复核）",
    Event.INVOICE: "登记发票",
    Event.INVOICE_REQUESTED: "申请开票",
    Event.TOKEN_JOB: "密钥代理任务",
    Event.CERT_ISSUED: "签发证书",
    Event.CERT_WRITTEN: "写入证书",
    Event.CERT_HOLD: "证书挂失",
    Event.CERT_ACTIVE: "证书解挂",
    Event.CERT_REVOKED: "证书吊销",
    Event.COMPANY_RECORDED: "登记单位",
    Event.TOKEN_MISMATCH: "UKEY 不属于本单位，任务停止",
    Event.TOKEN_CONFIRMED: "确认 UKEY 属于本单位",
    Event.TOKEN_RETRY: "重新安排 UKEY 任务",
    Event.SCANS_PURGED: "删除扫描件",
    Event.NUMBERS_MASKED: "隐去身份证号和手机号",
    Event.DELETION_REQUESTED: "申请删除个人资料",
    Event.DELETION_CONFIRMED: "确认删除个人资料",
    Event.DELETION_REFUSED: "拒绝删除个人资料",
}

NOTES = frozenset({Event.APPROVAL, Event.INVOICE, Event.INVOICE_REQUESTED, Event.TOKEN_JOB,
                   Event.CERT_ISSUED, Event.CERT_WRITTEN, Event.CERT_HOLD, Event.CERT_ACTIVE,
                   Event.CERT_REVOKED, Event.COMPANY_RECORDED, Event.TOKEN_MISMATCH,
                   Event.TOKEN_CONFIRMED, Event.TOKEN_RETRY, Event.SCANS_PURGED,
                   Event.NUMBERS_MASKED, Event.DELETION_REQUESTED, Event.DELETION_CONFIRMED,
                   Event.DELETION_REFUSED})
# why a purge ran, as 历史 says it
PURGE_REASONS: Mapping[str, str] = {"retention": "保存期满", "request": "应申请人要求"}
MOVES = frozenset(Event) - NOTES

# what a key agent's job does, as 解锁状态 and 历史 name it
TOKEN_JOB_NAMES: Mapping[str, str] = {
    "token_info": "读取 UKEY", "reset_pin": "重置密码", "personalise": "初始化 UKEY",
    "request": "生成证书请求", "write_certificate": "写入证书",
}


def logged_as(event: Event, detail: Mapping[str, Any] | None) -> str:
    """How 历史 names a logged event: a key agent's job says which job and how it ended."""
    job = (detail or {}).get("kind")
    if event is Event.TOKEN_JOB and job in TOKEN_JOB_NAMES:
        detail = detail or {}
        outcome = ("过期未完成" if detail.get("expired") else
                   ("完成" if detail.get("ok") else "失败")
                   + ("（任务过期后送回）" if detail.get("late") else ""))
        return f"{event.label}：{TOKEN_JOB_NAMES[job]}{outcome}"
    if event in (Event.SCANS_PURGED, Event.NUMBERS_MASKED) and detail:
        why = PURGE_REASONS.get(detail.get("why", ""), "")
        count = f"（{detail['count']} 个文件）" if detail.get("count") else ""
        return f"{event.label}{count}" + (f"：{why}" if why else "")
    if event is Event.COMPANY_RECORDED and detail:
        how = "并入已登记的单位" if detail.get("joined") else "新建单位档案"
        return f"{event.label}：{how}【{detail.get('name')}】{detail.get('uscc')}"
    return event.label
