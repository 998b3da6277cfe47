"""Who a chat account is to a company (SPEC.md: a binding is verified, not claimed).

An account binds by naming a company, which proves nothing (the USCC and the name are public):
it is ``PENDING`` and may only apply (applications carry their own evidence and are reviewed)
and see what it filed itself. It becomes ``VERIFIED`` when a technician approves its binding
request (授权书 and 营业执照) or a verified handler of the company vouches for it; only then may it
see or change what the company already has. A technician's 解绑 makes it ``REMOVED``.
"""

from enum import StrEnum


class HandlerStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    REMOVED = "removed"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    HandlerStatus.PENDING: "待核验",
    HandlerStatus.VERIFIED: "已核验",
    HandlerStatus.REMOVED: "已解绑",
}
