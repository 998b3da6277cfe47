"""The technicians' commands through nonebug, and what the applicant hears back."""

import base64
import sqlite3

import nonebot
import pytest
from loguru import logger
from nonebug import App
from sqlalchemy import select

from bot.config import Settings
from bot.runtime import get_runtime
from bot.samples import fake_uscc
from bot.services.filing import file_order
from bot.services.messages import Account
from storage.models import Attachment, Order, OrderEvent
from storage.repositories import Companies
from tests.support.chat import ALICE, BOB, Applicant, Technician
from tests.support.helpers import MakeRuntime, Says, ScanServer, image


async def submitted(app: App, scan_server: ScanServer, pickup: str = "2") -> tuple[Applicant, str]:
    user = Applicant(app)
    await user.bind()
    await user.fill_until_scans(pickup=pickup)
    if pickup == "2":
        await user.send_scans(scan_server)
    else:
        for n in range(1, 5):
            await user.says(image(user.scan_url(scan_server, n)), Says("已收到"), Says("请"))
    number = await user.submit(Says("新订单待审核"))
    return user, number


async def order(number: str) -> Order:
    async with get_runtime().db.transaction() as session:
        return await session.scalar(select(Order).where(Order.number == number))


async def test_strangers_are_refused_and_logged(app: App, scan_server: ScanServer) -> None:
    user, number = await submitted(app, scan_server)
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        await Technician(app, user.user_id).says(f"通过 {number}", Says("技术人员命令", "没有权限"))
    finally:
        logger.remove(sink)
    assert any(f"qq:{user.user_id} is not a technician" in line for line in lines)
    assert (await order(number)).status == "submitted"


async def test_queue_view_and_approve_with_payment_qr(app: App, scan_server: ScanServer) -> None:
    user, number = await submitted(app, scan_server)
    alice = Technician(app, ALICE)
    await alice.says("待审核",
                     Says("待审核订单", number, "证书新办", user.company, "已等待 0 分钟"))
    four_scans = [Says(title, "[CQ:image,file=base64://") for title in
                  ("附件一 信息印章采集表", "附件二 经办人身份证复印件",
                   "附件三 单位授权书及诚信承诺书", "附件四 机构营业执照")]
    await alice.says(f"查看 {number}", Says(number, f"经办人身份证号：{user.id_number}",
                                           "手机号：13812345678", f"通过 {number}"), *four_scans)
    await alice.says(f"查看 {number}", Says(number, "扫描件含个人信息，请私聊查看",
                                           absent=(user.id_number, "13812345678")), group=True)
    await alice.says(
        f"通过 {number.lower()}", Says(f"已通过订单 {number}", "¥260.00"),
        tells=((user.user_id, Says(f"您的订单 {number}（证书新办）已审核通过", "¥260.00",
                                   "https://pay.example.test/ca?order=")),
               (user.user_id, Says("支付二维码", "[CQ:image,file=base64://"))))
    assert (await order(number)).status == "approved"
    await user.says("我的订单", Says(number, "订单状态：待支付"))


async def test_reject_needs_a_reason_and_names_what_to_fix(
        app: App, scan_server: ScanServer) -> None:
    user, number = await submitted(app, scan_server)
    alice = Technician(app, ALICE)
    await alice.says(f"驳回 {number}", Says("请写明驳回理由"))
    await alice.says(
        f"驳回 {number} 附件二身份证复印件不清晰，没有盖章",
        Says(f"已驳回订单 {number}", "附件二 经办人身份证复印件"),
        tells=((user.user_id, Says("未通过审核", "驳回理由：附件二身份证复印件不清晰，没有盖章",
                                   "需要修改：附件二 经办人身份证复印件", f"修改 {number}")),))
    rejected = await order(number)
    assert rejected.status == "rejected"
    assert rejected.reject_reason == "附件二身份证复印件不清晰，没有盖章"
    await alice.says(f"通过 {number}", Says("该订单已驳回，不能通过"))
    await user.says("我的订单", Says("订单状态：已驳回", "驳回信息：附件二身份证复印件不清晰"))


