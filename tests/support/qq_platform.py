"""QQ's official bot platform as the bot meets it, on 127.0.0.1: it signs C2C message events
and POSTs them to the bot's /qq/webhook, hands out API tokens (getAppAccessToken), takes the
OpenAPI calls the bot makes (/users/@me, /v2/users/{openid}/files and /messages, and
/v2/groups/{group_openid}/messages for answers to a mention in a group), keeps what
the bot sent, and serves the users' photos as the platform's media server would.

Written from the platform's documentation, not from the bot's code: the Ed25519 key is seeded
by the AppSecret repeated to 32 bytes, and signs ``X-Signature-Timestamp + body``.
"""

import asyncio
import base64
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.helpers import free_port
from tests.support.onebot_peer import BotProcess

APP_ID = "102000001"
SECRET = "qqbotTestSecret0123456789abcdefg"  # the bot gets it from CADESK_QQBOT_SECRET
REPLIES_PER_MESSAGE = 5  # the platform's limit on passive replies to one user message


def platform_key(secret: str) -> Ed25519PrivateKey:
    seed = secret.encode()
    while len(seed) < 32:
        seed = seed + seed
    return Ed25519PrivateKey.from_private_bytes(seed[:32])


@dataclass
class Sent:
    """A message the bot sent through /v2/users/{openid}/messages (or, with ``group``,
    /v2/groups/{openid}/messages: ``openid`` is then the group's)."""

    openid: str
    msg_type: int
    content: str
    msg_id: str | None  # the user's message replied to; None: a proactive message
    msg_seq: int | None
    picture: bytes | None = None  # the uploaded image of a rich-media message
    group: bool = False

    def text(self) -> str:
        return self.content + ("\n[图片]" if self.picture is not None else "")


