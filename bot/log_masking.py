"""Every log line passes through here: ID and mobile numbers are masked before anything is written.

Framework logs print whole incoming messages, so masking at each call site would miss them.
"""

from typing import Any

from loguru import logger

from bot.domain.masking import mask_personal_numbers


def _mask(record: Any) -> None:
    record["message"] = mask_personal_numbers(record["message"])


def install_log_masking() -> None:
    logger.configure(patcher=_mask)
