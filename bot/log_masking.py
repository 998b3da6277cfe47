"""Every log line passes through here: ID and mobile numbers are masked before anything is written.

Framework logs print whole incoming messages, so masking at each call site would miss them.
The patcher masks the message, the string values of ``extra`` and the logged exception (its
message, notes and the exceptions it was raised from or during): a sink formats those itself,
after the patcher, so each has to be masked here.
"""

from typing import Any

from loguru import logger
from loguru._recattrs import RecordException

from bot.domain.masking import mask_personal_numbers


def _stand_in(error: BaseException, message: str) -> BaseException:
    """An exception shown exactly as ``error`` (same module and class name) saying ``message``."""
    kind = type(error)
    shown = type(kind.__name__, (Exception,), {
        "__module__": kind.__module__, "__qualname__": kind.__qualname__,
        "__str__": lambda self: message})
    return shown()


def _masked(error: BaseException | None, seen: set[int]) -> BaseException | None:
    """``error`` itself when nothing in it (or in its chain) needs masking, else a stand-in."""
    if error is None or id(error) in seen:
        return error
    seen.add(id(error))
    try:
        text = str(error)
    except Exception:  # an exception whose __str__ fails is shown by its type only
        text = ""
    masked = mask_personal_numbers(text)
    notes = [mask_personal_numbers(str(n)) for n in getattr(error, "__notes__", [])]
    cause, context = _masked(error.__cause__, seen), _masked(error.__context__, seen)
    if (masked == text and cause is error.__cause__ and context is error.__context__
            and notes == getattr(error, "__notes__", [])):
        return error
    stand_in = _stand_in(error, masked).with_traceback(error.__traceback__)
    stand_in.__cause__, stand_in.__context__ = cause, context
    stand_in.__suppress_context__ = error.__suppress_context__
    if notes:
        stand_in.__notes__ = notes
    return stand_in


def _mask(record: Any) -> None:
    record["message"] = mask_personal_numbers(record["message"])
    extra = record["extra"]
    for key, value in extra.items():
        if isinstance(value, str):
            extra[key] = mask_personal_numbers(value)
    exception = record["exception"]
    if exception is not None and exception.value is not None:
        value = _masked(exception.value, set())
        if value is not exception.value:
            record["exception"] = RecordException(exception.type, value, exception.traceback)


def install_log_masking() -> None:
    logger.configure(patcher=_mask)
