"""The WeChat side of an official account (what WeChat's servers would be), on 127.0.0.1: it
signs and encrypts users' messages and POSTs them to the bot's /wechat/callback as WeChat does
(安全模式), and serves the API the bot calls (stable_token, 客服消息, template messages, media
download and upload), recording what the bot sent. Signing and encryption are wechatpy's, an
implementation independent of the bot's."""

import asyncio
import itertools
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import aiohttp
import xmltodict
from aiohttp import web
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from tests.support.helpers import free_port
from tests.support.onebot_peer import BotProcess

APPID, SECRET = "wx5f3c0e8a1b2d4c6e", "test-app-secret"
TOKEN = "test-wechat-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as 公众平台 makes them
ACCOUNT = "gh_0123456789ab"  # the account's original id (ToUserName)
APPLICANT, TECHNICIAN = "oAPPLICANT-openid-0001", "oTECHNICIAN-openid-0002"


@dataclass(frozen=True)
class Sent:
    """One 客服消息 the bot sent: ``text``, or an image's bytes (``image``)."""

    to: str
    text: str = ""
    image: bytes | None = None

    def reads(self) -> str:
        return "[图片]" if self.image is not None else self.text


def signature(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


class WeChatPlatform:
    def __init__(self, bot_port: int | None = None, token: str = TOKEN) -> None:
        self.port = free_port()
        self.bot_port = bot_port
        self.token = token
        self.crypto = WeChatCrypto(token, AES_KEY, APPID)
        self.sent: list[Sent] = []
        self.templates: list[dict] = []
        self.uploads: list[bytes] = []
        self.media: dict[str, bytes] = {}
        self.valid_tokens: set[str] = set()
        self.token_requests = 0
        self.cached_token: str | None = None
        self.beyond_window: set[str] = set()  # users silent for 48 hours: 客服消息 refused
        self.pic_url_requests = 0  # the PicUrl beside a MediaId: the bot must never use it
        self._ids = itertools.count(6000000000000000001)
        self._read = 0
        self._runner: web.AppRunner | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, template_id: str = "") -> str:
        """The bot's ``[wechat]`` section for this stand-in."""
        return f"""
[wechat]
appid = "{APPID}"
appsecret = "{SECRET}"
token = "{self.token}"
encoding_aes_key = "{AES_KEY}"
api_base = "{self.api_base}"
notice_template_id = "{template_id}"
"""

    def expire_tokens(self) -> None:
        """Every access token issued so far is refused from now on (42001), as after 2 hours;
        the next one asked for is new."""
        self.valid_tokens.clear()
        self.cached_token = None

    def revoke_tokens(self) -> None:
        """The tokens are refused (40001) but WeChat's stable-token cache still hands out the
        last one, as after a force refresh elsewhere went wrong."""
        self.valid_tokens.clear()

    # users' messages in

    async def text(self, openid: str, content: str) -> int:
        return await self.post(openid, {"MsgType": "text", "Content": content})

    async def image(self, openid: str, data: bytes) -> int:
        media_id = secrets.token_urlsafe(24)
        self.media[media_id] = data
        return await self.post(openid, {"MsgType": "image", "MediaId": media_id,
                                        "PicUrl": f"{self.api_base}/pic/{media_id}"})

    def message_xml(self, openid: str, fields: dict[str, str]) -> str:
        """A message's XML; a new MsgId unless ``fields`` has one (WeChat's retry), none for an
        event."""
        msg_id = {} if fields.get("MsgType") == "event" else {"MsgId": str(next(self._ids))}
        return xmltodict.unparse({"xml": {
            "ToUserName": ACCOUNT, "FromUserName": openid, "CreateTime": str(int(time.time())),
            **msg_id, **fields}}, full_document=False)

    async def post(self, openid: str, fields: dict[str, str], *,
                   token: str | None = None) -> int:
        """A message as WeChat POSTs it in 安全模式, signed with ``token`` (default: the right
        one); the HTTP status the bot answered."""
        timestamp, nonce = str(int(time.time())), secrets.token_hex(5)
        sealed = xmltodict.parse(self.crypto.encrypt_message(
            self.message_xml(openid, fields), nonce, timestamp))["xml"]
        body = xmltodict.unparse({"xml": {"ToUserName": ACCOUNT, "Encrypt": sealed["Encrypt"]}},
                                 full_document=False)
        query = {"signature": signature(token or self.token, timestamp, nonce),
                 "timestamp": timestamp, "nonce": nonce, "openid": openid,
                 "encrypt_type": "aes", "msg_signature": sealed["MsgSignature"]}
        return await self.raw_post(query, body)

    async def raw_post(self, query: dict[str, str], body: str) -> int:
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{self.bot_port}/wechat/callback", params=query,
                data=body.encode(), headers={"Content-Type": "text/xml"}) as response:
            answer = await response.text()
            assert response.status != 200 or answer == "success", answer
            return response.status

    # what the bot sent

    async def replies_until(self, *fragments: str, within: float = 30) -> list[Sent]:
        """What the bot sent since the last call, up to where every fragment has been in a
        text (in any order: two people's replies interleave)."""
        async with asyncio.timeout(within):
            while True:
                missing = set(fragments)
                for index in range(self._read, len(self.sent)):
                    missing = {f for f in missing if f not in self.sent[index].text}
                    if not missing:
                        collected = self.sent[self._read:index + 1]
                        self._read = index + 1
                        return collected
                await asyncio.sleep(0.05)

    async def quiet(self, seconds: float) -> list[Sent]:
        """Everything sent in the next ``seconds``."""
        await asyncio.sleep(seconds)
        collected, self._read = self.sent[self._read:], len(self.sent)
        return collected

    # the API

    def _refused(self, request: web.Request) -> web.Response | None:
        if request.query.get("access_token") not in self.valid_tokens:
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        return None

    async def _stable_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (body.get("grant_type"), body.get("appid"), body.get("secret")) != (
                "client_credential", APPID, SECRET):
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        self.token_requests += 1
        if self.cached_token and not body.get("force_refresh"):
            issued = self.cached_token  # WeChat's stable token: the same until it expires
        else:
            issued = f"access-token-{self.token_requests}-{secrets.token_hex(4)}"
            self.valid_tokens.add(issued)
            self.cached_token = issued
        return web.json_response({"access_token": issued, "expires_in": 7200})

    async def _custom_send(self, request: web.Request) -> web.Response:
        if refused := self._refused(request):
            return refused
        body = json.loads(await request.read())
        if body["touser"] in self.beyond_window:
            return web.json_response({"errcode": 45015, "errmsg": "response out of time limit"})
        if body["msgtype"] == "text":
            content = body["text"]["content"]
            assert len(content.encode()) <= 2048, "a 客服消息 text beyond WeChat's limit"
            self.sent.append(Sent(body["touser"], text=content))
        else:
            image = self.media.get(body["image"]["media_id"])
            if image is None:
                return web.json_response({"errcode": 40007, "errmsg": "invalid media_id"})
            self.sent.append(Sent(body["touser"], image=image))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _template_send(self, request: web.Request) -> web.Response:
        if refused := self._refused(request):
            return refused
        self.templates.append(json.loads(await request.read()))
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": next(self._ids)})

    async def _media_get(self, request: web.Request) -> web.Response:
        if refused := self._refused(request):
            return refused
        data = self.media.get(request.query.get("media_id", ""))
        if data is None:
            return web.json_response({"errcode": 40007, "errmsg": "invalid media_id"})
        return web.Response(body=data, content_type="image/jpeg")

    async def _media_upload(self, request: web.Request) -> web.Response:
        if refused := self._refused(request):
            return refused
        assert request.query.get("type") == "image"
        form = await request.post()
        data = form["media"].file.read()  # type: ignore[union-attr]
        media_id = secrets.token_urlsafe(24)
        self.media[media_id] = data
        self.uploads.append(data)
        return web.json_response({"type": "image", "media_id": media_id,
                                  "created_at": int(time.time())})

    async def _pic_url(self, request: web.Request) -> web.Response:
        self.pic_url_requests += 1
        return web.Response(body=self.media.get(request.match_info["media_id"], b""),
                            content_type="image/jpeg")

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/cgi-bin/stable_token", self._stable_token)
        app.router.add_post("/cgi-bin/message/custom/send", self._custom_send)
        app.router.add_post("/cgi-bin/message/template/send", self._template_send)
        app.router.add_get("/cgi-bin/media/get", self._media_get)
        app.router.add_post("/cgi-bin/media/upload", self._media_upload)
        app.router.add_get("/pic/{media_id}", self._pic_url)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def make_wechat_instance(tmp_path: Path, platform: WeChatPlatform,
                         extra: str = "") -> BotProcess:
    """A bot process on a free port serving the official account (``extra`` TOML first)."""
    port = free_port()
    platform.bot_port = port
    config = tmp_path / "bot.toml"
    config.write_text(extra + platform.settings() + f"""
[bot]
adapters = ["wechat"]
data_dir = "live-data"
log_level = "INFO"
[server]
port = {port}
[fees]
certificate = 300
""", encoding="utf-8")
    return BotProcess(config, port)