@dataclass
class QqPlatform:
    """The stand-in. ``async with QqPlatform() as qq:`` serves it; ``qq.bot_port`` is where
    the bot listens (set by ``make_qq_instance``)."""

    app_id: str = APP_ID
    secret: str = SECRET
    port: int = field(default_factory=free_port)
    bot_port: int = 0
    sent: list[Sent] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)  # API calls answered with an error
    media: dict[str, bytes] = field(default_factory=dict)
    token_requests: int = 0  # the one token lives for the test: several processes share it
    downloads: list[str] = field(default_factory=list)  # photos the bot fetched
    _uploads: dict[str, bytes] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _token: str = ""
    last_delivery: tuple[bytes, dict[str, str]] = (b"", {})
    _read: int = 0  # how many of ``sent`` replies_until has handed out
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self, trust_media: bool = True) -> str:
        """bot.toml's [qqbot] for a bot using this stand-in (the secret goes in the env); its
        photos are on 127.0.0.1, fetched only when ``trust_media`` lists it in media_hosts."""
        hosts = f'"127.0.0.1:{self.port}"' if trust_media else ""
        return f"""
[qqbot]
app_id = "{self.app_id}"
api_base = "{self.base}/"
auth_base = "{self.base}/app/getAppAccessToken"
media_hosts = [{hosts}]
"""

    # --- the platform's servers ----------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_post("/app/getAppAccessToken", self._token_endpoint)
        app.router.add_get("/users/@me", self._me)
        app.router.add_post("/v2/users/{openid}/files", self._files)
        app.router.add_post("/v2/users/{openid}/messages", self._messages)
        app.router.add_post("/v2/groups/{openid}/messages", self._messages)
        app.router.add_get("/download", self._download)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _token_endpoint(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("appId") != self.app_id or body.get("clientSecret") != self.secret:
            return web.json_response({"code": 100016, "message": "invalid appid or secret"},
                                     status=400)
        self.token_requests += 1
        if not self._token:  # as the platform: the same token to every caller while it lives
            self._token = f"token-{self.app_id}-1"
        return web.json_response({"access_token": self._token, "expires_in": "7200"})

    def _authorised(self, request: web.Request) -> bool:
        return (bool(self._token)
                and request.headers.get("Authorization") == f"QQBot {self._token}"
                and request.headers.get("X-Union-Appid") == self.app_id)

    async def _me(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"code": 11244, "message": "token invalid"}, status=401)
        return web.json_response({"id": "bot-user-id", "username": "cadesk-test", "bot": True})

    async def _files(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"code": 11244, "message": "token invalid"}, status=401)
        body = await request.json()
        if body.get("file_type") != 1 or not body.get("file_data") or body.get("srv_send_msg"):
            return self._refuse(body, "only an image uploaded for a later message is expected")
        info = f"file-info-{next(self._ids)}"
        self._uploads[info] = base64.b64decode(body["file_data"])
        return web.json_response({"file_uuid": info, "file_info": info, "ttl": 3600})

    async def _messages(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"code": 11244, "message": "token invalid"}, status=401)
        body = await request.json()
        msg_id, msg_seq = body.get("msg_id"), body.get("msg_seq")
        if msg_id is not None:
            earlier = [s for s in self.sent if s.msg_id == msg_id]
            if any(s.msg_seq == (msg_seq or 1) for s in earlier):
                return self._refuse(body, "duplicate msg_id and msg_seq")
            if len(earlier) >= REPLIES_PER_MESSAGE:
                return self._refuse(body, "too many replies to one message")
        picture = None
        if body.get("msg_type") == 7:
            info = (body.get("media") or {}).get("file_info")
            if info not in self._uploads:
                return self._refuse(body, "media not uploaded")
            picture = self._uploads[info]
        elif body.get("msg_type") != 0 or not body.get("content"):
            return self._refuse(body, "a text message without text")
        group = request.path.startswith("/v2/groups/")
        if group and msg_id is None:  # proactive group messages: not granted to this bot
            return self._refuse(body, "proactive group message not allowed")
        self.sent.append(Sent(request.match_info["openid"], body["msg_type"],
                              body.get("content") or "", msg_id, msg_seq, picture, group))
        return web.json_response({"id": f"bot-msg-{next(self._ids)}",
                                  "timestamp": "2026-12-02T12:00:00+08:00"})

    def _refuse(self, body: dict[str, Any], why: str) -> web.Response:
        self.refused.append({**body, "why": why})
        return web.json_response({"code": 40034000, "message": why}, status=400)

    async def _download(self, request: web.Request) -> web.Response:
        name = request.query.get("fileid", "")
        self.downloads.append(name)
        if name not in self.media:
            raise web.HTTPNotFound()
        return web.Response(body=self.media[name], content_type="image/jpeg")

    # --- a user writing to the bot -------------------------------------------------------

    def add_photo(self, name: str, data: bytes) -> dict[str, Any]:
        """A photo on the media server, as the attachment of a message describes it."""
        self.media[name] = data
        return {"content_type": "image/jpeg", "filename": f"{name}.jpg", "size": len(data),
                "url": f"{self.base}/download?appid=1406&fileid={name}"}

    def event(self, openid: str, content: str = "",
              attachments: list[dict[str, Any]] | None = None) -> tuple[str, dict[str, Any]]:
        """A C2C_MESSAGE_CREATE dispatch: (the message's id, the payload)."""
        number = next(self._ids)
        msg_id = f"ROBOT1.0_msg{number:06d}"
        data: dict[str, Any] = {
            "id": msg_id, "content": content, "timestamp": "2026-12-02T20:00:00+08:00",
            "author": {"id": openid, "user_openid": openid, "union_openid": f"u-{openid}"},
            "message_scene": {"source": "default", "ext": []}, "message_type": 0}
        if attachments:
            data["attachments"] = attachments
        return msg_id, {"op": 0, "s": number, "t": "C2C_MESSAGE_CREATE",
                        "id": f"C2C_MESSAGE_CREATE:{number}", "d": data}

    def group_event(self, group_openid: str, member_openid: str, content: str
                    ) -> tuple[str, dict[str, Any]]:
        """A GROUP_AT_MESSAGE_CREATE dispatch (a member @-mentioning the bot; the mention itself
        is not in ``content``): (the message's id, the payload)."""
        number = next(self._ids)
        msg_id = f"ROBOT1.0_grp{number:06d}"
        data: dict[str, Any] = {
            "id": msg_id, "content": f" {content}", "timestamp": "2026-12-02T20:00:00+08:00",
            "author": {"id": member_openid, "member_openid": member_openid, "bot": False,
                       "member_role": "member"},
            "group_id": group_openid, "group_openid": group_openid,
            "message_scene": {"source": "default", "ext": []}, "message_type": 0}
        return msg_id, {"op": 0, "s": number, "t": "GROUP_AT_MESSAGE_CREATE",
                        "id": f"GROUP_AT_MESSAGE_CREATE:{number}", "d": data}

    async def say_in_group(self, group_openid: str, member_openid: str, content: str) -> str:
        """A member's mention of the bot in a group, signed and delivered; its msg_id."""
        msg_id, payload = self.group_event(group_openid, member_openid, content)
        body = json.dumps(payload, ensure_ascii=False).encode()
        status, text = await self.post(body, self.signed(body))
        assert status == 200, (status, text)
        return msg_id

    def signed(self, body: bytes, timestamp: str | None = None,
               secret: str | None = None) -> dict[str, str]:
        """The headers the platform sends with ``body`` (signed with ``secret``: a forger's
        guess when given)."""
        timestamp = timestamp or str(int(time.time()))
        signature = platform_key(secret or self.secret).sign(timestamp.encode() + body)
        return {"X-Signature-Ed25519": signature.hex(), "X-Signature-Timestamp": timestamp,
                "X-Bot-Appid": self.app_id, "User-Agent": "QQBot-Callback",
                "Content-Type": "application/json"}

    async def post(self, body: bytes, headers: dict[str, str],
                   port: int | None = None) -> tuple[int, str]:
        """POST to the bot's webhook (the bot on ``port``, else ``bot_port``): (status, text)."""
        assert self._http is not None
        url = f"http://127.0.0.1:{port or self.bot_port}/qq/webhook"
        async with self._http.post(url, data=body, headers=headers) as response:
            return response.status, await response.text()

    async def say(self, openid: str, content: str = "",
                  attachments: list[dict[str, Any]] | None = None, port: int | None = None
                  ) -> str:
        """A user's message, signed and delivered (to the bot on ``port``: behind a load
        balancer, any of several processes); its msg_id."""
        msg_id, payload = self.event(openid, content, attachments)
        body = json.dumps(payload, ensure_ascii=False).encode()
        self.last_delivery = (body, self.signed(body))
        status, text = await self.post(body, self.last_delivery[1], port)
        assert status == 200, (status, text)
        return msg_id

    async def deliver_again(self, port: int | None = None) -> int:
        """The last event once more, as the platform retries one whose answer came late (the
        same body, id and signature); the HTTP status."""
        body, headers = self.last_delivery
        return (await self.post(body, headers, port))[0]

    async def validate_callback(self, plain_token: str, event_ts: str) -> tuple[int, str]:
        """The op 13 request the platform sends when its callback URL is set."""
        body = json.dumps({"op": 13, "d": {"plain_token": plain_token,
                                           "event_ts": event_ts}}).encode()
        return await self.post(body, self.signed(body))

    async def replies_until(self, fragment: str, within: float = 30) -> list[Sent]:
        """What the bot sent since the last call, up to a message containing ``fragment``."""
        async with asyncio.timeout(within):
            while True:
                for index in range(self._read, len(self.sent)):
                    if fragment in self.sent[index].text():
                        replies = self.sent[self._read:index + 1]
                        self._read = index + 1
                        return replies
                await asyncio.sleep(0.05)

    async def replies_for(self, seconds: float) -> list[Sent]:
        """What the bot sends in the next ``seconds`` (and had sent unread)."""
        await asyncio.sleep(seconds)
        replies = self.sent[self._read:]
        self._read = len(self.sent)
        return replies

    async def received(self, openid: str, fragment: str, within: float = 30) -> Sent:
        """The first message the bot sent ``openid`` containing ``fragment`` (waiting for it),
        in whatever order it came among the others."""
        async with asyncio.timeout(within):
            while True:
                for sent in self.sent:
                    if sent.openid == openid and fragment in sent.text():
                        return sent
                await asyncio.sleep(0.05)


def make_qq_instance(tmp_path: Path, qq: QqPlatform, extra: str = "", *,
                     trust_media: bool = True, log_level: str = "INFO") -> BotProcess:
    """A bot process speaking to ``qq`` only, configured by ``tmp_path/bot.toml`` (``extra``
    TOML goes first); the AppSecret comes from the environment, as the README advises."""
    port = free_port()
    qq.bot_port = port
    config = tmp_path / "bot.toml"
    config.write_text(extra + qq.config(trust_media) + f"""
[bot]
adapters = ["qqbot"]
data_dir = "live-data"
log_level = "{log_level}"
[server]
port = {port}
[fees]
certificate = 300
""", encoding="utf-8")
    bot = BotProcess(config, port)
    bot.env = {"CADESK_QQBOT_SECRET": qq.secret}
    return bot
