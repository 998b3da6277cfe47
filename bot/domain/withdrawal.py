"""The applicant's 撤回: which orders may still be withdrawn, and why the others may not.

An order may be withdrawn while nobody has reviewed it: it waits for review (submitted or
resubmitted) and no technician has approved it since it was last (re)submitted. With four-eyes
review (``[staff] approvals_required = 2``) the first approval already counts as a review: a
technician has looked at the scans and vouched for them, so the order is no longer the
applicant's to take back. A 挂失 is never withdrawn: its certificate went on hold when it was
filed, and only a reviewed 解挂 releases it.
"""

from collections.abc import Iterable, Mapping

from bot.domain.lifecycle import IN_REVIEW, Event, OrderStatus, OrderType, next_status
from bot.domain.review import Logged, approvers_since_submission


class WithdrawalRefused(ValueError):
    """``str(error)`` tells the applicant why the order cannot be withdrawn; ``ask_staff``: a
    person may still cancel it (the caller adds how to reach the centre)."""

    def __init__(self, message: str, ask_staff: bool = True) -> None:
        super().__init__(message)
        self.ask_staff = ask_staff


def check_withdrawal(number: str, order_type: OrderType, status: OrderStatus,
                     values: Mapping[str, str], log: Iterable[Logged]) -> None:
    """Raise ``WithdrawalRefused`` unless the order may be withdrawn now."""
    if order_type is OrderType.LOSS and values.get("apply_kind") == "挂失":
        raise WithdrawalRefused(
            f"挂失申请 {number} 不能撤回：提交时证书已立即挂失（暂停使用）。"
            "找回 UKEY 后请发送「解挂」申请恢复。", ask_staff=False)
    if status is OrderStatus.REJECTED:
        raise WithdrawalRefused(
            f"订单 {number} 已审核（已驳回），不能撤回。请回复「修改 {number}」按驳回理由修改后"
            "重新提交。")
    if status not in IN_REVIEW:
        try:
            next_status(order_type, status, Event.WITHDRAW)
        except ValueError as refused:  # says the state: 该订单待支付，不能撤回。
            raise WithdrawalRefused(f"{refused}只有还没有审核的订单才能撤回。",
                                    ask_staff=status is not OrderStatus.CANCELLED) from None
    if approvers_since_submission(log):
        raise WithdrawalRefused(
            f"订单 {number} 已有技术人员审核通过（等待另一位复核），不能撤回。")
