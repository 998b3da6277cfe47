"""Drawing a ``PaperForm`` as an A4 PDF (reportlab, its built-in Chinese CID font: no font file
to ship) and a PDF's pages as PNG images (pdfium), for chats that show pictures but not files."""

import io
from collections.abc import Mapping
from functools import cache
from xml.sax.saxutils import escape

import pypdfium2
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from bot.documents.layouts import PaperForm, Row, Section

FONT = "STSong-Light"  # Adobe's standard Simplified Chinese font: every PDF reader has one
WIDTH = A4[0] - 40 * mm
LABEL = 38 * mm  # a label column; the values share the rest
BLANK = "\u00a0" * 20  # an empty answer in a paragraph: underlined room to write (kept spaces)
PRINT_DPI = 150  # A4 at 150 dpi prints sharply and stays a few hundred KB


@cache
def _styles() -> dict[str, ParagraphStyle]:
    pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    base = ParagraphStyle("cell", fontName=FONT, fontSize=11, leading=16, wordWrap="CJK")
    return {
        "title": ParagraphStyle("title", base, fontSize=20, leading=28, alignment=TA_CENTER),
        "cell": base,
        "head": ParagraphStyle("head", base, fontSize=12),
        "text": ParagraphStyle("text", base, leading=19, firstLineIndent=22),
        "small": ParagraphStyle("small", base, fontSize=9, leading=13),
        "right": ParagraphStyle("right", base, fontSize=9, leading=13, alignment=TA_RIGHT),
    }


def render_pdf(form: PaperForm, values: Mapping[str, str] | None = None, footer: str = "") -> bytes:
    """The form as PDF bytes: blank, or filled in with ``values`` (as they should be printed:
    the caller masks what must not appear in full)."""
    values = values or {}
    st = _styles()
    story: list[Flowable] = [
        Paragraph(escape(form.title), st["title"]),
        Paragraph("受理编号：＿＿＿＿＿＿＿＿（由受理人员填写）", st["right"]),
        Spacer(1, 3 * mm),
    ]
    story += [_section(section, values) for section in form.sections]
    story.append(_signatures(form.signatures))
    if form.notes:
        story.append(Spacer(1, 4 * mm))
        story.append(Paragraph("填表说明：", st["small"]))
        story += [Paragraph(f"{n}. {escape(note)}", st["small"])
                  for n, note in enumerate(form.notes, 1)]
    if footer:
        story += [Spacer(1, 2 * mm), Paragraph(escape(footer), st["small"])]
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm,
                            topMargin=18 * mm, bottomMargin=15 * mm, title=form.title,
                            author="CA 数字证书服务", subject=form.title)
    doc.build(story)
    return out.getvalue()


def _section(section: Section, values: Mapping[str, str]) -> Table:
    st = _styles()
    value_width = (WIDTH - 2 * LABEL) / 2
    rows: list[list[Flowable | str]] = [[Paragraph(escape(section.title), st["head"]), "", "", ""]]
    spans = [("SPAN", (0, 0), (-1, 0))]
    heights: list[float | None] = [None]
    if section.text:
        rows.append([Paragraph(_fill(section.text, values), st["text"]), "", "", ""])
        spans.append(("SPAN", (0, 1), (-1, 1)))
        heights.append(None)
    for row in section.rows:
        y = len(rows)
        rows.append(_cells(row, values))
        if len(row.cells) == 1:
            spans.append(("SPAN", (1, y), (-1, y)))
        heights.append(row.lines * 9 * mm)
    table = Table(rows, colWidths=[LABEL, value_width, LABEL, value_width], rowHeights=heights)
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.8, colors.black),
        ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.88, 0.88, 0.88)),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        *[("BACKGROUND", (0, y), (0, y), colors.Color(0.96, 0.96, 0.96))
          for y in range(1 + bool(section.text), len(rows))],
        *[("BACKGROUND", (2, y), (2, y), colors.Color(0.96, 0.96, 0.96))
          for y, row in enumerate(section.rows, 1 + bool(section.text)) if len(row.cells) == 2],
        *spans,
    ]))
    return table


def _cells(row: Row, values: Mapping[str, str]) -> list[Flowable | str]:
    st = _styles()
    out: list[Flowable | str] = []
    for cell in row.cells:
        shown = values.get(cell.key, "") if cell.key else cell.text
        out += [Paragraph(escape(cell.label), st["cell"]), Paragraph(escape(shown), st["cell"])]
    return out + [""] * (4 - len(out))


def _fill(text: str, values: Mapping[str, str]) -> str:
    """A paragraph's ``{key}`` places: the answer underlined, or an underlined blank."""
    parts = text.replace("}", "{").split("{")  # text, key, text, key, ...
    return "".join(escape(part) if i % 2 == 0 else f"<u>{escape(values.get(part) or BLANK)}</u>"
                   for i, part in enumerate(parts))


def _signatures(captions: tuple[str, ...]) -> Table:
    """The seal and signature boxes side by side, and the date under them."""
    st = _styles()
    width = WIDTH / len(captions)
    boxes = [Paragraph(f"{escape(c)}：", st["cell"]) for c in captions]
    date = Paragraph("日期：＿＿＿＿年＿＿月＿＿日",
                     ParagraphStyle("date", st["cell"], alignment=TA_RIGHT))
    table = Table([boxes, ["" for _ in captions], [date, *["" for _ in captions[1:]]]],
                  colWidths=[width] * len(captions), rowHeights=[9 * mm, 42 * mm, 10 * mm])
    table.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 0.8, colors.black),
        ("LINEBEFORE", (1, 0), (-1, 1), 0.8, colors.black),
        ("SPAN", (0, 2), (-1, 2)),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]))
    return table


def png_pages(pdf: bytes, dpi: int = PRINT_DPI) -> list[bytes]:
    """Each page of ``pdf`` as a PNG, white background, for printing from a chat picture."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        pages = []
        for page in document:
            image = page.render(scale=dpi / 72).to_pil()
            out = io.BytesIO()
            image.save(out, format="PNG", optimize=True)
            pages.append(out.getvalue())
        return pages
    finally:
        document.close()
