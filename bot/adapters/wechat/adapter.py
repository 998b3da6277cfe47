"""A nonebot adapter for a WeChat official account (微信公众号), as thin as the job allows:
``GET /wechat/callback`` answers WeChat's URL check, ``POST /wechat/callback`` takes a signed
(and in 安全模式 encrypted) message, answers "success" at once and hands the message to the
plugins as a ``MessageEvent``; whatever the plugins send goes out as 客服消息.

Why not wait for the reply and answer it in the HTTP response (被动回复)? WeChat waits 5
seconds, then retries and finally tells the user 「该公众号暂时无法提供服务」; a message that
files an order or fetches four photos can take longer, and a reply of several messages or a
picture does not fit in one answer. 客服消息 has neither limit within 48 hours of the user's
message, so every reply takes that one path.
"""

import asyncio
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from loguru import logger
from nonebot.adapters import Adapter as BaseAdapter
from nonebot.adapters import Bot as BaseBot
from nonebot.adapters import Event as BaseEvent
from nonebot.drivers import ASGIMixin, Driver, HTTPServerSetup, Request, Response
from nonebot.message import handle_event
from typing_extensions import override
from yarl import URL

from bot.adapters.webhook_events import SharedEvents
from bot.adapters.wechat.api import WeChatApi
from bot.adapters.wechat.callback import MessageCipher, Refused, open_callback, signed
from bot.adapters.wechat.delivery import UNSUPPORTED, WELCOME, deliver, send
from bot.adapters.wechat.message import Message, MessageSegment
from bot.config import Settings
from bot.services.messages import Account
from storage.db import DatabaseUnavailable

CALLBACK_PATH = "/wechat/callback"
NAME = "WeChat"
PLATFORM = "wechat"  # Account.platform of its users
SEEN_MESSAGES = 4096  # MsgIds remembered: WeChat retries a message it had no answer to


