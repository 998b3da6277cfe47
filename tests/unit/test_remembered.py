"""Which earlier answers a new form offers again (bot/domain/remembered.py)."""

import random

from bot.domain.forms import CERTIFICATE, LOSS, UNLOCK
from bot.domain.remembered import remembered, suggested_region
from bot.samples import fake_id_number

RNG = random.Random(13)
WANG, LI = fake_id_number(RNG), fake_id_number(RNG)


def test_one_persons_answers_come_from_one_order() -> None:
    newest = {"handler_name": "李四", "handler_id_number": LI, "company_address": "临沂市兰山区"}
    older = {"handler_name": "王小明", "handler_id_number": WANG, "mobile": "13812345678",
             "legal_rep": "赵六", "company_address": "临沂市罗庄区某某路 9 号"}
    offers = remembered(UNLOCK, [newest, older])
    # 李四 without a mobile: never 李四 with 王小明's number
    assert offers["handler_name"] == "李四"
    assert offers["handler_id_number"] == LI
    assert "mobile" not in offers
    assert offers["company_address"] == "临沂市兰山区"
    assert "legal_rep" not in offers  # the newest order answering the group decides it


def test_only_the_forms_own_asked_fields_are_offered() -> None:
    earlier = {"handler_name": "王小明", "handler_id_number": WANG, "mobile": "13812345678",
               "company_name": "别的公司", "years": "3年", "address": "金雀山路 1 号",
               "city": "临沂", "self_pickup": "邮寄", "region": "临沂"}
    assert set(remembered(LOSS, [earlier])) == {"handler_name", "handler_id_number", "mobile"}
    assert set(remembered(CERTIFICATE, [earlier])) == {
        "handler_name", "handler_id_number", "mobile", "self_pickup", "city", "address",
        "region"}


def test_a_pickup_order_offers_no_address() -> None:
    newest = {"self_pickup": "自取"}
    older = {"self_pickup": "邮寄", "city": "临沂", "address": "金雀山路 1 号"}
    assert remembered(CERTIFICATE, [newest, older]) == {"self_pickup": "自取"}


def test_answers_refused_today_are_not_offered() -> None:
    earlier = {"handler_name": "Wang", "mobile": "12345", "handler_id_number": WANG}
    assert remembered(LOSS, [earlier]) == {"handler_id_number": WANG}


def test_the_centres_city_is_suggested_when_it_is_a_choice() -> None:
    assert suggested_region(CERTIFICATE, "临沂市") == {"region": "临沂"}
    assert suggested_region(CERTIFICATE, "临沂") == {"region": "临沂"}
    assert suggested_region(CERTIFICATE, "上海市") == {}
    assert suggested_region(CERTIFICATE, None) == {}
    assert suggested_region(UNLOCK, "临沂") == {}
