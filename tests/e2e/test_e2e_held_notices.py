"""End to end on a WeChat official account: a notice made after the applicant's reply window
closed is not sent as a 客服消息 (WeChat would refuse it), goes out by mail at once, and comes
first with the answer to the applicant's next message — the real bot process, the WeChat
stand-in on 127.0.0.1, and a real SMTP server."""

import asyncio
import random
from pathlib import Path

from bot.samples import fake_id_number, fake_uscc, sample_scan
from tests.support.helpers import wait_for
from tests.support.smtp_sink import SmtpSink
from tests.support.wechat_platform import (
    APPLICANT,
    TECHNICIAN,
    WeChatPlatform,
    make_wechat_instance,
)

WINDOW_SECONDS = 3  # WeChat's 48 hours, shortened through [channels]
ADDRESS = "jing@example.com"


def config(smtp: SmtpSink) -> str:
    return f"""
[staff]
technicians = ["wechat:{TECHNICIAN}"]
[email]
enabled = true
host = "127.0.0.1"
port = {smtp.port}
security = "none"
from_address = "ca@centre.example"
[channels]
wechat = {{ reply_window_minutes = {WINDOW_SECONDS / 60} }}
"""


async def test_a_notice_after_the_window_is_mailed_and_comes_with_the_next_message(
        tmp_path: Path, smtp: SmtpSink) -> None:
    rng = random.Random(1616)
    async with WeChatPlatform() as wechat:
        bot = make_wechat_instance(tmp_path, wechat, config(smtp))
        await bot.start()
        try:
            async def say(text: str, *until: str, who: str = APPLICANT) -> str:
                assert await wechat.text(who, text) == 200
                return "\n".join(s.reads() for s in await wechat.replies_until(*until))

            for text, until in (("你好", "【统一社会信用代码】"), (fake_uscc(rng), "【单位名称】"),
                                ("临沂微信测试有限公司", "【注册协议】"), ("同意", "【申报人】"),
                                ("王小明", "【联系电话】"), ("13812345678", "【用户类型】"),
                                ("施工单位", "【经办人身份证号】"),
                                (fake_id_number(rng), "【附件一")):
                await say(text, until)
            for n, until in ((1, "【附件二"), (2, "确认提交")):
                assert await wechat.image(APPLICANT, sample_scan(f"held {n}")) == 200
                await wechat.replies_until(until)
            done = await say("确认提交", "绑定申请已提交")
            request = done.split("编号 ", 1)[1].split("。", 1)[0]
            await say(f"邮箱 {ADDRESS}", "已设置通知邮箱")

            await asyncio.sleep(WINDOW_SECONDS + 0.5)  # the applicant says nothing for a while
            wechat.beyond_window.add(APPLICANT)  # and WeChat would refuse a 客服消息 now
            await say(f"通过 {request}", "已通过绑定申请", who=TECHNICIAN)
            await wait_for(lambda: any("绑定已核验" in str(m["Subject"]) for m in smtp.messages))
            [mail] = [m for m in smtp.messages if "绑定已核验" in str(m["Subject"])]
            assert mail["To"] == ADDRESS  # told at once, by mail
            assert not [s for s in await wechat.quiet(1) if s.to == APPLICANT]
            assert wechat.templates == []  # no template set up: nothing else could reach them

            wechat.beyond_window.discard(APPLICANT)  # they write again: the window reopens
            assert await wechat.text(APPLICANT, "帮助") == 200
            told = await wechat.replies_until("您有 1 条新通知", "请回复")
            assert [s.to for s in told] == [APPLICANT] * len(told)
            assert told[0].text.startswith(
                f"您有 1 条新通知：\n1. 绑定已核验：您的绑定申请 {request}")
            assert "请回复" in told[-1].text  # then the answer to 帮助 (the menu)
            assert not [s for s in await wechat.quiet(1) if "绑定已核验" in s.text]  # once
        finally:
            await bot.stop()
    assert "[ERROR]" not in (tmp_path / "bot.log").read_text(errors="replace")
