"""证书吊销列表: the CA certificate and the CRL over the bot's own HTTP server, for relying
parties (the trading platform checks a bid's signature against them)."""

import nonebot
from fastapi import FastAPI
from fastapi.responses import Response
from nonebot.plugin import PluginMetadata

from bot.runtime import get_runtime
from bot.services.certificates.office import CA_PATH, CRL_PATH

__plugin_meta__ = PluginMetadata(
    name="证书吊销列表",
    description=f"CA 证书（GET {CA_PATH}）和证书吊销列表（GET {CRL_PATH}，DER）",
    usage="依赖方定期下载 CRL；挂失后立即生效",
)


async def crl() -> Response:
    certificates = get_runtime().certificates
    if certificates is None:
        return Response(status_code=404)
    return Response(await certificates.office.current_crl(), media_type="application/pkix-crl",
                    headers={"Cache-Control": "no-cache"})


async def ca_certificate() -> Response:
    certificates = get_runtime().certificates
    if certificates is None:
        return Response(status_code=404)
    return Response(certificates.office.ca_der, media_type="application/pkix-cert")


app = nonebot.get_app() if hasattr(nonebot.get_driver(), "server_app") else None
if isinstance(app, FastAPI):
    app.get(CRL_PATH)(crl)
    app.get(CA_PATH)(ca_certificate)
