"""A returning applicant is offered what the company's last order held (issue 13): offered with
each question, taken with one reply, and never shown to an account with no right to see it."""

import random
from pathlib import Path

import pytest

from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_uscc
from bot.services.messages import Account
from storage.models import Order
from storage.repositories import Orders
from tests.support.applicant import bind, bind_verified, say, verify
from tests.support.helpers import MakeRuntime

RNG = random.Random(1313)
COMPANY = "临沂回头客建设有限公司"
CLERK = Account("qq", "5101")
WANG_ID = fake_id_number(RNG)
FIRST_ORDER = [  # (answer, what the bot asks next)
    ("新办证书", "【证书年限】"), ("1", "【项目所属地区】"), ("临沂", "【办理Ukey数量】"),
    ("1", "【经办人姓名】"), ("王小明", "【经办人身份证号】"), (WANG_ID, "【手机号】"),
    ("13912345678", "【是否自取】"), ("邮寄", "【地级市】"), ("山东省临沂市兰山区", "【邮寄地址】"),
    ("金雀山路 1 号 某某大厦 5 楼", "附件一"),
]


@pytest.fixture
async def runtime(make_runtime: MakeRuntime, database_url: str) -> Runtime:
    return await make_runtime(f'[database]\nurl = "{database_url}"\n[fees]\ncertificate = 100\n')


@pytest.fixture
def scans(scan_files: list[Path]) -> list[Path]:
    return scan_files


async def answer(runtime: Runtime, account: Account, text: str, *expected: str) -> str:
    reply = await say(runtime, account, text)
    for fragment in expected:
        assert fragment in reply, reply
    return reply


async def file_order(runtime: Runtime, account: Account, steps: list[tuple[str, str]],
                     scans: list[Path]) -> str:
    for text, asked in steps:
        await answer(runtime, account, text, asked)
    assert "请核对" in await say(runtime, account, "", *scans)
    submitted = await answer(runtime, account, "确认提交", "提交成功")
    return submitted.split("订单号：")[1].split()[0]


async def values_of(runtime: Runtime, number: str) -> dict[str, str]:
    async with runtime.db.transaction() as session:
        order = await Orders(session).by_number(number)
        assert isinstance(order, Order)
        return dict(order.fields)


async def test_a_returning_applicant_takes_every_remembered_answer_with_one_reply(
        runtime: Runtime, scans: list[Path]) -> None:
    await bind_verified(runtime, CLERK, fake_uscc(RNG), COMPANY)
    first = await file_order(runtime, CLERK, FIRST_ORDER, scans)

    await answer(runtime, CLERK, "新办证书", "【证书年限】")
    # each question offers the last answer; one reply takes it (a choice: the option's number)
    for reply, asked_next in [
            ("两年", "沿用上次：临沂（回复 12 沿用）"),
            ("12", "【办理Ukey数量】"),
            ("2", "沿用上次：王小明（回复 1 沿用）"),
            ("1", f"沿用上次：{WANG_ID[:3]}"),
            ("1", "沿用上次：139****5678（回复 1 沿用）"),
            ("1", "沿用上次：邮寄（回复 2 沿用）"),
            ("2", "沿用上次：山东省临沂市兰山区（回复 1 沿用）"),
            ("1", "沿用上次：金雀山路 1 号 某某大厦 5 楼（回复 1 沿用）"),
            ("1", "附件一"),
    ]:
        assert WANG_ID not in await answer(runtime, CLERK, reply, asked_next)  # offered masked
    summary = await say(runtime, CLERK, "", *scans)
    for shown in ("证书年限：2年", "项目所属地区：临沂", "办理Ukey数量：2", "经办人姓名：王小明",
                  "手机号：139****5678", "是否自取：邮寄", "邮寄地址：金雀山路 1 号 某某大厦 5 楼"):
        assert shown in summary, summary
    assert WANG_ID not in summary
    assert "费用：¥400.00（2 个 UKEY × 2年，每个 ¥200.00）" in summary  # ¥100 a UKEY a year
    submitted = await answer(runtime, CLERK, "确认提交", "提交成功", "¥400.00")
    second = submitted.split("订单号：")[1].split()[0]
    kept = await values_of(runtime, second)
    assert kept["handler_id_number"] == WANG_ID  # the full number, not the masked offer
    assert kept["mobile"] == "13912345678"
    before = await values_of(runtime, first)
    for key in ("handler_name", "handler_id_number", "mobile", "self_pickup", "city", "address",
                "region"):
        assert kept[key] == before[key]
    assert (kept["years"], kept["ukey_count"]) == ("2年", "2")