async def test_applicant_corrects_only_the_named_scan_and_resubmits(
        app: App, scan_server: ScanServer) -> None:
    user, number = await submitted(app, scan_server)
    before = await order(number)
    alice = Technician(app, ALICE)
    await alice.says(f"驳回 {number} 附件二不清晰", Says("已驳回"),
                     tells=((user.user_id, Says("未通过审核")),))

    await user.says(f"修改 {number}", Says(f"修改订单 {number}", "附件二不清晰",
                                         "需要重新提供：附件二 经办人身份证复印件"),
                    Says("请发送【附件二 经办人身份证复印件】", "原填写：已上传"))
    await user.says(image(user.scan_url(scan_server, 22)), Says("已收到【附件二"),
                    Says("请核对", f"修改订单 {number}", "确认提交」重新提交"))
    await user.says("确认提交",
                    Says(f"订单 {number} 已重新提交", "修改了：附件二 经办人身份证复印件"),
                    staff=Says(number, "已重新提交", "修改了：附件二 经办人身份证复印件"))

    after = await order(number)
    assert after.status == "resubmitted"
    assert after.reject_reason is None
    assert after.fields == before.fields  # nothing else was asked or changed
    async with get_runtime().db.transaction() as session:
        rows = (await session.scalars(select(Attachment).where(
            Attachment.order_id == after.id).order_by(Attachment.id))).all()
        events = (await session.scalars(select(OrderEvent).where(
            OrderEvent.order_id == after.id).order_by(OrderEvent.id))).all()
    id_cards = [a for a in rows if a.slot == "scan_id_card"]
    assert [a.revision for a in id_cards] == [1, 2]  # both versions are kept
    assert id_cards[0].sha256 != id_cards[1].sha256
    assert [e.event for e in events] == ["submit", "reject", "resubmit"]
    assert events[-1].detail["changed"] == ["附件二 经办人身份证复印件"]
    assert events[-1].detail["previous_fields"] == before.fields
    await alice.says("待审核", Says(number, "（重新提交）"))
    await alice.says(f"历史 {number}", Says("提交", "驳回", "附件二不清晰", "重新提交",
                                           "修改了 附件二 经办人身份证复印件"))


async def test_a_correction_that_changes_nothing_is_not_resubmitted(
        app: App, scan_server: ScanServer) -> None:
    """The same 附件二 sent again: refused, saying nothing changed and what was asked; the form
    stays at its summary, and a real change then goes through."""
    user, number = await submitted(app, scan_server)
    await Technician(app, ALICE).says(f"驳回 {number} 附件二不清晰", Says("已驳回"),
                                      tells=((user.user_id, Says("未通过审核")),))
    await user.says(f"修改 {number}", Says(f"修改订单 {number}"), Says("请发送【附件二"))
    await user.says(image(user.scan_url(scan_server, 2)), Says("已收到【附件二"),
                    Says("请核对", f"修改订单 {number}"))
    await user.says("确认提交", Says(
        f"您还没有做任何修改，订单 {number} 没有重新提交", "驳回理由：附件二不清晰",
        "需要修改：附件二 经办人身份证复印件（收到的图片和原来的完全相同", "请核对",
        absent=("已重新提交",)))
    assert (await order(number)).status == "rejected"
    await user.says("修改 6", Says("【手机号】"))
    await user.says("13912345678", Says("请核对", "139****5678"))
    await user.says("确认提交", Says("已重新提交", "修改了：手机号"),
                    staff=Says(number, "修改了：手机号"))
    assert (await order(number)).status == "resubmitted"


