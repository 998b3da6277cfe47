"""The centre as an applicant meets it: the fee in the summary and on the order, the price list
and the contact line in the menu, questions answered from the FAQ, 人工客服 reaching the
technicians, and free orders never listed as owing ¥0.00."""

import random
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_uscc
from bot.services.centre import please_contact, when_answered
from bot.services.filing import file_order
from bot.services.messages import Account
from storage.models import Order, utcnow
from storage.repositories import Handlers
from tests.support.applicant import bind, bind_verified, say
from tests.support.helpers import MakeRuntime

RNG = random.Random(13)
TECHNICIAN = Account("qq", "900001")
CENTRE = """
[staff]
technicians = ["qq:900001"]
[centre]
name = "临沂测试CA中心"
phone = "0539-8000000"
qq = "800000"
address = "临沂市兰山区测试路 1 号"
[fees]
renewal = 200
"""
FLAT = CENTRE + "certificate = 260\n"
BY_TERM = CENTRE + "certificate = { 1 = 260, 2 = 480, 3 = 690 }\n"


@pytest.fixture
def scans(scan_files: list[Path]) -> list[Path]:
    return scan_files


def told_staff(runtime: Runtime) -> str:
    return "\n".join(str(r) for to, r in runtime.chat_outbox.chat.sent
                     if str(to) == str(TECHNICIAN))


async def verified(runtime: Runtime, user_id: str = "501") -> Account:
    account = Account("qq", user_id)
    await bind_verified(runtime, account, fake_uscc(RNG), f"临沂{user_id}号测试有限公司")
    return account


@pytest.mark.parametrize(("config", "total", "each"), [
    (FLAT, "¥1040.00", "¥520.00"),  # 260 per UKEY per year
    (BY_TERM, "¥960.00", "¥480.00"),  # the 2年 price of the table
])
async def test_two_ukeys_for_two_years_are_priced_in_the_summary_and_charged_so(
        make_runtime: MakeRuntime, scans: list[Path], config: str, total: str,
        each: str) -> None:
    runtime = await make_runtime(config)
    account = await verified(runtime)
    for text in ("新办证书", "2年", "临沂", "2", "张三", fake_id_number(RNG), "13812345678",
                 "自取"):
        await say(runtime, account, text)
    summary = await say(runtime, account, "", *scans)
    assert "请核对" in summary
    assert f"费用：{total}（2 个 UKEY × 2年，每个 {each}）" in summary
    assert summary.index("费用") < summary.index("确认提交")
    submitted = await say(runtime, account, "确认提交")
    assert "提交成功" in submitted
    assert total in submitted
    async with runtime.db.transaction() as session:
        order = await session.scalar(select(Order))
    assert order is not None
    assert order.amount_cents == int(total[1:-3]) * 100
    assert f"金额：{total}" in await say(runtime, account, f"查询 {order.number}")