async def test_a_pending_account_is_offered_only_its_own_answers(
        runtime: Runtime, scans: list[Path]) -> None:
    uscc = fake_uscc(RNG)
    await bind_verified(runtime, CLERK, uscc, COMPANY)
    await file_order(runtime, CLERK, FIRST_ORDER, scans)

    # a later account of the same company, not yet vouched for: nothing of the company's
    newcomer = Account("qq", "5102")
    await bind(runtime, newcomer, uscc, COMPANY)
    await answer(runtime, newcomer, "新办证书", "【证书年限】")
    for text in ("1", "临沂", "1"):
        reply = await say(runtime, newcomer, text)
    assert "【经办人姓名】" in reply
    assert "沿用上次" not in reply
    li_id = fake_id_number(RNG)
    for text in ("李四", li_id, "13712345678"):
        reply = await say(runtime, newcomer, text)
        assert "王小明" not in reply
        assert "139****5678" not in reply
    for text in ("自取", "", "确认提交"):
        reply = await say(runtime, newcomer, text, *(scans if not text else ()))
    assert "提交成功" in reply

    # its own order is offered to itself ...
    await answer(runtime, newcomer, "新办证书", "【证书年限】")
    for text in ("1", "临沂"):
        await say(runtime, newcomer, text)
    await answer(runtime, newcomer, "1", "沿用上次：李四（回复 1 沿用）")
    await answer(runtime, newcomer, "取消", "确定要放弃")
    await answer(runtime, newcomer, "是", "已放弃")
    # ... but not to the company's verified clerk, whose own last answers stay on offer
    await answer(runtime, CLERK, "新办证书", "【证书年限】")
    await answer(runtime, CLERK, "1", "沿用上次：临沂（回复 12 沿用）")
    await answer(runtime, CLERK, "12", "【办理Ukey数量】")
    reply = await answer(runtime, CLERK, "1", "沿用上次：王小明")
    assert "李四" not in reply

    # once verified, its answers are the company's
    await verify(runtime, newcomer)
    await answer(runtime, CLERK, "取消", "确定要放弃")
    await answer(runtime, CLERK, "是", "已放弃")
    await answer(runtime, CLERK, "新办证书", "【证书年限】")
    for text in ("1", "1"):
        await say(runtime, CLERK, text)
    await answer(runtime, CLERK, "1", "沿用上次：李四（回复 1 沿用）")


async def test_another_companys_answers_are_never_offered(runtime: Runtime,
                                                          scans: list[Path]) -> None:
    await bind_verified(runtime, CLERK, fake_uscc(RNG), COMPANY)
    await file_order(runtime, CLERK, FIRST_ORDER, scans)
    stranger = Account("qq", "5201")
    await bind_verified(runtime, stranger, fake_uscc(RNG), "临沂别家科技有限公司")
    await answer(runtime, stranger, "新办证书", "【证书年限】")
    reply = await answer(runtime, stranger, "1", "建议：临沂（回复 12 选择）")
    assert "沿用上次" not in reply  # the centre's city, not the other company's answer
    await answer(runtime, stranger, "沿用", "【办理Ukey数量】")
    reply = await say(runtime, stranger, "1")
    assert "【经办人姓名】" in reply
    assert "沿用上次" not in reply
    assert "沿用上次" not in await say(runtime, stranger, "解锁")  # nor in another form


async def test_an_unlock_offers_the_company_answers_of_the_last_one(runtime: Runtime,
                                                                   scans: list[Path]) -> None:
    await bind_verified(runtime, CLERK, fake_uscc(RNG), COMPANY)
    await file_order(runtime, CLERK, [
        ("解锁", "【单位地址】"), ("临沂市兰山区金雀山路 1 号", "【法定代表人姓名】"),
        ("赵六", "【单位电话】"), ("0539-8123456", "【经办人姓名】"),
        ("王小明", "【经办人手机号】"), ("13912345678", "【经办人身份证号】"), (WANG_ID, "附件一"),
    ], scans[:3])
    for reply, asked_next in [
            ("解锁", "沿用上次：临沂市兰山区金雀山路 1 号（回复 1 沿用）"),
            ("1", "沿用上次：赵六（回复 1 沿用）"),
            ("1", "沿用上次：0539-8123456（回复 1 沿用）"),
            ("1", "沿用上次：王小明（回复 1 沿用）"),
            ("1", "沿用上次：139****5678（回复 1 沿用）"),
            ("1", f"沿用上次：{WANG_ID[:3]}"),
            ("1", "附件一"),
    ]:
        await answer(runtime, CLERK, reply, asked_next)
