"""空白表格: the paper forms as PDFs over the bot's own HTTP server, named by 「模板」 in the chat.
No personal data: only blank forms are served (a filled-in one goes to its applicant's chat)."""

from urllib.parse import quote

import nonebot
from fastapi import FastAPI
from fastapi.responses import Response
from nonebot.plugin import PluginMetadata

from bot.runtime import get_runtime
from bot.services.applications.paper_forms import FORMS_PATH

__plugin_meta__ = PluginMetadata(
    name="空白表格",
    description=f"需要打印盖章的空白表格（GET {FORMS_PATH}/名称.pdf）",
    usage="私聊发送「模板」获取表格图片和下载地址",
)


async def blank_form(slug: str) -> Response:
    forms = get_runtime().paper_forms
    paper = forms.by_slug(slug)
    if paper is None:
        return Response(status_code=404)
    pdf, _ = await forms.blank(paper)
    # the Chinese file name for browsers that read RFC 5987, the slug for the others
    disposition = f"inline; filename=\"{slug}.pdf\"; filename*=UTF-8''{quote(paper.title)}.pdf"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": disposition})


app = nonebot.get_app() if hasattr(nonebot.get_driver(), "server_app") else None
if isinstance(app, FastAPI):
    app.get(FORMS_PATH + "/{slug}.pdf")(blank_form)