async def test_the_menu_ends_with_the_prices_and_how_to_reach_the_centre(
        make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(FLAT)
    account = await verified(runtime)
    menu = await say(runtime, account, "帮助")
    price, contact = menu.splitlines()[-2:]
    assert price == ("收费标准：新办/补办证书每个 UKEY 1年 ¥260.00，2年 ¥520.00，3年 ¥780.00；"
                     "解锁免费。")
    assert contact.startswith("临沂测试CA中心（电话 0539-8000000，QQ 800000）；"
                              "地址：临沂市兰山区测试路 1 号；工作时间：周一至周五 ")


@pytest.mark.parametrize(("question", "answer"), [
    ("新办证书多少钱？", "收费标准：新办/补办证书每个 UKEY 1年 ¥260.00"),
    ("请问你们地址在哪里", "临沂测试CA中心地址：临沂市兰山区测试路 1 号"),
    ("周六上班吗", "工作时间：周一至周五 08:30-12:00、13:30-17:30（法定节假日除外）"),
    ("办证需要准备什么材料", "信息印章采集表、经办人身份证复印件、单位授权书及诚信承诺书"),
    ("我要找人工", "请发送「人工客服 您的问题」"),
    ("客服QQ是多少", "QQ 800000"),
])
async def test_a_question_is_answered_from_the_faq_instead_of_the_menu(
        make_runtime: MakeRuntime, question: str, answer: str) -> None:
    runtime = await make_runtime(FLAT)
    account = await verified(runtime)
    reply = await say(runtime, account, question)
    assert answer in reply
    assert "请回复：" not in reply  # not the menu


async def test_an_unbound_account_gets_the_answer_then_the_binding(
        make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(FLAT)
    reply = await say(runtime, Account("qq", "777"), "新办证书多少钱")
    assert reply.index("收费标准") < reply.index("欢迎使用") < reply.index("【统一社会信用代码】")


async def test_a_question_the_form_cannot_take_is_answered_and_the_field_asked_again(
        make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(FLAT)
    reply = await say(runtime, Account("qq", "778"), "你好")
    assert "【统一社会信用代码】" in reply
    reply = await say(runtime, Account("qq", "778"), "新办证书多少钱？")  # no 信用代码
    assert "收费标准" in reply
    assert "应为 18 位" not in reply  # no refusal of a 信用代码
    assert reply.rstrip().endswith("营业执照上的 18 位代码。")  # and the same question again
    account = await verified(runtime)
    await say(runtime, account, "新办证书")
    reply = await say(runtime, account, "多少钱")  # the 证书年限 question is open
    assert "收费标准" in reply
    assert "【证书年限】" in reply


async def test_an_answer_the_form_takes_is_an_answer_whatever_words_it_holds(
        make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(FLAT)
    account = await verified(runtime)
    for text in ("新办证书", "1", "临沂", "1", "张三", fake_id_number(RNG), "13812345678"):
        await say(runtime, account, text)
    assert "【地级市】" in await say(runtime, account, "邮寄")
    assert "【邮寄地址】" in await say(runtime, account, "临沂市")
    reply = await say(runtime, account, "兰山区政务服务大厅 3 楼 CA 窗口")  # 大厅: an FAQ word
    assert "地址：" not in reply  # no FAQ answer: the address was taken
    assert "【附件一" in reply


async def test_a_person_asked_for_hears_who_asks_about_what_and_the_asker_when(
        make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(FLAT)
    account = await verified(runtime, "502")
    await say(runtime, account, "新办证书")
    await say(runtime, account, "1年")
    before = when_answered(runtime.settings, utcnow())
    reply = await say(runtime, account, "人工客服 UKEY 插上没反应，手机 13812345678")
    after = when_answered(runtime.settings, utcnow())
    assert "已转告技术人员（您的问题：UKEY 插上没反应" in reply
    assert before in reply or after in reply
    assert "0539-8000000" in reply
    assert "您有一份未完成的【证书新办/补办】" in reply  # the form is recalled, not lost
    staff = told_staff(runtime)
    assert "【人工客服】qq:502 请技术人员回复" in staff
    assert "单位：临沂502号测试有限公司（已核验）" in staff
    assert "问题：UKEY 插上没反应，手机 138****5678" in staff  # masked for the staff
    assert "13812345678" not in staff
    assert "正在填写：【证书新办/补办】已填 1/" in staff
    assert "停在【项目所属地区】" in staff


async def test_a_person_asked_for_without_a_question_is_told_the_latest_order(
        make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(FLAT)
    account = await verified(runtime, "503")
    number = await unlock_order(runtime, account)
    reply = await say(runtime, account, "人工客服")
    assert "已转告技术人员。" in reply
    assert "补充说明问题会更快" in reply
    assert f"最近的订单：{number} 证书解锁 待审核" in told_staff(runtime)


async def test_an_unbound_account_may_ask_for_a_person(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(FLAT)
    await say(runtime, Account("qq", "778"), "转人工 怎么绑定单位")
    assert "【人工客服】qq:778" in told_staff(runtime)
    assert "单位：尚未绑定单位" in told_staff(runtime)


async def unlock_order(runtime: Runtime, account: Account) -> str:
    """A submitted unlock order of the account's company (made directly: the chat form has its
    own tests)."""
    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(account.platform, account.user_id)
        assert handler is not None
        order = await file_order(session, runtime.settings, order_type="unlock",
                                 values={"company_name": handler.company.name,
                                         "uscc": handler.company.uscc},
                                 scans={}, company_id=handler.company_id,
                                 handler_id=handler.id, actor=str(account))
        return order.number


async def test_awaiting_payment_lists_no_free_order(make_runtime: MakeRuntime,
                                                    database_url: str) -> None:
    """Bug: 「订单 待支付」 listed an approved unlock at ¥0.00 (an approved unlock owes nothing:
    it waits for its reset)."""
    runtime = await make_runtime(f'[database]\nurl = "{database_url}"\n' + FLAT)
    account = await verified(runtime, "504")
    unlock = await unlock_order(runtime, account)
    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(account.platform, account.user_id)
        assert handler is not None
        certificate = (await file_order(
            session, runtime.settings, order_type="certificate",
            values={"years": "1年", "ukey_count": "1", "apply_kind": "新办"}, scans={},
            company_id=handler.company_id, handler_id=handler.id, actor=str(account))).number
    for number in (unlock, certificate):
        await runtime.desk.execute(TECHNICIAN, f"通过 {number}", private=True)
    [due] = await runtime.desk.execute(TECHNICIAN, "订单 待支付", private=True)
    assert certificate in str(due)
    assert "¥260.00" in str(due)
    assert unlock not in str(due)
    assert "¥0.00" not in str(due)
    [approved] = await runtime.desk.execute(TECHNICIAN, "订单 审核通过", private=True)
    assert f"{unlock} 证书解锁" in str(approved)
    assert "审核通过 免费" in str(approved)
    assert "¥0.00" not in await say(runtime, account, "我的订单")


async def test_a_refusal_that_needs_a_person_says_how_to_reach_the_centre(
        make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(FLAT)  # [pki] off: 挂失 is refused
    account = await verified(runtime, "505")
    assert please_contact(runtime.settings) in await say(runtime, account, "我的证书")
    assert please_contact(runtime.settings) == (
        "请联系临沂测试CA中心（电话 0539-8000000，QQ 800000）。")


async def test_a_pending_account_is_answered_too(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(FLAT)
    account = Account("qq", "506")
    await bind(runtime, account, fake_uscc(RNG), "临沂506号测试有限公司")
    await say(runtime, account, "取消")
    await say(runtime, account, "是")
    assert "临沂测试CA中心地址" in await say(runtime, account, "地址")


async def test_a_resubmission_is_charged_by_its_new_answers(make_runtime: MakeRuntime,
                                                            scans: list[Path]) -> None:
    """Bug: 修改 kept the amount of the rejected version (1 UKEY) after 办理Ukey数量 became 2."""
    runtime = await make_runtime(FLAT)
    account = await verified(runtime, "507")
    for text in ("新办证书", "1年", "临沂", "1", "张三", fake_id_number(RNG), "13812345678",
                 "自取"):
        await say(runtime, account, text)
    await say(runtime, account, "", *scans)
    submitted = await say(runtime, account, "确认提交")
    number = submitted.split("订单号：")[1].split()[0]
    await runtime.desk.execute(TECHNICIAN, f"驳回 {number} 办理Ukey数量应为 2 个", private=True)
    assert "【办理Ukey数量】" in await say(runtime, account, f"修改 {number}")
    summary = await say(runtime, account, "2")
    assert "费用：¥520.00（2 个 UKEY × 1年，每个 ¥260.00）" in summary
    await say(runtime, account, "确认提交")
    async with runtime.db.transaction() as session:
        order = await session.scalar(select(Order).where(Order.number == number))
    assert order is not None
    assert order.amount_cents == 52000
