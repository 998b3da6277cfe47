import random
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.masking import (
    has_personal_numbers,
    mask_account,
    mask_id_number,
    mask_mobile,
    mask_personal_numbers,
)
from bot.domain.order_numbers import ALPHABET, new_order_number, parse_order_number
from bot.samples import fake_id_number


def test_order_numbers_are_readable_and_parse_back() -> None:
    rng = random.Random(1)
    numbers = [new_order_number("XB", date(2026, 11, 25), rng.choice) for _ in range(200)]
    for number in numbers:
        assert number.startswith("XB-261125-")
        assert not set(number[-4:]) & set("01OIL")
        assert parse_order_number(number.lower().replace("-", " ")) == number
    assert set(ALPHABET).isdisjoint("01OIL")


def test_typed_order_numbers() -> None:
    assert parse_order_number("xb2611257kq3") == "XB-261125-7KQ3"
    assert parse_order_number("XB－261125－7KQ3") == "XB-261125-7KQ3"
    assert parse_order_number("XB-261125-7KQ") is None
    assert parse_order_number("XB-261125-0KQ3") is None  # 0 is not in the alphabet


def test_masks() -> None:
    assert mask_id_number("37130219800101123X") == "371***********123X"
    assert mask_mobile("13812345678") == "138****5678"


def test_free_text_is_masked_wherever_numbers_appear() -> None:
    number = fake_id_number(random.Random(3), ends_with_x=True)
    text = f"身份证{number}，电话13812345678。订单 XB-261125-7KQ3，代码 9137130207699826MA"
    masked = mask_personal_numbers(text)
    assert number not in masked
    assert "13812345678" not in masked
    assert number[:3] + "*" * 11 + number[-4:] in masked
    assert "138****5678" in masked
    assert "XB-261125-7KQ3" in masked
    assert "9137130207699826MA" in masked


def test_a_chat_account_is_shortened_for_a_group() -> None:
    assert mask_account("qq:123456789") == "qq:12*****89"
    assert mask_account("qq:31337") == "qq:31*37"
    assert mask_account("console:user") == "console:****"


def test_numbers_typed_with_separators_are_masked_where_they_stand() -> None:
    """What the validators accept (spaces, dashes, full-width digits, +86) is masked too."""
    cases = {
        "身份证 370102 19900307 1234。": "身份证 370*** ******** 1234。",
        "身份证370102-1990-0307-123x": "身份证370***-****-****-123x",
        "电话138-1234-5678，": "电话138-****-5678，",
        "电话 138 1234 5678": "电话 138 **** 5678",
        "手机１３８１２３４５６７８": "手机１３８****５６７８",
        "+86 138 1234 5678": "+86 138 **** 5678",
        "+8613812345678": "+86138****5678",
        "0086-138\u30001234\u30005678": "0086-138\u3000****\u30005678",
        "370102199003071234 13812345678": "370***********1234 138****5678",
    }
    for typed, masked in cases.items():
        assert mask_personal_numbers(typed) == masked


def test_other_numbers_are_left_alone() -> None:
    """Order numbers, USCCs, certificate and UKEY serials, dates, times and amounts."""
    text = ("订单 XB-261125-7KQ3 xb2611257kq3，代码 9137130207699826MA 91371302MA3C4X1B2Q，"
            "证书序列号 1a2b13812345678c 4F:1A:2B:3C 0x13812345678ab，UKEY B-0006 OLD-0007 "
            "2C4F138123456789，时间 2026-12-02 16:46:41 2026年12月02日 13:45，"
            "金额 ¥1,380.00 13800.00 元，编号 1381234567890123")
    assert mask_personal_numbers(text) == text


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(st.lists(st.sampled_from(["1", "3", "8", "0", "x", "X", " ", "-", "+86", "１", "３", "A",
                                 "XB-", "号", "13812345678", fake_id_number(random.Random(9))]),
                max_size=12).map("".join))
def test_a_message_holds_personal_numbers_exactly_where_masking_would_hide_some(
        text: str) -> None:
    """The group's warning (「请尽快撤回」) and the logs' masking agree on what a number is."""
    assert has_personal_numbers(text) == (mask_personal_numbers(text) != text)
