import random
from datetime import date

from bot.domain.masking import mask_account, mask_id_number, mask_mobile, mask_personal_numbers
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
