import random
from datetime import date

import pytest
from stdnum.cn import ric

from bot.domain import validators
from bot.domain.validators import InvalidAnswer
from bot.samples import fake_id_number, fake_uscc

RNG = random.Random(20261125)


def with_check(body17: str) -> str:
    return body17 + ric.calc_check_digit(body17 + "0")


class TestIdNumber:
    def test_generated_numbers_pass_both_ways_of_ending(self) -> None:
        for ends_with_x in (False, True):
            number = fake_id_number(RNG, ends_with_x=ends_with_x)
            assert validators.id_number(number) == number
            assert number.endswith("X") is ends_with_x

    def test_lower_case_x_full_width_digits_and_spaces_are_accepted(self) -> None:
        number = fake_id_number(RNG, ends_with_x=True)
        typed = " ".join([number[:6], number[6:14], number[14:]]).lower()
        full_width = typed.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
        assert validators.id_number(full_width) == number

    def test_x_in_place_of_a_digit_check_is_refused(self) -> None:
        number = fake_id_number(RNG, ends_with_x=False)
        with pytest.raises(InvalidAnswer, match="校验位"):
            validators.id_number(number[:-1] + "X")

    def test_digit_in_place_of_x_is_refused(self) -> None:
        number = fake_id_number(RNG, ends_with_x=True)
        with pytest.raises(InvalidAnswer, match="校验位"):
            validators.id_number(number[:-1] + "0")

    def test_one_wrong_digit_is_caught(self) -> None:
        number = fake_id_number(RNG)
        wrong = number[:10] + str((int(number[10]) + 1) % 10) + number[11:]
        with pytest.raises(InvalidAnswer, match="校验位"):
            validators.id_number(wrong)

    @pytest.mark.parametrize(("typed", "reason"), [
        ("37130219900101123", "应为 18 位，您输入了 17 位"),
        ("3713021990010112345", "您输入了 19 位"),
        ("37130219900101123A", "只能由数字组成"),
        ("", "您输入了 0 位"),
    ])
    def test_shape_errors_say_what_is_wrong(self, typed: str, reason: str) -> None:
        with pytest.raises(InvalidAnswer, match=reason):
            validators.id_number(typed)

    def test_impossible_birth_date_is_refused(self) -> None:
        with pytest.raises(InvalidAnswer, match="出生日期"):
            validators.id_number(with_check("37130219900230123"))  # 30 February

    def test_future_birth_date_is_refused(self) -> None:
        number = with_check("37130220300101123")
        with pytest.raises(InvalidAnswer, match="出生日期"):
            validators.id_number(number, today=date(2026, 11, 25))

    def test_unknown_province_is_refused(self) -> None:
        with pytest.raises(InvalidAnswer, match="地区码"):
            validators.id_number(with_check("99130219900101123"))

    def test_county_code_newer_than_the_birth_year_is_accepted(self) -> None:
        # 371302 (临沂市兰山区) dates from 1994; stdnum's ric.validate refuses it for a 1980
        # birth, but such numbers are real (issued at the 18-digit re-issue).
        number = with_check("37130219800101123")
        assert not ric.is_valid(number)
        assert validators.id_number(number) == number


class TestUscc:
    def test_generated_codes_pass(self) -> None:
        for _ in range(50):
            code = fake_uscc(RNG)
            assert validators.uscc_code(code.lower()) == code

    def test_wrong_check_character_is_refused(self) -> None:
        code = fake_uscc(RNG)
        other = "0" if code[-1] != "0" else "1"
        with pytest.raises(InvalidAnswer, match="校验位"):
            validators.uscc_code(code[:-1] + other)

    def test_letters_not_used_in_codes_are_refused(self) -> None:
        code = fake_uscc(RNG)
        with pytest.raises(InvalidAnswer, match="不允许的字符"):
            validators.uscc_code(code[:10] + "I" + code[11:])

    def test_length_is_reported(self) -> None:
        with pytest.raises(InvalidAnswer, match="您输入了 15 位"):
            validators.uscc_code("913713020769982")


class TestMobile:
    @pytest.mark.parametrize("typed", ["13812345678", "138 1234 5678", "+8613812345678",
                                       "138-1234-5678", "１３８１２３４５６７８"])
    def test_accepted_forms(self, typed: str) -> None:
        assert validators.mobile(typed) == "13812345678"

    @pytest.mark.parametrize(("typed", "reason"), [
        ("1381234567", "应为 11 位"), ("12812345678", "13–19 开头"),
        ("0539-8123456", "固定电话"), ("138abc45678", "只能由数字"),
    ])
    def test_refused_with_reason(self, typed: str, reason: str) -> None:
        with pytest.raises(InvalidAnswer, match=reason):
            validators.mobile(typed)


class TestChoiceAndText:
    def test_choice_by_number_or_text(self) -> None:
        pick = validators.choice(("自取", "邮寄"))
        assert pick("2") == "邮寄"
        assert pick("２") == "邮寄"
        assert pick(" 自取 ") == "自取"

    def test_choice_out_of_range_lists_the_options(self) -> None:
        with pytest.raises(InvalidAnswer, match="1 自取、2 邮寄"):
            validators.choice(("自取", "邮寄"))("3")

    def test_person_name(self) -> None:
        assert validators.person_name(" 张三 ") == "张三"
        assert validators.person_name("阿依古丽•买买提") == "阿依古丽·买买提"
        for bad in ("张", "Zhang San", "张三3"):
            with pytest.raises(InvalidAnswer, match="中文姓名"):
                validators.person_name(bad)

    def test_company_name_brackets_become_full_width(self) -> None:
        typed = "临沂某某建设(集团)有限公司"
        assert validators.company_name(typed) == "临沂某某建设（集团）有限公司"

    def test_ukey_count_range(self) -> None:
        count = validators.integer_between(1, 20, "个")
        assert count("2个") == "2"
        with pytest.raises(InvalidAnswer, match="1–20"):
            count("0")
        assert count("两个") == "2"  # issue 13: Chinese numerals are counts too
        with pytest.raises(InvalidAnswer, match="数字"):
            count("几个")


def test_chinese_punctuation_survives_normalising() -> None:
    from bot.domain.text import normalise

    assert normalise("　金雀山路１号，５楼（东）：ＡＢ ") == "金雀山路1号，5楼（东）：AB"
    assert validators.mobile("＋８６ １３８－１２３４－５６７８") == "13812345678"
