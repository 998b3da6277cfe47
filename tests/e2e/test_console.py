"""The Console adapter: a newcomer's terminal chat, where a typed file path stands in for a scan."""

import random
from datetime import datetime
from pathlib import Path

import nonebot
from nonebot.adapters.console import Adapter, Bot, Message
from nonebot.adapters.console.event import PublicMessageEvent
from nonebug import App
from nonechat.model import Channel, Robot, User

from bot.samples import fake_id_number, fake_uscc, sample_scan
from tests.support.helpers import Says

GENERAL = Channel("general", "通用")  # the channel the Console opens on


def typed(text: str, n: int) -> PublicMessageEvent:
    return PublicMessageEvent(time=datetime.now(), self_id="console-bot", message_id=str(n),
                              user=User("console-user"), channel=GENERAL, message=Message(text))


async def test_an_application_on_the_console_with_file_paths(app: App, tmp_path: Path) -> None:
    from plugins.chat import chat

    scans = []
    for n in range(4):
        path = tmp_path / f"scan {n}.jpg"  # a space in the path, as on many desktops
        path.write_bytes(sample_scan(f"console {n}"))
        scans.append(path)
    script: list[tuple[str, tuple[Says, ...]]] = [
        ("你好", (Says("欢迎"), Says("【统一社会信用代码】"))),
        (fake_uscc(), (Says("【单位名称】"),)),
        ("控制台测试有限公司", (Says("【注册协议】"),)),
        ("同意", (Says("【申报人】"),)), ("王小明", (Says("【联系电话】"),)),
        ("13812345678", (Says("待核验", "【单位绑定核验】"), Says("【用户类型】"))),
        ("取消", (Says("确定要放弃"),)), ("是", (Says("已放弃"),)),
        ("新办证书", (Says("开始办理"), Says("【证书年限】"))),
        ("1", (Says("【项目所属地区】"),)), ("临沂", (Says("【办理Ukey数量】"),)),
        ("1", (Says("【经办人姓名】"),)), ("张三", (Says("【经办人身份证号】"),)),
        (fake_id_number(), (Says("【手机号】"),)), ("13812345678", (Says("【是否自取】"),)),
        ("自取", (Says("【附件一 信息印章采集表】", "请输入图片文件的路径"),)),
        (str(tmp_path / "missing.jpg"), (Says("读不到文件", "missing.jpg", "【附件一"),)),
        ("稍后再传", (Says("请直接发送图片"),)),
        (f"'{scans[0]}'", (Says("已收到【附件一"), Says("【附件二", "图片文件的路径"))),
        (str(scans[1]), (Says("已收到【附件二"), Says("【附件三"))),
        (str(scans[2]), (Says("已收到【附件三"), Says("【附件四"))),
        (str(scans[3]), (Says("已收到【附件四"), Says("请核对"))),
        ("确认提交", (Says("提交成功", "订单号：XB-"),)),
    ]
    for n, (text, replies) in enumerate(script):
        async with app.test_matcher(chat) as ctx:
            bot = ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter),
                                 self_id=Robot("console-bot"))
            event = typed(text, n)
            ctx.receive_event(bot, event)
            for reply in replies:
                ctx.should_call_send(event, reply, result=None)


def test_console_text_cannot_break_the_terminal_ui() -> None:
    from nonebot.adapters.console import Adapter as ConsoleAdapter
    from textual.content import Content

    from bot.adapters.chat_delivery import to_message
    from bot.services.messages import Picture

    class FakeConsoleBot:
        adapter = ConsoleAdapter

    bot = FakeConsoleBot()
    texts = [to_message(bot, "驳回理由：[附件二] 不清晰，见 https://x.example/a?b=[1]"),
             to_message(bot, Picture(b"png", "支付二维码"))]  # type: ignore[arg-type]
    for text in texts:
        # what the Console does with a message for another channel: a markup notification
        rendered = Content.from_markup(f"Message from Bot: {text}")
        assert rendered.plain == f"Message from Bot: {text}"
    assert "［附件二］" in texts[0]
    assert "支付二维码" in texts[1]


def test_a_picture_on_the_console_is_saved_where_its_person_can_open_it() -> None:
    from nonebot.adapters.console import Adapter as ConsoleAdapter

    from bot.adapters.chat_delivery import to_message
    from bot.services.messages import Picture

    class FakeConsoleBot:
        adapter = ConsoleAdapter

    png = b"\x89PNG\r\n\x1a\n" + random.randbytes(64)
    picture = Picture(png, "CA数字证书密码重置申请表")
    text = str(to_message(FakeConsoleBot(), picture))  # type: ignore[arg-type]
    assert "CA数字证书密码重置申请表" in text
    saved = Path(text.split("已保存为 ")[1].split("，")[0])
    assert saved.suffix == ".png"
    assert saved.read_bytes() == png
    assert saved.stat().st_mode & 0o077 == 0  # a filled-in form holds the applicant's answers