async def test_revising_without_named_fields_lets_the_applicant_pick(
        app: App, scan_server: ScanServer) -> None:
    user, number = await submitted(app, scan_server)
    await Technician(app, ALICE).says(f"驳回 {number} 资料不全", Says("没有认出具体的项目"),
                                      tells=((user.user_id, Says("资料不全")),))
    await user.says(f"修改 {number}", Says("回复「修改 序号」修改相应的项目"), Says("请核对"))
    await user.says("修改 6", Says("【手机号】", "原填写：138****5678"))
    await user.says("13912345678", Says("请核对", "139****5678"))
    await user.says("确认提交", Says("已重新提交", "修改了：手机号"),
                    staff=Says("修改了：手机号", absent=("13912345678",)))


async def test_wrong_states_payment_shipping_and_completion(
        app: App, scan_server: ScanServer) -> None:
    user, number = await submitted(app, scan_server)
    alice = Technician(app, ALICE)
    await alice.says(f"收款 {number}", Says("该订单待审核，不能收款"))
    await alice.says(f"通过 {number}", Says("已通过"),
                     tells=((user.user_id, Says("审核通过")), (user.user_id, Says("支付二维码"))))
    await alice.says(f"发货 {number} 顺丰 SF1234567890", Says("该订单待支付，不能发货"))
    await alice.says(f"收款 {number}", Says("已登记", "收款 ¥260.00"),
                     tells=((user.user_id, Says(f"已收到订单 {number} 的付款 ¥260.00")),))
    await alice.says(f"待自取 {number}", Says("该订单选择了邮寄"))
    await alice.says(f"发货 {number} 顺丰", Says("用法：发货 订单号 快递公司 快递单号"))
    await alice.says(f"发货 {number} 顺丰 SF1234567890", Says("已登记", "顺丰 SF1234567890"),
                     tells=((user.user_id, Says("已寄出", "顺丰 快递单号 SF1234567890")),))
    await alice.says(f"发票 {number} 增值税普通发票 抬头：{user.company}", Says("已登记"),
                     tells=((user.user_id, Says("发票已开具", "增值税普通发票")),))
    await alice.says(f"完成 {number}", Says(f"订单 {number} 已办结"),
                     tells=((user.user_id, Says("已办结")),))
    await alice.says(f"完成 {number}", Says("该订单已完成，不能完成"))
    await user.says("我的订单", Says("订单状态：已完成", "快递单号：顺丰 SF1234567890",
                                  "发票信息：增值税普通发票"))


async def test_pickup_orders(app: App, scan_server: ScanServer) -> None:
    user, number = await submitted(app, scan_server, pickup="1")
    alice = Technician(app, ALICE)
    await alice.says(f"通过 {number}", Says("已通过"),
                     tells=((user.user_id, Says("审核通过")), (user.user_id, Says("支付二维码"))))
    await alice.says(f"收款 {number}", Says("已登记"), tells=((user.user_id, Says("付款")),))
    await alice.says(f"发货 {number} 顺丰 SF1234567890", Says("该订单选择了自取"))
    await alice.says(f"待自取 {number}", Says("已设为待自取"),
                     tells=((user.user_id, Says("已可领取", "身份证原件")),))


async def test_four_eyes_needs_two_different_technicians(
        app: App, scan_server: ScanServer, settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings.staff, "approvals_required", 2)
    user, number = await submitted(app, scan_server)
    alice, bob = Technician(app, ALICE), Technician(app, BOB)
    await alice.says(f"通过 {number}", Says("已记录您对", "（1/2）", "还需另一位技术人员复核"))
    await alice.says(f"通过 {number}", Says("您已经通过过该订单", "需要另一位技术人员复核"))
    assert (await order(number)).status == "submitted"
    await bob.says(f"通过 {number}", Says("已通过"),
                   tells=((user.user_id, Says("审核通过")), (user.user_id, Says("支付二维码"))))
    await bob.says(f"历史 {number}", Says(f"qq:{ALICE} 通过（待复核）", f"qq:{BOB} 通过"))


