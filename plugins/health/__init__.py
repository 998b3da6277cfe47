"""运行状况: ``GET /healthz`` (JSON) and ``GET /metrics`` (Prometheus) on the bot's own HTTP
server, for a monitor; the same check as the technicians' 「状态」 (bot/services/health.py).

Answered for this machine (loopback) and, from elsewhere, for whoever sends the configured
token ("Authorization: Bearer TOKEN", [server] health_token or CADESK_HEALTH_TOKEN). A request
relayed by a reverse proxy on this machine comes from loopback too: one that carries a
forwarding header (Forwarded, X-Forwarded-For, X-Real-IP) is treated as from elsewhere; the
header is never believed, only noticed.
"""

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import nonebot
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from nonebot.plugin import PluginMetadata

from bot.adapters.metrics import CONTENT_TYPE
from bot.runtime import running
from bot.services.health import Status

HEALTH_PATH, METRICS_PATH = "/healthz", "/metrics"
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
NO_CACHE = {"Cache-Control": "no-store"}

__plugin_meta__ = PluginMetadata(
    name="运行状况",
    description=f"监控用的运行状况（GET {HEALTH_PATH}，JSON）和指标（GET {METRICS_PATH}，"
                "Prometheus）：本机直接访问，其他地址需带令牌",
    usage="技术人员在聊天中发送「状态」查看同样的内容",
)


def _loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a Unix socket's peer or no address: not known to be this machine
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is loopback too
    return (mapped or address).is_loopback


def refusal(request: Request, token: str) -> Response | None:
    """None when the request may read the figures; otherwise the answer that refuses it."""
    host = request.client.host if request.client else ""
    proxied = any(header in request.headers for header in FORWARDING_HEADERS)
    if _loopback(host) and not proxied:
        return None
    given = request.headers.get("authorization", "").encode()
    if token and hmac.compare_digest(given, f"Bearer {token}".encode()):
        return None
    if not token:
        return JSONResponse({"error": "answered on this machine only: set [server] "
                                      "health_token (or CADESK_HEALTH_TOKEN) to allow others"},
                            status_code=403)
    return JSONResponse({"error": "send Authorization: Bearer <health_token>"},
                        status_code=401, headers={"WWW-Authenticate": "Bearer"})


async def healthz(request: Request) -> Response:
    runtime = running()
    if runtime is None:  # start-up has not finished (or shutdown has begun): nothing to read
        return JSONResponse({"status": Status.DOWN.value, "problems": ["not started"]},
                            status_code=503, headers=NO_CACHE)
    if (refused := refusal(request, runtime.settings.server.health_token)) is not None:
        return refused
    report = await runtime.health.check()
    return JSONResponse(report.as_json(), headers=NO_CACHE,
                        status_code=503 if report.status is Status.DOWN else 200)


async def metrics(request: Request) -> Response:
    runtime = running()
    if runtime is None:
        return Response(status_code=503)
    if (refused := refusal(request, runtime.settings.server.health_token)) is not None:
        return refused
    return Response(await runtime.metrics.render(), media_type=CONTENT_TYPE, headers=NO_CACHE)


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}


class CountRequests:
    """Counts every HTTP request answered in /metrics, by the route that took it (its declared
    path, e.g. /forms/{slug}.pdf, never the path asked: no names, no unbounded labels)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees when the app fails before answering

        async def sending(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if (runtime := running()) is not None:
                route = getattr(scope.get("route"), "path", "unmatched")
                method = scope["method"] if scope["method"] in METHODS else "other"
                runtime.metrics.count_request(route, method, status)


app = nonebot.get_app() if hasattr(nonebot.get_driver(), "server_app") else None
if isinstance(app, FastAPI):
    app.add_middleware(CountRequests)
    # HEAD too: some monitors ask only for the status code
    app.add_api_route(HEALTH_PATH, healthz, methods=["GET", "HEAD"])
    app.add_api_route(METRICS_PATH, metrics, methods=["GET", "HEAD"])
