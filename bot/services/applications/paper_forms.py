"""「模板」: the centre's paper forms as pictures to print (QQ shows pictures, not files) and as
PDFs to download from the bot's HTTP server; and the unlock's 密码重置申请表 filled in from the
answers just given, sent when its scan is asked for.

A centre's own PDFs (``[forms]``) replace the built-in forms; those cannot be filled in, so the
answers come as text to copy onto them.
"""

import asyncio
from collections.abc import Mapping

from bot.config import Settings
from bot.documents.layouts import PAPER_FORMS, PaperForm
from bot.documents.render import png_pages, render_pdf
from bot.domain.fields import Field
from bot.domain.forms import FORMS, Form
from bot.services.messages import Picture, Reply

FORMS_PATH = "/forms"  # GET /forms/<slug>.pdf (plugins/forms)
PRINT = "请用 A4 纸打印，按表中说明填写、加盖单位公章、签字后拍照或扫描，在办理时作为图片发送。"
FILLED_FOOTER = ("本表由 CA 数字证书服务按申请人在线填写的内容预先生成；身份证号、手机号中间几位"
                 "已隐去，以所附身份证复印件为准。")


def used_in(paper: PaperForm) -> list[str]:
    """Where the form is sent back, from the forms' scans: 「证书新办/补办」的附件一 ..."""
    return [f"【{form.title}】的{f.slot}" for form in FORMS.values() if form.order_type
            for f in form.fields if f.paper == paper.key]


class PaperForms:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._blank: dict[str, tuple[bytes, list[bytes]]] = {}  # key: PDF and its pages
        self._lock = asyncio.Lock()

    def by_slug(self, slug: str) -> PaperForm | None:
        return next((p for p in PAPER_FORMS.values() if p.slug == slug), None)

    def url(self, paper: PaperForm) -> str | None:
        """Where the blank PDF is downloaded; None without an HTTP server, or without a public
        address to name (http://127.0.0.1:8080 means nothing to a QQ user elsewhere)."""
        if not (self.settings.serves_http and self.settings.agents.public_url):
            return None
        return f"{self.settings.public_url}{FORMS_PATH}/{paper.slug}.pdf"

    async def blank(self, paper: PaperForm) -> tuple[bytes, list[bytes]]:
        """The blank form (the centre's own or the built-in) as PDF and PNG pages, made once."""
        async with self._lock:
            if paper.key not in self._blank:
                self._blank[paper.key] = await asyncio.to_thread(self._make_blank, paper)
            return self._blank[paper.key]

    def _make_blank(self, paper: PaperForm) -> tuple[bytes, list[bytes]]:
        own = self.settings.forms.own(paper.key)
        pdf = own.read_bytes() if own is not None else render_pdf(paper)
        return pdf, png_pages(pdf)

    async def templates(self) -> list[Reply]:
        """「模板」: what each form is for and where to download it, then each page to print."""
        lines = [f"需要打印的表格共 {len(PAPER_FORMS)} 份，见下面的图片。{PRINT}"]
        pictures: list[Reply] = []
        for n, paper in enumerate(PAPER_FORMS.values(), 1):
            _, pages = await self.blank(paper)
            line = f"{n}. {paper.title}：用于{'、'.join(used_in(paper))}"
            url = self.url(paper)
            lines.append(line + (f"；PDF 下载：{url}" if url else "。"))
            pictures += [Picture(page, _page_name(paper, i, len(pages)))
                         for i, page in enumerate(pages, 1)]
        lines += [f"办理【{form.title}】时，填完各项后会自动发给您预先填好的"
                  f"{PAPER_FORMS[f.paper].title}。"
                  for form in FORMS.values() for f in form.fields if f.prefill]
        return ["\n".join(lines), *pictures]

    async def filled(self, form: Form, scan: Field, values: Mapping[str, str]) -> list[Reply]:
        """The paper form ``scan`` shows, filled in with the answers, ready to print, stamp and
        photograph; the centre's own PDF (which cannot be filled in) with the answers to copy."""
        paper = PAPER_FORMS[scan.paper]
        what = f"【{paper.title}】"
        if self.settings.forms.own(paper.key) is not None:
            _, pages = await self.blank(paper)
            shown = _shown(form, values)
            copy = "\n".join(f"{f.label}：{shown[f.key]}" for f in form.fields
                             if f.key in paper.keys and f.key in shown)
            head = (f"{what}请打印下面的表格，照以下内容填写，加盖单位公章、经办人签字并写上日期"
                    f"后拍照，作为{scan.slot}发送：\n{copy}")
        else:
            pdf = await asyncio.to_thread(self.filled_pdf, form, scan, values)
            pages = await asyncio.to_thread(png_pages, pdf)
            head = (f"{what}已按您刚才填写的内容预先填好（见下图）：请用 A4 纸打印，加盖单位公章、"
                    f"经办人签字并写上日期后拍照，作为{scan.slot}发送。")
        return [head, *(Picture(page, _page_name(paper, i, len(pages)))
                        for i, page in enumerate(pages, 1))]

    def filled_pdf(self, form: Form, scan: Field, values: Mapping[str, str]) -> bytes:
        """The built-in paper form ``scan`` shows, filled in with the answers as PDF."""
        return render_pdf(PAPER_FORMS[scan.paper], _shown(form, values), FILLED_FOOTER)


def _shown(form: Form, values: Mapping[str, str]) -> dict[str, str]:
    """The answers as the bot shows them anywhere: personal numbers masked (the picture passes
    through the chat platform; the ID copy attached carries the full number)."""
    return {f.key: f.shown(values[f.key]) for f in form.fields if f.key in values}


def _page_name(paper: PaperForm, n: int, pages: int) -> str:
    return paper.title if pages == 1 else f"{paper.title}（第 {n}/{pages} 页）"
