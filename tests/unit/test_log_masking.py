"""A real log line through loguru with the masking patcher installed, as the bot runs it."""

from loguru import logger

from bot.log_masking import install_log_masking


def test_a_log_line_with_numbers_typed_any_way_is_masked() -> None:
    install_log_masking()  # what bot/app.py does at start
    lines: list[str] = []
    sink = logger.add(lines.append, level="TRACE", format="{message} | {extra}",
                      backtrace=False, diagnose=False)
    mobile, id_number = "138 1234 5678", "370102-19900307-1234"  # not in the raising lines
    try:
        try:
            try:
                raise KeyError(f"手机 {mobile}")
            except KeyError as error:
                raise ValueError(f"身份证 {id_number} 无效") from error
        except ValueError:
            logger.bind(typed="+86 138-1234-5678").exception(
                "收到 370102 19900307 1234 和 １３８１２３４５６７８")
    finally:
        logger.remove(sink)
    [line] = lines
    assert "收到 370*** ******** 1234 和 １３８****５６７８" in line  # the message
    assert "'typed': '+86 138-****-5678'" in line  # extra
    assert "ValueError: 身份证 370***-********-1234 无效" in line  # the exception ...
    assert "KeyError: '手机 138 **** 5678'" in line  # ... and the one it was raised from
    for secret in ("19900307", "0307", "1234 5678", "1234-5678", "１２３４"):
        assert secret not in line.replace("1234 和", "")
