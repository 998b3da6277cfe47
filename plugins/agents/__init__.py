"""密钥代理: the HTTP side of key agents on the bot's own server (pairing)."""

import nonebot
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from nonebot.plugin import PluginMetadata
from pydantic import BaseModel

from bot.runtime import get_runtime
from bot.services.agents import AgentRefused

__plugin_meta__ = PluginMetadata(
    name="密钥代理",
    description="密钥代理的绑定接口（POST /agent/pair）",
    usage="申请人发送「绑定密钥代理」获取绑定码，在 UKEY 所在电脑上运行 cadesk-agent pair",
)


class PairRequest(BaseModel):
    code: str
    identity: str
    sealing: str


async def pair(request: PairRequest) -> JSONResponse:
    runtime = get_runtime()
    if not runtime.settings.agents.enabled:
        return JSONResponse({"code": "disabled", "message": "密钥代理未开通"}, status_code=404)
    try:
        paired = await runtime.agents.pair(request.code, request.identity, request.sealing)
    except AgentRefused as refusal:
        return JSONResponse({"code": refusal.code, "message": str(refusal)}, status_code=403)
    return JSONResponse({"agent_id": paired.agent_id, "company": paired.company,
                         "bot_public": paired.bot_public})


app = nonebot.get_app() if hasattr(nonebot.get_driver(), "server_app") else None
if isinstance(app, FastAPI):
    app.post("/agent/pair")(pair)
