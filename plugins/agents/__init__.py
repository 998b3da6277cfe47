"""密钥代理: the key agents' side of the bot's own server: the guide and the package to install,
pairing, and the job connection."""

import asyncio
import contextlib
import json

import nonebot
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, Response
from loguru import logger
from nonebot.plugin import PluginMetadata
from pydantic import BaseModel

from bot.key_agent.protocol import new_challenge
from bot.runtime import get_runtime
from bot.services.agents.guide import DOWNLOAD_PATH, GUIDE_PATH, agent_wheel, guide_page
from bot.services.agents.registry import AgentRefused, agent_company

__plugin_meta__ = PluginMetadata(
    name="密钥代理",
    description=f"密钥代理的使用说明（GET {GUIDE_PATH}）、安装包（GET {DOWNLOAD_PATH}…）"
                "和绑定接口（POST /agent/pair）",
    usage="申请人发送「绑定密钥代理」获取绑定码，在 UKEY 所在电脑上运行 cadesk-agent pair",
)


class PairRequest(BaseModel):
    code: str
    identity: str
    sealing: str


async def pair(request: PairRequest, http: Request) -> JSONResponse:
    runtime = get_runtime()
    if not runtime.settings.agents.enabled:
        return JSONResponse({"code": "disabled", "message": "密钥代理未开通"}, status_code=404)
    try:
        paired = await runtime.agents.pair(request.code, request.identity, request.sealing,
                                           http.client.host if http.client else "unknown")
    except AgentRefused as refusal:
        status = 429 if refusal.code == "too_many_attempts" else 403
        return JSONResponse({"code": refusal.code, "message": str(refusal)}, status_code=status)
    return JSONResponse({"agent_id": paired.agent_id, "company": paired.company,
                         "bot_public": paired.bot_public})


async def guide() -> Response:
    settings = get_runtime().settings
    if not settings.agents.enabled:
        return Response(status_code=404)
    return HTMLResponse(guide_page(settings))


async def download(filename: str) -> Response:
    wheel = agent_wheel()
    if not get_runtime().settings.agents.enabled or filename != wheel.filename:
        return Response(status_code=404)
    return Response(wheel.data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{wheel.filename}"'})


async def agent_socket(socket: WebSocket) -> None:
    """An agent's connection: it proves its key, then receives jobs and answers them. Refused
    hellos are limited per remote address and told to the staff at most once a minute
    (bot/services/agents/hellos.py)."""
    runtime = get_runtime()
    await socket.accept()
    if not runtime.settings.agents.enabled:
        await socket.close(code=4404)
        return
    guard = runtime.hub.hellos
    address = socket.client.host if socket.client else "unknown"
    hello: dict = {}
    try:
        guard.check(address)
        challenge = new_challenge()
        await socket.send_json({"type": "challenge", "challenge": challenge})
        async with asyncio.timeout(30):
            hello = await socket.receive_json()
        agent = await runtime.hub.hello(hello["agent_id"], challenge, str(hello["proof"]))
    except AgentRefused as refusal:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await socket.send_json({"type": "refused", "code": refusal.code,
                                    "message": str(refusal)})
            await socket.close(code=4429 if refusal.code == "too_many_attempts" else 4403)
        await guard.refused(address, hello.get("agent_id"), refusal)
        return
    except WebSocketDisconnect:
        return
    except (TimeoutError, KeyError, ValueError, TypeError, AttributeError):
        guard.malformed(address)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await socket.close(code=4400)
        return
    await socket.send_json({"type": "welcome", "company": agent_company(agent)})
    await runtime.hub.connected(agent, socket.send_json, lambda: socket.close(code=4403))
    try:
        while True:
            try:
                message = json.loads(await socket.receive_text())
            except (ValueError, KeyError):  # not JSON, or a binary frame: dropped, and on
                logger.warning(f"agent #{agent.id}: a frame that is not JSON, dropped")
                continue
            if isinstance(message, dict) and message.get("type") == "result":
                await runtime.hub.result(agent.id, message)
    except WebSocketDisconnect:
        pass
    finally:
        runtime.hub.disconnected(agent.id)


app = nonebot.get_app() if hasattr(nonebot.get_driver(), "server_app") else None
if isinstance(app, FastAPI):
    app.get(GUIDE_PATH)(guide)
    app.get(DOWNLOAD_PATH + "{filename}")(download)
    app.post("/agent/pair")(pair)
    app.websocket("/agent/ws")(agent_socket)
