"""The applicant's conversation, through nonebug: every message in, every reply out."""

import hashlib
import re
from datetime import timedelta

from loguru import logger
from nonebot.adapters.onebot.v11 import Message
from nonebug import App
from sqlalchemy import select, update

from bot.adapters.chat_delivery import NonebotChat
from bot.runtime import get_runtime, start_runtime, stop_runtime
from bot.samples import sample_scan
from storage.models import Conversation, Order, OrderEvent
from tests.support.chat import Applicant
from tests.support.helpers import Says, ScanServer, image


async def orders_of(uscc: str) -> list[Order]:
    async with get_runtime().db.transaction() as session:
        orders = (await session.scalars(select(Order))).unique().all()
        return [o for o in orders if o.company.uscc == uscc]


async def test_first_contact_binds_the_company(app: App) -> None:
    await Applicant(app).bind()


async def test_binding_refuses_a_bad_code_and_a_refused_pledge(app: App) -> None:
    user = Applicant(app)
    await user.says("在吗", Says("欢迎使用"), Says("【统一社会信用代码】"))
    await user.says(user.uscc[:-1] + ("0" if user.uscc[-1] != "0" else "1"),
                    Says("校验位不正确", "请输入【统一社会信用代码】"))
    await user.says(user.uscc, Says("【单位名称】"))
    await user.says(user.company, Says("【注册协议】"))
    await user.says("不同意", Says("须同意注册协议", "【注册协议】"))
    await user.says("同意", Says("【申报人】"))
    await user.says("王", Says("【申报人】"))  # refused: too short to be a name
    await user.says("王小明", Says("【联系电话】"))
    await user.says("12345", Says("【联系电话】"))
    await user.says("13812345678", Says("待核验", "开始办理【单位绑定核验】"),
                    Says("【用户类型】", "16. 非金融机构"))


async def test_whole_application_files_an_order_with_four_scans(
        app: App, scan_server: ScanServer) -> None:
    user = Applicant(app)
    await user.bind()
    await user.fill_until_scans()
    await user.send_scans(scan_server)
    await user.says("确认提交", Says("提交成功", "订单号：XB-", "¥260.00", "查询"),
                    staff=Says("【证书新办】XB-", "新订单待审核", user.company, "查看 XB-"))

    [order] = await orders_of(user.uscc)
    assert order.status == "submitted"
    assert order.type == "certificate"
    assert order.fields["handler_id_number"] == user.id_number
    assert order.fields["company_name"] == user.company
    assert order.fields["org_id"] == user.uscc
    assert order.amount_cents == 26000
    assert sorted(a.slot for a in order.attachments) == sorted(
        ["scan_form", "scan_id_card", "scan_authorisation", "scan_licence"])
    store = get_runtime().scans
    for attachment in order.attachments:
        data = store.read(attachment.sha256)
        assert hashlib.sha256(data).hexdigest() == attachment.sha256
        assert (attachment.format, attachment.width, attachment.height) == ("JPEG", 1240, 1754)
        assert store.path(attachment.sha256).stat().st_mode & 0o077 == 0
    async with get_runtime().db.transaction() as session:
        events = (await session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order.id))).all()
        assert [(e.from_status, e.to_status, e.actor) for e in events] == [
            ("draft", "submitted", f"qq:{user.user_id}")]
        assert await session.scalar(select(Conversation).where(
            Conversation.user_id == str(user.user_id))) is None


async def test_every_kind_of_invalid_answer_is_refused_and_reasked(app: App) -> None:
    user = Applicant(app)
    await user.bind()
    await user.says("新办证书", Says("开始办理"), Says("【证书年限】"))
    await user.says("5", Says("请回复选项的序号或文字", "【证书年限】"))
    await user.says("3年", Says("【项目所属地区】"))
    await user.says("北京", Says("请回复选项的序号或文字", "【项目所属地区】"))
    await user.says("临沂", Says("【办理Ukey数量】"))
    await user.says("100", Says("1–20", "【办理Ukey数量】"))
    await user.says("2", Says("【经办人姓名】"))
    await user.says("Tom", Says("中文姓名", "【经办人姓名】"))
    await user.says("张三", Says("【经办人身份证号】"))
    await user.says(user.id_number[:-1] + "1", Says("校验位不正确", "【经办人身份证号】"))
    await user.says(user.id_number[:10], Says("您输入了 10 位", "【经办人身份证号】"))
    await user.says(user.id_number.lower(), Says("【手机号】"))
    await user.says("1381234567", Says("应为 11 位", "【手机号】"))
    await user.says("05398123456", Says("固定电话", "【手机号】"))
    await user.says("13812345678", Says("【是否自取】"))
    await user.says("快递", Says("1 自取、2 邮寄", "【是否自取】"))
    await user.says("自取", Says("【附件一 信息印章采集表】"))
    await user.says("我稍后发", Says("请直接发送图片"))