async def test_search_history_and_usage(app: App, scan_server: ScanServer) -> None:
    user, number = await submitted(app, scan_server)
    alice = Technician(app, ALICE)
    await alice.says(f"订单 待审核 {user.uscc}", Says("找到 1 个订单", number, "待审核"))
    await alice.says("订单 已完成 没有这家公司", Says("没有符合条件的订单"))
    await alice.says(f"历史 {number}", Says(f"订单 {number} 的办理记录",
                                           f"qq:{user.user_id} 提交 填写中 → 待审核"))
    await alice.says("查看", Says("请写上订单号", "用法：查看 订单号"))
    await alice.says("查看 XB-000000-AAAA", Says("没有找到订单"))


async def test_a_number_no_order_has_and_a_number_typed_without_a_space(
        app: App, scan_server: ScanServer) -> None:
    """「查看 XB-000000-0000」 is answered 「没有找到」 (it was 「请写上订单号」); 「查看XB-…」
    reaches the desk (it fell through to the applicant's menu); likewise the applicant's 查询."""
    user, number = await submitted(app, scan_server)
    alice = Technician(app, ALICE)
    await alice.says("查看 XB-000000-0000", Says("没有找到订单 XB-000000-0000",
                                                 absent=("请写上订单号",)))
    await alice.says(f"查看{number.lower()}", Says(number, "审核：「通过"), *[Says()] * 4)
    await alice.says(f"历史{number}", Says(f"订单 {number} 的办理记录"))
    await alice.says("通过XB-000000-0000", Says("没有找到订单 XB-000000-0000"))
    await user.says("查询 XB-000000-0000", Says("没有找到本单位的订单 XB-000000-0000",
                                                absent=("请在「查询」后面写上订单号",)))
    await user.says(f"查询{number}", Says(f"订单号：{number}", "订单状态：待审核"))
    await user.says("查询", Says("请在「查询」后面写上订单号"))
    await user.says("查询进度", Says("请在「查询」后面写上订单号"))


async def test_group_commands_are_masked_and_other_groups_ignored(
        app: App, scan_server: ScanServer) -> None:
    from nonebot.adapters.onebot.v11 import Adapter, Bot

    from plugins.chat import chat as desk
    from tests.support.helpers import SELF_ID, group_message

    _, number = await submitted(app, scan_server)
    await Technician(app, ALICE).says(f"历史 {number}", Says("办理记录"), group=True)
    async with app.test_matcher(desk) as ctx:
        import nonebot

        bot = ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter), self_id=str(SELF_ID))
        ctx.receive_event(bot, group_message(12345, ALICE, f"通过 {number}"))
    assert (await order(number)).status == "submitted"


def test_qr_png_holds_the_payment_url() -> None:
    import io
    import shutil
    import subprocess

    from PIL import Image

    from bot.services.payment import payment_url, qr_png

    url = payment_url("https://pay.example.test/ca?order={number}&amount={amount}",
                      "XB-261125-7KQ3", 26000)
    assert url == "https://pay.example.test/ca?order=XB-261125-7KQ3&amount=260.00"
    png = qr_png(url)
    assert Image.open(io.BytesIO(png)).format == "PNG"
    zbarimg = shutil.which("zbarimg")
    assert zbarimg, "zbar-tools is installed by scripts/test"
    decoded = subprocess.run([zbarimg, "--raw", "-q", "-"], input=png, capture_output=True,
                             check=True).stdout.decode().strip()
    assert decoded == url
    assert base64.b64encode(png)  # what goes into the OneBot image segment


