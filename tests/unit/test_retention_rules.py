"""What a finished order's answers read like once retention masks them: ID numbers and mobiles
by their form's own masks, numbers in free text starred, names and the rest left readable;
masking twice changes nothing."""

import random

import pytest

from bot.domain.lifecycle import OrderStatus, OrderType
from bot.domain.masking import mask_id_number, mask_mobile
from bot.domain.retention import is_finished, masked_fields, masked_invoice
from bot.samples import fake_id_number
from bot.services.retention.purge import purge_order
from storage.models import Order, utcnow

ID_NUMBER = fake_id_number(random.Random(7))


def test_numbers_are_masked_and_the_rest_stays_readable() -> None:
    fields = {"handler_name": "张三", "handler_id_number": ID_NUMBER, "mobile": "13912345678",
              "company_phone": "13812345678", "company_address": "临沂市兰山区测试路 1 号",
              "mail_body": f"经办人身份证 {ID_NUMBER}，电话 +86 138-1234-5678", "count": 2}
    masked = masked_fields(OrderType.UNLOCK, fields)
    assert masked["handler_id_number"] == mask_id_number(ID_NUMBER)
    assert masked["mobile"] == mask_mobile("13912345678")
    assert masked["company_phone"] == "138****5678"
    assert masked["mail_body"] == (f"经办人身份证 {mask_id_number(ID_NUMBER)}，"
                                   "电话 +86 138-****-5678")
    assert masked["handler_name"] == "张三"
    assert masked["company_address"] == "临沂市兰山区测试路 1 号"
    assert masked["count"] == 2
    assert masked_fields(OrderType.UNLOCK, masked) == masked


def test_the_invoice_request_loses_its_numbers_too() -> None:
    invoice = {"request": {"title": "临沂测试有限公司", "address_phone": "临沂 13912345678"},
               "issued": {"number": "12345678"}}
    masked = masked_invoice(invoice)
    assert masked is not None
    assert masked["request"]["address_phone"] == "临沂 139****5678"
    assert masked["issued"] == {"number": "12345678"}
    assert masked_invoice(None) is None


def test_only_finished_orders_are_touched() -> None:
    assert {s for s in OrderStatus if is_finished(s)} == {OrderStatus.COMPLETED,
                                                           OrderStatus.CANCELLED}


@pytest.mark.parametrize("status", [s for s in OrderStatus if s not in (
    OrderStatus.COMPLETED, OrderStatus.CANCELLED)])
async def test_the_purge_refuses_an_open_order(status: OrderStatus) -> None:
    order = Order(id=1, number="JS-261125-7KQ3", type=OrderType.UNLOCK, status=status,
                  fields={"mobile": "13912345678"})
    with pytest.raises(ValueError, match="open: retention never touches it"):
        await purge_order(None, order, "system", "retention", utcnow(),  # type: ignore[arg-type]
                          scans=True, numbers=True)
    assert order.fields == {"mobile": "13912345678"}
