"""Driving the applicant plugin through nonebug, one message at a time."""

import itertools
import random
import re
from dataclasses import dataclass, field

import nonebot
from nonebot.adapters.onebot.v11 import Adapter, Bot, Message
from nonebug import App

from bot.samples import fake_id_number, fake_uscc, sample_scan
from tests.support.helpers import (
    SELF_ID,
    STAFF_GROUP,
    Says,
    ScanServer,
    group_message,
    image,
    private_message,
)

ALICE, BOB = 900001, 900002  # the technicians in the test bot.toml (tests/conftest.py)
_users = itertools.count(200_001)
_rng = random.Random(42)


@dataclass
class Applicant:
    """One chat account, with made-up company and personal data of its own."""

    app: App
    user_id: int = field(default_factory=lambda: next(_users))
    uscc: str = field(default_factory=lambda: fake_uscc(_rng))
    company: str = "临沂测试建设有限公司"
    id_number: str = field(default_factory=lambda: fake_id_number(_rng, ends_with_x=True))

    async def says(self, message: str | Message, *expected: str | Says,
                   staff: Says | None = None) -> None:
        """Send one message and expect exactly these replies, in order (after a notice to the
        staff group, when ``staff`` is given)."""
        from plugins.chat import chat as applicant

        async with self.app.test_matcher(applicant) as ctx:
            bot = ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter),
                                 self_id=str(SELF_ID))
            event = private_message(self.user_id, message)
            ctx.receive_event(bot, event)
            if staff is not None:
                ctx.should_call_api("send_group_msg", {"group_id": STAFF_GROUP, "message": staff},
                                    result={"message_id": 1})
            for reply in expected:
                ctx.should_call_send(event, reply, result={"message_id": 1})

    async def says_private(self, message: str, expected: tuple[str | Says, ...],
                           others: tuple[tuple[int, str | Says], ...] = (),
                           staff: Says | None = None) -> None:
        """Send one message expecting, in order: private messages to ``others`` (user id,
        message), the staff group's notice, then the replies."""
        from plugins.chat import chat as applicant

        async with self.app.test_matcher(applicant) as ctx:
            bot = ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter),
                                 self_id=str(SELF_ID))
            event = private_message(self.user_id, message)
            ctx.receive_event(bot, event)
            for user_id, text in others:
                ctx.should_call_api("send_private_msg", {"user_id": user_id, "message": text},
                                    result={"message_id": 1})
            if staff is not None:
                ctx.should_call_api("send_group_msg", {"group_id": STAFF_GROUP, "message": staff},
                                    result={"message_id": 1})
            for reply in expected:
                ctx.should_call_send(event, reply, result={"message_id": 1})

    async def answer_binding(self) -> None:
        """The binding questions up to 联系电话 (the last answer is the caller's)."""
        await self.says("你好", Says("欢迎使用"), Says("请输入【统一社会信用代码】"))
        await self.says(self.uscc, Says("请输入【单位名称】"))
        await self.says(self.company, Says("请选择【注册协议】", "1. 同意"))
        await self.says("1", Says("请输入【申报人】"))
        await self.says("王小明", Says("请输入【联系电话】"))

    async def bind(self, verified: bool = True) -> None:
        """Bind as a company's first account, put the documents aside, and (by default) be
        verified as a technician would after checking them."""
        await self.answer_binding()
        await self.says("13812345678", Says("待核验", self.company, "开始办理【单位绑定核验】"),
                        Says("请选择【用户类型】"))
        await self.says("取消", Says("确定要放弃"))
        await self.says("是", Says("已放弃"))
        if verified:
            await self.verify()

    async def verify(self) -> None:
        from bot.domain.trust import HandlerStatus
        from bot.runtime import get_runtime
        from storage.repositories import Handlers

        async with get_runtime().db.transaction() as session:
            handler = await Handlers(session).get("qq", str(self.user_id))
            assert handler is not None
            handler.status = HandlerStatus.VERIFIED

    async def fill_until_scans(self, pickup: str = "2") -> None:
        await self.says("新办证书", Says("开始办理【证书新办/补办】"), Says("【证书年限】"))
        await self.says("1", Says("【项目所属地区】", "12. 临沂"))
        await self.says("12", Says("【办理Ukey数量】"))
        await self.says("1", Says("【经办人姓名】"))
        await self.says("张三", Says("请输入【经办人身份证号】"))
        await self.says(self.id_number, Says("请输入【手机号】"))
        await self.says("13812345678", Says("请选择【是否自取】"))
        if pickup == "1":
            await self.says("1", Says("请发送【附件一 信息印章采集表】的图片"))
            return
        await self.says("2", Says("请输入【地级市】"))
        await self.says("山东省临沂市兰山区", Says("请输入【邮寄地址】"))
        await self.says("金雀山路 1 号 测试大厦 5 楼",
                        Says("请发送【附件一 信息印章采集表】的图片", "加盖单位公章"))

    async def send_scans(self, server: ScanServer) -> None:
        titles = ["附件二 经办人身份证复印件", "附件三 单位授权书及诚信承诺书",
                  "附件四 机构营业执照"]
        for n, title in enumerate(titles, 1):
            await self.says(image(self.scan_url(server, n)), Says("已收到"),
                            Says(f"请发送【{title}】的图片"))
        await self.says(image(self.scan_url(server, 4)), Says("已收到【附件四 机构营业执照】"),
                        Says("请核对", "确认提交"))

    async def submit(self, staff: Says) -> str:
        """确认提交, expecting the staff notice; returns the order number."""
        number = ""

        class Receipt(Says):
            def __eq__(self, other: object) -> bool:
                nonlocal number
                found = re.search(r"订单号：(\S+)", str(other))
                number = found.group(1) if found else ""
                return bool(found)

        await self.says("确认提交", Receipt(), staff=staff)
        return number

    def scan_url(self, server: ScanServer, n: int, fmt: str = "JPEG") -> str:
        return server.add(f"{self.user_id}-{n}.jpg", sample_scan(f"{self.user_id} {n}", fmt=fmt))


@dataclass
class Technician:
    app: App
    user_id: int = 900001

    async def says(self, text: str, *expected: str | Says, group: bool = False,
                   tells: tuple[tuple[int, str | Says], ...] = ()) -> None:
        """A review command, in private or in the staff group; ``tells`` are the messages the
        applicants get (user id, message), which come before the technician's reply."""
        from plugins.chat import chat as desk

        async with self.app.test_matcher(desk) as ctx:
            bot = ctx.create_bot(base=Bot, adapter=nonebot.get_adapter(Adapter),
                                 self_id=str(SELF_ID))
            event = (group_message(STAFF_GROUP, self.user_id, text) if group
                     else private_message(self.user_id, text))
            ctx.receive_event(bot, event)
            for user_id, message in tells:
                ctx.should_call_api("send_private_msg", {"user_id": user_id, "message": message},
                                    result={"message_id": 1})
            for reply in expected:
                ctx.should_call_send(event, reply, result={"message_id": 1})
