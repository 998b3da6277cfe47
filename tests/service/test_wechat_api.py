"""The bot's side of the WeChat API against the stand-in over real HTTP: 客服消息 (text, a
picture uploaded first), the notice template outside the 48 hours, photos downloaded by MediaId,
and the access token kept, and replaced when WeChat refuses it."""

import io
import re
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from bot.adapters import wechat
from bot.adapters.fetch import ImageFetcher
from bot.config import Settings
from bot.samples import sample_scan
from bot.services.messages import Account, ImageSource, Picture
from bot.services.ports import FetchError
from tests.support.wechat_platform import APPLICANT, SECRET, WeChatPlatform

USER = Account("wechat", APPLICANT)


def settings_for(platform: WeChatPlatform, template_id: str = "") -> Settings:
    return Settings.model_validate({"wechat": {
        "appid": "wx5f3c0e8a1b2d4c6e", "appsecret": SECRET, "token": platform.token,
        "api_base": platform.api_base, "notice_template_id": template_id}})


@pytest.fixture
async def platform() -> AsyncIterator[WeChatPlatform]:
    async with WeChatPlatform() as stand_in:
        yield stand_in


@pytest.fixture
async def api(platform: WeChatPlatform) -> AsyncIterator[wechat.WeChatApi]:
    client = wechat.WeChatApi(settings_for(platform).wechat)
    yield client
    await client.close()


def png(size: tuple[int, int] = (64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "red").save(out, "PNG")
    return out.getvalue()


async def test_a_picture_is_uploaded_and_sent_after_its_caption(
        platform: WeChatPlatform, api: wechat.WeChatApi) -> None:
    qr = png()
    assert await wechat.send(api, USER, ["审核通过", Picture(qr, "支付二维码")])
    assert [(s.to, s.reads()) for s in platform.sent] == [
        (APPLICANT, "审核通过"), (APPLICANT, "支付二维码"), (APPLICANT, "[图片]")]
    assert platform.sent[-1].image == qr
    assert platform.uploads == [qr]


async def test_the_token_is_kept_and_replaced_once_wechat_refuses_it(
        platform: WeChatPlatform, api: wechat.WeChatApi) -> None:
    for n in range(3):
        assert await wechat.send(api, USER, [f"消息 {n}"])
    assert platform.token_requests == 1
    platform.expire_tokens()
    assert await wechat.send(api, USER, ["两小时后"])
    assert platform.token_requests == 2
    assert platform.sent[-1].text == "两小时后"
    platform.revoke_tokens()  # refused, yet the stable token is the same one: force a new one
    assert await wechat.send(api, USER, ["再次"])
    assert platform.token_requests == 4
    assert platform.sent[-1].text == "再次"


async def test_beyond_the_48_hours_send_says_no_and_the_template_tells_of_the_notice(
        platform: WeChatPlatform, api: wechat.WeChatApi) -> None:
    platform.beyond_window.add(APPLICANT)
    notice = ["您的订单 XB-261203-5ASR 已审核通过。请扫描下方二维码支付 ¥300.00。"]
    assert not await wechat.send(api, USER, notice)
    assert not await wechat.push(api, settings_for(platform), USER, notice)  # no template set
    assert platform.templates == []

    assert await wechat.push(api, settings_for(platform, "TPL-notice-1"), USER, notice)
    [sent] = platform.templates
    assert (sent["touser"], sent["template_id"]) == (APPLICANT, "TPL-notice-1")
    assert sent["data"]["thing1"]["value"] == "您的订单 XB-261203-5ASR…"
    assert sent["data"]["thing2"]["value"] == "回复任意消息查看详情"
    assert re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}", sent["data"]["time3"]["value"])
    assert platform.sent == []


async def test_photos_come_by_media_id_with_the_token_and_within_the_byte_cap(
        platform: WeChatPlatform, api: wechat.WeChatApi) -> None:
    scan = sample_scan("媒体文件")
    platform.media["m-1"] = scan
    platform.media["m-big"] = scan + b"\0" * 2_000_000
    fetcher = ImageFetcher(len(scan) + 10, 10, channels=[api])
    try:
        assert await fetcher.fetch(ImageSource(url=api.media_url("m-1"))) == scan
        platform.expire_tokens()  # a download finds its token refused: a new one, once
        assert await fetcher.fetch(ImageSource(url=api.media_url("m-1"))) == scan
        assert platform.token_requests == 2
        with pytest.raises(FetchError, match="图片超过"):
            await fetcher.fetch(ImageSource(url=api.media_url("m-big")))
        with pytest.raises(FetchError, match="已过期"):
            await fetcher.fetch(ImageSource(url=api.media_url("gone-after-3-days")))
        api.settings = api.settings.model_copy(update={"appsecret": "a-wrong-secret"})
        platform.expire_tokens()  # and no new token is given: the applicant is told, not lost
        with pytest.raises(FetchError, match="暂时无法下载图片"):
            await fetcher.fetch(ImageSource(url=api.media_url("m-1")))
    finally:
        await fetcher.close()
    assert platform.pic_url_requests == 0


async def test_a_wechat_message_reaches_the_dialogue_as_any_private_message_does() -> None:
    """Its MsgId is the message's ref (what a reply window counts from); a photo is named by
    its media URL under the API base, never by the PicUrl."""
    from plugins.applicant import incoming_of, is_private

    url = "https://api.weixin.qq.com/cgi-bin/media/get?media_id=m-1"
    event = wechat.MessageEvent(openid=APPLICANT, msg_id="6000000000000000001",
                                message=wechat.Message([wechat.MessageSegment.text("附件"),
                                                        wechat.MessageSegment("image",
                                                                              {"url": url})]))
    assert await is_private(event)
    incoming = incoming_of(event)
    assert (incoming.text, incoming.ref) == ("附件", "6000000000000000001")
    assert incoming.images == (ImageSource(url=url),)
    assert not incoming.local_files


async def test_one_users_messages_are_handled_in_the_order_they_came() -> None:
    """The callback answers at once and handles in the background: a slow first photo still
    goes before a quick second one of the same person; another person does not wait."""
    import asyncio

    from bot.adapters.wechat.adapter import InOrder

    handled: list[str] = []

    async def handle(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        handled.append(name)

    in_order = InOrder()
    in_order.run("oA", handle("A: first photo", 0.3))
    in_order.run("oA", handle("A: second photo", 0))
    in_order.run("oB", handle("B: a question", 0))
    await asyncio.gather(*in_order.tasks)
    assert handled == ["B: a question", "A: first photo", "A: second photo"]
    assert in_order.latest == {}