class InOrder:
    """Work run in the background, one user's after the other in the order it came (four
    photos posted back to back are read, answered and filed in that order); different users'
    side by side."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.latest: dict[str, asyncio.Task[None]] = {}  # each user's last work in hand

    def run(self, user: str, work: Coroutine[Any, Any, object]) -> None:
        previous = self.latest.get(user)

        async def after_previous() -> None:
            try:
                if previous is not None:
                    await asyncio.wait([previous])
            except asyncio.CancelledError:
                work.close()  # stopping: never started, so never awaited
                raise
            await work

        task = asyncio.create_task(after_previous())
        self.tasks.add(task)
        self.latest[user] = task
        task.add_done_callback(lambda done: self._done(user, done))

    def _done(self, user: str, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if self.latest.get(user) is task:
            del self.latest[user]

    async def cancel(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def success() -> Response:
    """What WeChat waits for: the message is taken (its replies follow as 客服消息)."""
    return Response(200, content="success", headers={"Content-Type": "text/plain"})


class MessageEvent(BaseEvent):
    """A text or image message a user (``openid``) sent the account: always a private chat."""

    openid: str
    msg_id: str
    message: Message

    @override
    def get_type(self) -> str:
        return "message"

    @override
    def get_event_name(self) -> str:
        return "message.private"

    @override
    def get_event_description(self) -> str:
        return f"message {self.msg_id} from {self.openid}"

    @override
    def get_user_id(self) -> str:
        return self.openid

    @override
    def get_session_id(self) -> str:
        return self.openid

    @override
    def get_message(self) -> Message:
        return self.message

    @override
    def is_tome(self) -> bool:
        return True


class Bot(BaseBot):
    """The official account; ``api`` calls WeChat."""

    adapter: "Adapter"

    def __init__(self, adapter: "Adapter", self_id: str, api: WeChatApi,
                 settings: Settings) -> None:
        super().__init__(adapter, self_id)
        self.api, self.settings = api, settings

    @override
    async def send(self, event: BaseEvent, message: str | Message | MessageSegment,
                   **kwargs: Any) -> None:
        await deliver(self.api, event.get_user_id(), Message(message))


class Adapter(BaseAdapter):
    """Registered with ``settings`` (bot.toml) and the account's ``api`` client."""

    @override
    def __init__(self, driver: Driver, *, settings: Settings, api: WeChatApi,
                 **kwargs: Any) -> None:
        super().__init__(driver, **kwargs)
        self.settings, self.api = settings, api
        wechat = settings.wechat
        self.cipher = (MessageCipher.of(wechat.encoding_aes_key, wechat.appid)
                       if wechat.encoding_aes_key else None)
        self.in_order = InOrder()
        self.seen: OrderedDict[str, None] = OrderedDict()
        # [cluster]: the events every process took (bot/adapters/webhook_events.py), set by
        # bot/app.py at start: a retry reaching another process than the first is dropped too
        self.shared: SharedEvents | None = None
        if not isinstance(driver, ASGIMixin):
            raise RuntimeError("the WeChat adapter needs the bot's HTTP server (~fastapi)")
        self.setup_http_server(HTTPServerSetup(URL(CALLBACK_PATH), "GET", "WeChat URL check",
                                               self._check_url))
        self.setup_http_server(HTTPServerSetup(URL(CALLBACK_PATH), "POST", "WeChat callback",
                                               self._receive))
        self.on_ready(self._connect)
        driver.on_shutdown(self._shutdown)

    @classmethod
    @override
    def get_name(cls) -> str:
        return NAME

    async def _connect(self) -> None:
        self.bot_connect(Bot(self, self.settings.wechat.appid, self.api, self.settings))

    async def _shutdown(self) -> None:
        await self.in_order.cancel()
        await self.api.close()

    @override
    async def _call_api(self, bot: BaseBot, api: str, **data: Any) -> Any:
        """``bot.call_api("/cgi-bin/…", body={…})``: any other API of the account."""
        return await self.api.call(api, data.get("body"))

    async def _check_url(self, request: Request) -> Response:
        """服务器配置's check: the echostr back when the signature is the token's."""
        query = URL(str(request.url)).query
        if not signed(self.settings.wechat.token, query):
            logger.warning("WeChat URL check with a wrong signature refused")
            return Response(403, content="forbidden")
        return Response(200, content=query.get("echostr", ""),
                        headers={"Content-Type": "text/plain"})

    async def _receive(self, request: Request) -> Response:
        query = URL(str(request.url)).query
        body = request.content or b""
        body = body.encode() if isinstance(body, str) else body
        try:
            fields = open_callback(query, body, self.settings.wechat.token, self.cipher)
        except Refused as refused:
            logger.warning(f"WeChat callback refused: {refused}")
            return Response(refused.status, content="forbidden")
        bot, openid = self.bots.get(self.settings.wechat.appid), fields.get("FromUserName", "")
        if not isinstance(bot, Bot):  # starting or stopping: WeChat tries again shortly
            return Response(503, content="starting")
        # a message is known by its MsgId, an event by who, when and what (WeChat's advice)
        key = fields.get("MsgId") or f"{openid}:{fields.get('CreateTime')}:{fields.get('Event')}"
        if self.shared is not None and openid and key not in self.seen:
            try:
                if not await self.shared.first(PLATFORM, key):
                    return success()  # another process took it
            except DatabaseUnavailable:  # not known whether another process took it
                return Response(503, content="try again later")
        if not openid or not self._first_time(key):
            return success()
        if (event := self._event_of(fields)) is not None:
            self.in_order.run(openid, handle_event(bot, event))
        elif fields.get("MsgType") != "event":  # voice, video, location, a link
            self.in_order.run(openid, send(self.api, Account(PLATFORM, openid), [UNSUPPORTED]))
        elif fields.get("Event") == "subscribe":
            welcome = WELCOME.format(name=self.settings.centre.name)
            self.in_order.run(openid, send(self.api, Account(PLATFORM, openid), [welcome]))
        return success()

    def _event_of(self, fields: dict[str, str]) -> MessageEvent | None:
        """Text and images become messages; other kinds are answered or left to the caller."""
        kind, openid = fields.get("MsgType"), fields.get("FromUserName")
        msg_id = fields.get("MsgId")
        if not openid or not msg_id:
            return None
        if kind == "text":
            message = Message(MessageSegment.text(fields.get("Content", "")))
        elif kind == "image" and fields.get("MediaId"):
            # the MediaId, fetched with the access token; never the PicUrl beside it
            url = self.api.media_url(fields["MediaId"])
            message = Message(MessageSegment("image", {"url": url}))
        else:
            return None
        return MessageEvent(openid=openid, msg_id=msg_id, message=message)

    def _first_time(self, msg_id: str) -> bool:
        """WeChat retries a message it had no answer to within 5 seconds (three times)."""
        if msg_id in self.seen:
            return False
        self.seen[msg_id] = None
        if len(self.seen) > SEEN_MESSAGES:
            self.seen.popitem(last=False)
        return True
