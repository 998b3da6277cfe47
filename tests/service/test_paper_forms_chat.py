"""「模板」 in the chat, the template line in the scan prompts, the unlock's 密码重置申请表 sent
filled in right before it is asked for, and the blank PDFs over the bot's HTTP server."""

import io
import random

import nonebot
import pytest
from async_asgi_testclient import TestClient
from nonebug import App
from PIL import Image
from pypdf import PdfReader

from bot.documents.render import png_pages
from bot.domain.forms import UNLOCK
from bot.domain.masking import mask_id_number
from bot.samples import fake_id_number, fake_uscc
from bot.services.messages import Account, Picture
from tests.support.applicant import bind, bind_verified, replies_to, say
from tests.support.helpers import MakeRuntime

RNG = random.Random(1313)
TEMPLATE_LINE = "发送「模板」可获取空白表格。"
TITLES = ("CA数字证书信息印章采集表", "单位授权书及诚信承诺书", "CA数字证书密码重置申请表")


def pictures(replies: list) -> list[Picture]:
    return [r for r in replies if isinstance(r, Picture)]


def is_a4_png(picture: Picture) -> bool:
    image = Image.open(io.BytesIO(picture.data))
    return image.format == "PNG" and image.size == (1241, 1754)


@pytest.mark.parametrize(("config", "download"), [
    ('adapters = ["console"]', None),  # no HTTP server: no link to name
    ('adapters = ["onebot"]', None),  # only 127.0.0.1: no address a QQ user could reach
    ('adapters = ["onebot"]\n[agents]\npublic_url = "https://ca.example.test"',
     "https://ca.example.test/forms/seal-collection.pdf"),
], ids=["console", "onebot-loopback", "onebot-public"])
async def test_templates_sends_the_three_blank_forms(make_runtime: MakeRuntime, config: str,
                                                     download: str | None) -> None:
    runtime = await make_runtime(f"[bot]\n{config}\n")
    account = Account("qq", "1301")
    await bind_verified(runtime, account, fake_uscc(RNG), "临沂模板测试有限公司")

    text, *rest = await replies_to(runtime, account, "模板")

    assert isinstance(text, str)
    for title in TITLES:
        assert title in text
    assert "【证书新办/补办】的附件一" in text  # what each is for
    assert "【证书解锁】的附件一" in text
    assert ("/forms/" in text) is (download is not None)
    if download:
        assert download in text
        assert "/forms/pin-reset.pdf" in text
    assert [p.alt for p in pictures(rest)] == list(TITLES)
    assert all(is_a4_png(p) for p in pictures(rest))


async def test_templates_before_binding_and_inside_a_form(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime()
    stranger = Account("qq", "1302")
    # the 单位授权书 is what a first account needs to be verified: no binding asked first
    replies = await replies_to(runtime, stranger, "模板")
    assert len(pictures(replies)) == 3
    assert "欢迎使用" not in str(replies[0])  # not the binding's first question
    assert "请输入【统一社会信用代码】" in await say(runtime, stranger, "你好")

    account = Account("qq", "1303")
    await bind_verified(runtime, account, fake_uscc(RNG), "临沂模板测试有限公司")
    await say(runtime, account, "新办证书")
    replies = await replies_to(runtime, account, "空白表格")
    assert len(pictures(replies)) == 3
    assert "未完成的【证书新办/补办】" in str(replies[-1])
    assert "【项目所属地区】" in await say(runtime, account, "1")  # the form goes on


async def test_the_scans_of_paper_forms_say_how_to_get_them(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime()
    account = Account("qq", "1304")
    await bind_verified(runtime, account, fake_uscc(RNG), "临沂模板测试有限公司")
    for text in ("新办证书", "1", "临沂", "1", "张三", fake_id_number(RNG), "13812345678"):
        await say(runtime, account, text)
    seal = await say(runtime, account, "自取")
    assert "【附件一 信息印章采集表】" in seal
    assert TEMPLATE_LINE in seal
    await say(runtime, account, "上一步")  # 是否自取 again, then the 附件一 prompt once more
    assert "可获取空白表格" in await say(runtime, account, "自取")


async def test_the_unlock_sends_its_reset_form_filled_in_before_asking_for_it(
        make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime()
    account = Account("qq", "1305")
    uscc, id_number = fake_uscc(RNG), fake_id_number(RNG)
    await bind(runtime, account, uscc, "临沂解锁模板有限公司")
    await say(runtime, account, "取消")
    await say(runtime, account, "是")
    typed = {"company_address": "临沂市兰山区金雀山路 1 号", "legal_rep": "王五",
             "company_phone": "0539-8123456", "handler_name": "张三", "mobile": "13812345678"}
    for text in ("解锁", *typed.values()):
        replies = await replies_to(runtime, account, text)
        assert not pictures(replies)  # nothing to print before the answers are complete

    *_, head, picture, prompt = await replies_to(runtime, account, id_number)

    assert isinstance(head, str)
    assert "已按您刚才填写的内容预先填好" in head
    assert isinstance(picture, Picture)
    assert picture.alt == "CA数字证书密码重置申请表"
    assert is_a4_png(picture)
    assert isinstance(prompt, str)
    assert "【附件一 CA数字证书密码重置申请表】" in prompt
    assert TEMPLATE_LINE in prompt
    # the picture is the page of the form filled in with what was typed, which reads back as
    # the company and the masked ID number
    answers = {**typed, "company_name": "临沂解锁模板有限公司", "uscc": uscc,
               "handler_id_number": id_number}
    pdf = runtime.paper_forms.filled_pdf(UNLOCK, UNLOCK.field("scan_reset_form"), answers)
    assert picture.data == png_pages(pdf)[0]
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "临沂解锁模板有限公司" in text
    assert mask_id_number(id_number) in text
    assert id_number not in text


async def test_the_blank_forms_download_as_pdfs(app: App) -> None:
    client = TestClient(nonebot.get_app())
    response = await client.get("/forms/pin-reset.pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert "filename*=UTF-8''" in response.headers["content-disposition"]
    text = PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    assert "CA数字证书密码重置申请表" in text
    assert (await client.get("/forms/elsewhere.pdf")).status_code == 404