async def test_bad_scans_are_refused_with_the_reason(app: App, scan_server: ScanServer) -> None:
    user = Applicant(app)
    await user.bind()
    await user.fill_until_scans(pickup="1")
    # a format no phone sends as a scan (PNG and HEIC are taken, kept as JPEG)
    webp = scan_server.add(f"{user.user_id}.webp", sample_scan("webp", fmt="WEBP"))
    small = scan_server.add(f"{user.user_id}-small.jpg", sample_scan("s", size=(400, 300)))
    huge = scan_server.add(f"{user.user_id}-huge.bmp", sample_scan("h", "BMP", (2000, 2800)))
    scan_server.slow.add(f"{user.user_id}-slow.jpg")
    streamed = scan_server.add(f"{user.user_id}-stream.bmp", sample_scan("c", "BMP", (2000, 2800)))
    scan_server.chunked.add(f"{user.user_id}-stream.bmp")
    first = "【附件一 信息印章采集表】未通过检查"
    await user.says(image(webp), Says(first, "WEBP", "请发送【附件一 信息印章采集表】"))
    await user.says(image(small), Says(first, "分辨率太低"))
    await user.says(image(huge), Says(first, "超过 2 MB"))
    await user.says(image(streamed), Says(first, "超过 2 MB"))  # no Content-Length to trust
    await user.says(image(scan_server.url("missing.jpg")), Says(first, "HTTP 404"))
    await user.says(image(scan_server.url(f"{user.user_id}-slow.jpg")), Says(first, "超时"))
    await user.says(image(user.scan_url(scan_server, 1)), Says("已收到【附件一"),
                    Says("【附件二 经办人身份证复印件】"))


async def test_several_images_in_one_message_fill_the_next_scans(
        app: App, scan_server: ScanServer) -> None:
    user = Applicant(app)
    await user.bind()
    await user.fill_until_scans()
    urls = [user.scan_url(scan_server, n) for n in range(1, 6)]
    await user.says(Message([image(url) for url in urls]),
                    Says("已收到【附件一"), Says("已收到【附件二"), Says("已收到【附件三"),
                    Says("已收到【附件四"), Says("多出的 1 张图片没有使用"), Says("请核对"))


async def test_back_help_and_cancel(app: App, scan_server: ScanServer) -> None:
    user = Applicant(app)
    await user.bind()
    await user.fill_until_scans()
    await user.says(image(user.scan_url(scan_server, 1)), Says("已收到"), Says("【附件二"))
    await user.says("上一步", Says("【附件一 信息印章采集表】", "原填写：已上传"))
    await user.says("上一步", Says("请输入【邮寄地址】", "原填写：金雀山路"))
    await user.says("帮助", Says("【邮寄地址】详细收件地址", "上一步"))
    await user.says("取消", Says("确定要放弃", "回复「是」放弃"))
    await user.says("是", Says("已放弃", "已删除"))
    [upload] = [n for n in scan_server.files if n == f"{user.user_id}-1.jpg"]
    sha = hashlib.sha256(scan_server.files[upload]).hexdigest()
    assert not get_runtime().scans.path(sha).exists()
    await user.says("继续", Says("当前没有未完成的办理"))
    assert await orders_of(user.uscc) == []


async def test_edit_at_summary(app: App, scan_server: ScanServer) -> None:
    user = Applicant(app)
    await user.bind()
    await user.fill_until_scans()
    await user.send_scans(scan_server)
    await user.says("修改 5", Says("请输入【经办人身份证号】", "原填写：", user.id_number[-4:]))
    other = Applicant(app).id_number
    await user.says(other, Says("请核对", "5. 经办人身份证号：", other[-4:], absent=(other,)))
    await user.says("修改 7", Says("【是否自取】"))
    await user.says("自取", Says("请核对", absent=("邮寄地址",)))
    await user.says("修改 11", Says("【附件四 机构营业执照】"))
    await user.says(image(user.scan_url(scan_server, 9)), Says("已收到"), Says("请核对"))
    await user.says("好的", Says("请回复「确认提交」"))
    await user.says("确认提交", Says("提交成功"), staff=Says("新订单待审核"))
    [order] = await orders_of(user.uscc)
    assert order.fields["handler_id_number"] == other
    assert order.fields["self_pickup"] == "自取"
    assert "address" not in order.fields


