"""The paper forms: each scan that shows one names a form that exists, the blank forms open as
PDFs with their titles, the unlock's reset form comes filled in (personal numbers masked), and a
centre's own PDFs replace the built-in ones."""

import io
import random
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader
from reportlab.pdfgen import canvas

from bot.config import ConfigError, Settings, load_settings
from bot.documents.layouts import PAPER_FORMS, PIN_RESET
from bot.documents.render import png_pages, render_pdf
from bot.domain.forms import FORMS, UNLOCK
from bot.domain.masking import mask_id_number, mask_mobile
from bot.samples import fake_id_number, fake_uscc
from bot.services.applications.paper_forms import PaperForms
from bot.services.messages import Picture

RNG = random.Random(13)
ID_NUMBER = fake_id_number(RNG)
ANSWERS = {
    "company_name": "临沂测试建设有限公司", "uscc": fake_uscc(RNG),
    "company_address": "山东省临沂市兰山区金雀山路 1 号", "legal_rep": "王五",
    "company_phone": "0539-8123456", "handler_name": "张三", "mobile": "13812345678",
    "handler_id_number": ID_NUMBER,
}
RESET_SCAN = UNLOCK.field("scan_reset_form")


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "".join(page.extract_text() for page in reader.pages)


def test_every_scan_of_a_paper_form_names_one_and_offers_the_template() -> None:
    papers = {f.paper for form in FORMS.values() for f in form.fields if f.paper}
    assert papers == set(PAPER_FORMS)
    for form in FORMS.values():
        for f in form.fields:
            assert ("发送「模板」可获取空白表格" in f.hint) == bool(f.paper), f.title
    # a form filled in from a form's answers carries only answers that form asks
    prefilled = [(form, f) for form in FORMS.values() for f in form.fields if f.prefill]
    assert [(form.key, f.paper) for form, f in prefilled] == [("unlock", "pin_reset")]
    assert PIN_RESET.keys <= {f.key for f in UNLOCK.fields}


@pytest.mark.parametrize("paper", PAPER_FORMS.values(), ids=lambda p: p.key)
def test_a_blank_form_is_a_one_page_pdf_with_its_title_and_seal_area(paper) -> None:
    pdf = render_pdf(paper)
    text = text_of(pdf)
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1
    for words in (paper.title, "填表说明", "日期", *paper.signatures):
        assert words in text
    assert ANSWERS["company_name"] not in text


def test_the_filled_reset_form_holds_the_answers_with_personal_numbers_masked() -> None:
    forms = PaperForms(Settings())
    pdf = forms.filled_pdf(UNLOCK, RESET_SCAN, ANSWERS)
    text = text_of(pdf)
    assert "CA数字证书密码重置申请表" in text
    assert "因CA锁密码忘记，申请CA数字证书密码重置" in text
    for key in ("company_name", "uscc", "company_address", "legal_rep", "company_phone",
                "handler_name"):
        assert ANSWERS[key] in text, key
    assert mask_id_number(ID_NUMBER) in text
    assert mask_mobile("13812345678") in text
    assert ID_NUMBER not in text
    assert "13812345678" not in text


async def test_the_filled_reset_form_comes_as_a_printable_picture() -> None:
    replies = await PaperForms(Settings()).filled(UNLOCK, RESET_SCAN, ANSWERS)
    head, picture = replies
    assert isinstance(head, str)
    assert "预先填好" in head
    assert "附件一" in head
    assert isinstance(picture, Picture)
    image = Image.open(io.BytesIO(picture.data))
    assert image.format == "PNG"
    assert image.size == (1241, 1754)  # A4 at 150 dpi
    # the Chinese is drawn (a server without a Chinese font leaves it out): 数字证书…申请表 of the
    # title are dark strokes
    title_band = image.convert("L").crop((450, 110, 880, 180))
    assert title_band.getextrema()[0] < 80


def own_pdf(path: Path, title: str) -> Path:
    drawing = canvas.Canvas(str(path))
    drawing.drawString(100, 700, title)
    drawing.save()
    return path


async def test_a_centres_own_forms_replace_the_built_in_ones(tmp_path: Path) -> None:
    own_pdf(tmp_path / "reset.pdf", "Linyi centre reset form")
    (tmp_path / "bot.toml").write_text('[forms]\npin_reset = "reset.pdf"\n', encoding="utf-8")
    forms = PaperForms(load_settings(tmp_path / "bot.toml"))

    pdf, pages = await forms.blank(PIN_RESET)
    assert "Linyi centre reset form" in text_of(pdf)
    assert len(pages) == 1
    builtin, _ = await forms.blank(PAPER_FORMS["seal_collection"])
    assert "CA数字证书信息印章采集表" in text_of(builtin)
    # not filled in (it cannot be): sent blank with the answers to copy, masked as ever
    head, picture = await forms.filled(UNLOCK, RESET_SCAN, ANSWERS)
    assert isinstance(head, str)
    assert isinstance(picture, Picture)
    assert picture.data == pages[0]
    assert f"单位名称：{ANSWERS['company_name']}" in head
    assert f"经办人身份证号：{mask_id_number(ID_NUMBER)}" in head
    assert ID_NUMBER not in head


def test_a_centres_form_that_is_not_there_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "bot.toml").write_text('[forms]\nauthorisation = "missing.pdf"\n',
                                       encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[forms\] authorisation"):
        load_settings(tmp_path / "bot.toml")


def test_every_page_of_a_pdf_becomes_a_picture() -> None:
    out = io.BytesIO()
    drawing = canvas.Canvas(out)
    for n in range(2):
        drawing.drawString(100, 700, f"page {n}")
        drawing.showPage()
    drawing.save()
    pages = png_pages(out.getvalue(), dpi=72)
    assert [Image.open(io.BytesIO(p)).size for p in pages] == [(596, 842)] * 2