async def test_a_locked_database_gets_the_technician_a_retry_message(
        make_runtime: MakeRuntime) -> None:
    """Another writer holds SQLite past the busy timeout: the approval is not done, and the
    technician is told so instead of hearing nothing; afterwards it works by itself."""
    runtime = await make_runtime('[staff]\ntechnicians = ["qq:900001"]\n')
    technician = Account("qq", "900001")
    async with runtime.db.transaction() as session:
        company = await Companies(session).add(fake_uscc(), "临沂繁忙测试有限公司", None)
        order = await file_order(session, runtime.settings, order_type="unlock",
                                 values={}, scans={}, company_id=company.id, actor="test")
    holder = sqlite3.connect(runtime.settings.data_dir / "cadesk.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        [busy] = await runtime.desk.execute(technician, f"通过 {order.number}", private=True)
        assert "系统繁忙，「通过」没有执行" in busy
        holder.execute("COMMIT")
        [done] = await runtime.desk.execute(technician, f"通过 {order.number}", private=True)
        assert "已通过" in done
    finally:
        holder.close()


async def test_a_technicians_help_lists_the_commands_but_a_form_keeps_its_own(app: App) -> None:
    from nonebot.adapters.onebot.v11 import Adapter, Bot

    from plugins.review import is_review_command
    from tests.support.helpers import SELF_ID, private_message

    alice = Technician(app, ALICE)
    await alice.says("帮助", Says("技术人员命令", "· 通过 订单号 — ", "· 帮助 — ",  # no [pki] here
                                  absent=("· 制证", "· 吊销 证书")))
    await alice.says("帮助", Says("技术人员命令"), group=True)
    await alice.says("制证 XB-261125-7KQ3", Says("本服务未开通证书签发"))
    as_applicant = Applicant(app, ALICE)
    await as_applicant.bind()
    # bound to a company too: the desk's commands and the applicant's menu, both
    await alice.says("帮助", Says("技术人员命令", "· 通过 订单号 — "),
                     Says("您同时绑定了单位", f"当前单位：{as_applicant.company}", "· 新办证书 — ",
                          "· 我的订单 — "))
    await alice.says("帮助", Says("技术人员命令", absent=("新办证书",)), group=True)
    async with app.test_api() as ctx:
        bot = ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter), self_id=str(SELF_ID))
        assert await is_review_command(bot, private_message(ALICE, "帮助"))
        assert not await is_review_command(bot, private_message(123456, "帮助"))  # an applicant
    await as_applicant.says("新办证书", Says("开始办理【证书新办/补办】"), Says("【证书年限】"))
    async with app.test_api() as ctx:
        bot = ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter), self_id=str(SELF_ID))
        assert not await is_review_command(bot, private_message(ALICE, "帮助"))  # the field's
        assert await is_review_command(bot, private_message(ALICE, "解锁状态 XB-261125-7KQ3"))
        assert await is_review_command(bot, private_message(123456, "通过 XB-261125-7KQ3"))


async def test_a_technicians_bare_loss_report_is_the_applicant_form_once_bound(app: App) -> None:
    """挂失 序列号 理由 is the technician's hold; the bare 挂失 is the applicant's form for a
    technician bound to a company, and the technician's usage for one who is not (or in the
    group); an applicant's 挂失 never reaches the desk."""
    from nonebot.adapters.onebot.v11 import Adapter, Bot

    from plugins.review import is_review_command
    from tests.support.helpers import SELF_ID, STAFF_GROUP, group_message, private_message

    async def routed(user_id: int, text: str, group: bool = False) -> bool:
        async with app.test_api() as ctx:
            bot = ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter),
                                 self_id=str(SELF_ID))
            event = (group_message(STAFF_GROUP, user_id, text) if group
                     else private_message(user_id, text))
            return await is_review_command(bot, event)

    assert await routed(BOB, "挂失 1a2b 单位来电")
    assert await routed(BOB, "挂失")  # not bound: the desk answers with the usage
    await Technician(app, BOB).says("挂失", Says("本服务未开通证书签发"))  # no [pki] here
    assert not await routed(123456, "挂失 1a2b 单位来电")
    await Applicant(app, BOB).bind()
    assert not await routed(BOB, "挂失")  # bound: the applicant's loss form
    assert await routed(BOB, "挂失", group=True)
    assert await routed(BOB, "挂失 1a2b 单位来电")