async def test_flow_survives_a_runtime_restart(app: App, settings) -> None:
    user = Applicant(app)
    await user.bind()
    await user.says("补办证书", Says("开始办理【证书新办/补办】"), Says("【证书年限】"))
    await user.says("2", Says("【项目所属地区】"))
    await stop_runtime()
    await start_runtime(settings, NonebotChat())  # a new process reads the same database
    await user.says("临沂", Says("【办理Ukey数量】", "第 3/13 项"))


async def test_idle_flow_waits_for_continue(app: App) -> None:
    user = Applicant(app)
    await user.bind()
    await user.says("新办证书", Says("开始办理"), Says("【证书年限】"))
    await user.says("1", Says("【项目所属地区】"))
    async with get_runtime().db.transaction() as session:
        conversation = await session.scalar(select(Conversation).where(
            Conversation.user_id == str(user.user_id)))
        await session.execute(update(Conversation).where(Conversation.id == conversation.id)
                              .values(updated_at=conversation.updated_at - timedelta(days=1)))
    await user.says("临沂", Says("未完成的【证书新办/补办】", "已填写 1/13 项", "继续"))
    await user.says("新办证书", Says("未完成的【证书新办/补办】"))
    await user.says("继续", Says("欢迎回来"), Says("【项目所属地区】"))
    await user.says("临沂", Says("【办理Ukey数量】"))


async def test_second_handler_sees_the_company_orders(app: App, scan_server: ScanServer) -> None:
    first = Applicant(app)
    await first.bind()
    await first.fill_until_scans()
    await first.send_scans(scan_server)
    await first.says("确认提交", Says("提交成功"), staff=Says("新订单待审核"))
    [order] = await orders_of(first.uscc)

    second = Applicant(app, uscc=first.uscc)
    await second.says("你好", Says("欢迎"), Says("【统一社会信用代码】"))
    await second.says(first.uscc, Says("【单位名称】"))
    await second.says("另一家公司", Says("【注册协议】"))
    await second.says("同意", Says("【申报人】"))
    await second.says("赵六", Says("【联系电话】"))
    await second.says("13700002222", Says("单位名称与您填写的不一致", "【单位名称】"))
    number = ""

    class Request(Says):
        def __eq__(self, other: object) -> bool:
            nonlocal number
            found = re.search(r"同意绑定 (BD-\S+?)」", str(other))
            number = found.group(1) if found else ""
            return bool(found) and "申报人 赵*，手机 137****2222" in str(other)

    await second.says_private(first.company, (Says("待核验", "绑定申请已提交", "BD-"),),
                              others=((first.user_id, Request()),),
                              staff=Says("【单位绑定】BD-", "同意绑定"))
    await first.says_private(f"同意绑定 {number}", (Says("已核验的经办人"),),
                             others=((second.user_id, Says("绑定已核验")),
                                     (second.user_id, Says("请回复", "我的订单"))),
                             staff=Says("确认了绑定申请"))
    await second.says("我的订单", Says(f"【{first.company}】的订单（共 2 个）", order.number,
                                      "项目：临沂", "订单类型：证书新办", "¥260.00",
                                      "订单状态：待审核", "驳回信息：—", "快递单号：—",
                                      "发票信息：—"))
    await second.says(f"查询 {order.number.lower()}",
                      Says(order.number, "经办人身份证号：", "138****5678",
                           "附件四 机构营业执照：已上传",
                           "待审核", absent=(first.id_number, "13812345678")))

    stranger = Applicant(app)
    await stranger.bind()
    await stranger.says(f"查询 {order.number}", Says("没有找到本单位的订单"))
    await stranger.says("我的订单", Says("还没有订单"))


async def test_query_during_a_flow_reminds_of_the_flow(app: App) -> None:
    user = Applicant(app)
    await user.bind()
    await user.says("新办证书", Says("开始办理"), Says("【证书年限】"))
    await user.says("我的订单", Says("还没有订单"), Says("未完成的【证书新办/补办】"))
    await user.says("继续", Says("【证书年限】"))


async def test_personal_numbers_never_reach_the_log(app: App) -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, level="TRACE", format="{message}")
    try:
        user = Applicant(app)
        await user.bind()
        await user.fill_until_scans()
    finally:
        logger.remove(sink)
    text = "".join(lines)
    assert user.id_number[-4:] in text  # the messages were logged, masked
    assert user.id_number not in text
    assert "13812345678" not in text



async def test_a_typed_url_over_qq_is_never_fetched(app: App, scan_server: ScanServer) -> None:
    user = Applicant(app)
    await user.bind()
    await user.fill_until_scans(pickup="1")
    url = user.scan_url(scan_server, 1)
    await user.says(url, Says("请直接发送图片"))  # text, not an image segment
    assert url.rsplit("/", 1)[-1] not in scan_server.requested
