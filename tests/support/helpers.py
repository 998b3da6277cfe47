"""Helpers shared by the tests: chat events, a local image server, loose message matching, a
recording chat channel, waiting for another thread."""

import asyncio
import itertools
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Self

from aiohttp import web
from nonebot.adapters.onebot.v11 import (
    GroupMessageEvent,
    Message,
    MessageSegment,
    PrivateMessageEvent,
)
from nonebot.adapters.onebot.v11.event import Sender

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from bot.services.ports import ChatChannel

SELF_ID = 10000
STAFF_GROUP = 900
_message_ids = itertools.count(1)


def private_message(user_id: int, message: str | Message) -> PrivateMessageEvent:
    message = Message(message)
    return PrivateMessageEvent(
        time=int(time.time()), self_id=SELF_ID, post_type="message", sub_type="friend",
        user_id=user_id, message_type="private", message_id=next(_message_ids),
        message=message, original_message=message, raw_message=str(message), font=0,
        sender=Sender(user_id=user_id, nickname=f"user{user_id}"), to_me=True)


def group_message(group_id: int, user_id: int, message: str | Message) -> GroupMessageEvent:
    message = Message(message)
    return GroupMessageEvent(
        time=int(time.time()), self_id=SELF_ID, post_type="message", sub_type="normal",
        user_id=user_id, message_type="group", message_id=next(_message_ids), group_id=group_id,
        message=message, original_message=message, raw_message=str(message), font=0,
        sender=Sender(user_id=user_id, nickname=f"user{user_id}"), to_me=False)


def image(url: str) -> MessageSegment:
    """An image segment as NapCat sends it: a file name and a download URL."""
    return MessageSegment("image", {"file": url.rsplit("/", 1)[-1], "url": url})


class Says:
    """Matches a sent message containing every fragment and none of the ``absent`` ones."""

    def __init__(self, *fragments: str, absent: tuple[str, ...] = ()) -> None:
        self.fragments, self.absent = fragments, absent

    def __eq__(self, other: object) -> bool:
        text = str(other)
        return all(f in text for f in self.fragments) and not any(a in text for a in self.absent)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Says{self.fragments!r}" + (f" absent={self.absent!r}" if self.absent else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ScanServer:
    """A local HTTP server handing out images, as the QQ media server would."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.slow: set[str] = set()
        self.chunked: set[str] = set()  # sent without Content-Length, in pieces
        self.requested: list[str] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    def add(self, name: str, data: bytes) -> str:
        self.files[name] = data
        return self.url(name)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requested.append(name)
        if name in self.slow:
            await asyncio.sleep(30)
        if name not in self.files:
            raise web.HTTPNotFound()
        if name in self.chunked:
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            data = self.files[name]
            for start in range(0, len(data), 256 * 1024):
                await response.write(data[start:start + 256 * 1024])
            await response.write_eof()
            return response
        return web.Response(body=self.files[name], content_type="application/octet-stream")

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/{name}", self._serve)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


class RecordingChat:
    """A ``ChatChannel`` that keeps what it was asked to send, for service-level tests."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []
        self.bots = {"qq": 1, "console": 1}

    async def send(self, account: object, replies: Sequence[object], *,
                   reply_to: str | None = None) -> bool:
        self.sent += [(str(account), reply) for reply in replies]
        return True

    async def push(self, account: object, replies: Sequence[object]) -> bool:
        return await self.send(account, replies)

    async def send_group(self, group: object, replies: Sequence[object]) -> bool:
        self.sent += [(f"group {group}", reply) for reply in replies]
        return True

    def connected(self) -> dict[str, int]:
        """Every platform connected, unless a test says otherwise."""
        return dict(self.bots)


class MakeRuntime(Protocol):
    """The ``make_runtime`` fixture (tests/conftest.py): bot.toml text in, a started runtime
    out."""

    def __call__(self, config: str = "", chat: "ChatChannel | None" = None
                 ) -> Awaitable["Runtime"]: ...


async def wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    """Until ``condition()`` holds, which another thread or process makes true."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - set by another thread or process
            await asyncio.sleep(0.05)


# After 单位名称 and 注册协议: who is asking, then (a company's first account) the documents
# form, put aside; the account is bound pending. (answer, a fragment of the last reply)
PENDING_BINDING = [("王小明", "【联系电话】"), ("13812345678", "【用户类型】"),
                   ("取消", "确定要放弃"), ("是", "已放弃")]


def verify_in_database(database: Path, user_id: int | str) -> None:
    """Mark a chat account's binding verified in a running bot's SQLite file, as a technician's
    approval of its documents would (for end-to-end tests about something else). The bot's
    commands read the binding afresh; its memo of the account (storage/account_memo.py, which
    sees only the bot's own writes) may still show the menu's 【待核验】 line."""
    import sqlite3

    with sqlite3.connect(database) as db:
        changed = db.execute("UPDATE handlers SET status = 'verified' WHERE user_id = ?",
                             (str(user_id),)).rowcount
    assert changed == 1
