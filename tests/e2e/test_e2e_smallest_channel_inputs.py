"""The smallest, most broken inputs the two official channels take from outside, sent to the
real bot process through the platforms' stand-ins: events signed as the platform signs them but
with a field missing or of the wrong kind, an empty body, a photo WeChat no longer has, a 1×1
photo where a scan is asked. Each ends in a refusal (an HTTP 4xx to the platform, or a reason
in Chinese to the person), never a 5xx or a traceback, and the very next good message is
answered: the webhook goes on."""

import io
import json
import random
from pathlib import Path

from PIL import Image

from bot.samples import fake_id_number, fake_uscc, sample_scan
from tests.support.qq_platform import QqPlatform, make_qq_instance
from tests.support.wechat_platform import APPLICANT, WeChatPlatform, make_wechat_instance

BINDING_UNTIL_FIRST_SCAN = ("你好", "USCC", "临沂一像素渠道测试有限公司", "同意", "王小明",
                            "13812345678", "施工单位", "ID")
EXPECTED = ("【统一社会信用代码】", "【单位名称】", "【注册协议】", "【申报人】", "【联系电话】",
            "【用户类型】", "【经办人身份证号】", "【附件一")


def one_pixel() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), "white").save(buffer, "JPEG")
    return buffer.getvalue()


def answers(rng: random.Random) -> list[tuple[str, str]]:
    uscc, id_number = fake_uscc(rng), fake_id_number(rng)
    texts = [{"USCC": uscc, "ID": id_number}.get(t, t) for t in BINDING_UNTIL_FIRST_SCAN]
    return list(zip(texts, EXPECTED, strict=True))


def assert_clean(log: Path) -> None:
    text = log.read_text(errors="replace")
    assert "Traceback" not in text
    assert "[ERROR]" not in text


async def test_broken_qq_events_are_refused_and_the_next_message_is_answered(
        tmp_path: Path) -> None:
    async with QqPlatform() as qq:
        bot = make_qq_instance(tmp_path, qq)
        await bot.start()
        openid = "QQ-SMALLEST-0001"
        try:
            for text, until in answers(random.Random(71)):
                await qq.say(openid, text)
                await qq.received(openid, until)
            _, good = qq.event(openid, "x")
            broken: list[dict] = [
                {}, {"op": 0}, {"op": 0, "t": "C2C_MESSAGE_CREATE"},
                {**good, "d": None}, {**good, "d": {"id": "m-1"}},
                {**good, "d": {**good["d"], "author": {}}},
                {**good, "d": {**good["d"], "content": 12345}},
                {**good, "d": {**good["d"], "attachments": [{}]}},
                {**good, "d": {**good["d"], "attachments": "not a list"}},
            ]
            for payload in broken:
                body = json.dumps(payload).encode()
                status, _ = await qq.post(body, qq.signed(body))
                assert status < 500, payload
            for body in (b"", b"{", b"[]", b"null"):
                status, _ = await qq.post(body, qq.signed(body))
                assert 400 <= status < 500, body
            # a 1×1 photo where the first scan is asked: refused with the reason, asked again
            await qq.say(openid, attachments=[qq.add_photo("tiny", one_pixel())])
            refused = (await qq.received(openid, "【附件一")).text()
            assert "已收到" not in refused
            assert "图片" in refused
            # and the webhook goes on: the next proper scan is taken
            await qq.say(openid, attachments=[qq.add_photo("good", sample_scan("qq good"))])
            await qq.received(openid, "已收到【附件一")
        finally:
            await bot.stop()
        assert_clean(bot.log)


async def test_broken_wechat_messages_are_refused_and_the_next_message_is_answered(
        tmp_path: Path) -> None:
    async with WeChatPlatform() as wechat:
        bot = make_wechat_instance(tmp_path, wechat, "")
        await bot.start()
        try:
            for text, until in answers(random.Random(72)):
                assert await wechat.text(APPLICANT, text) == 200
                await wechat.replies_until(until)
            broken = [{}, {"MsgType": "image"}, {"MsgType": "text"},
                      {"MsgType": "image", "MediaId": "gone-from-wechat"},
                      {"MsgType": "no-such-kind", "Content": "x"}]
            for fields in broken:
                assert await wechat.post(APPLICANT, fields) < 500, fields
            assert await wechat.raw_post({}, "") >= 400  # unsigned and empty
            await wechat.quiet(1)
            # a 1×1 photo where the first scan is asked: refused with the reason, asked again
            assert await wechat.image(APPLICANT, one_pixel()) == 200
            refused = "\n".join(s.reads() for s in await wechat.replies_until("【附件一"))
            assert "已收到" not in refused
            assert "图片" in refused
            assert await wechat.image(APPLICANT, sample_scan("wechat good")) == 200
            await wechat.replies_until("已收到【附件一")
        finally:
            await bot.stop()
        assert_clean(bot.log)


async def test_broken_qq_group_mentions_are_refused_and_the_next_one_is_answered(
        tmp_path: Path) -> None:
    """The group @ event (this session's) with its fields missing or of the wrong kind: no
    5xx, no reply into a group it cannot name, and the next proper mention is answered."""
    async with QqPlatform() as qq:
        bot = make_qq_instance(tmp_path, qq)
        await bot.start()
        group, member = "G-SMALLEST-0001", "M-SMALLEST-0001"
        try:
            _, good = qq.group_event(group, member, "你好")
            d = good["d"]
            broken: list[dict] = [
                {**good, "d": None}, {**good, "d": {"id": "g-1"}},
                {**good, "d": {k: v for k, v in d.items() if k != "group_openid"}},
                {**good, "d": {**d, "author": {}}},
                {**good, "d": {**d, "author": None}},
                {**good, "d": {**d, "content": None}},
                {**good, "d": {**d, "content": ["列表"]}},
                {**good, "d": {**d, "group_openid": 42}},
                {**good, "d": {**d, "id": None}},
            ]
            for payload in broken:
                body = json.dumps(payload).encode()
                status, _ = await qq.post(body, qq.signed(body))
                assert status < 500, payload
            nothing = await qq.replies_for(1.0)
            # the smallest proper mention: an @ with no text at all
            msg_id = await qq.say_in_group(group, member, "")
            [told] = await qq.replies_until("私聊我")
        finally:
            await bot.stop()
        assert nothing == []
        assert (told.group, told.openid, told.msg_id) == (True, group, msg_id)
        assert qq.refused == []
        assert_clean(bot.log)
