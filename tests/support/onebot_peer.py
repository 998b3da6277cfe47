"""The OneBot v11 side (what NapCat or Lagrange would be), speaking to a real bot process."""

import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.helpers import SELF_ID, free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-access-token"  # the bot's [onebot] access_token in make_instance
USER, TECHNICIAN = 31337, 9001  # an applicant, and the technician tests list in [staff]


class BotProcess:
    """``python -m bot --config PATH`` as an operator would start it."""

    def __init__(self, config: Path, port: int) -> None:
        self.config, self.port = config, port
        self.env: dict[str, str] = {}
        self.process: asyncio.subprocess.Process | None = None
        self.log = config.parent / "bot.log"

    startup_seconds = 30

    def command(self) -> list[str]:
        return ["-m", "bot", "--config", str(self.config)]

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CADESK_")} | self.env
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, *self.command(),
                cwd=ROOT, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(f"bot exited: {self.log.read_text(errors='replace')}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise TimeoutError("bot did not start listening")

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            async with asyncio.timeout(20):
                await self.process.wait()


class OneBotPeer:
    """Connects to the bot's reverse WebSocket, sends events, answers its actions."""

    def __init__(self, port: int, token: str | None) -> None:
        self.url = f"ws://127.0.0.1:{port}/onebot/v11/ws"
        self.token = token
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.answer_after = 0.0  # seconds before each action is answered (a slow client)

    def headers(self, token: str | None) -> dict[str, str]:
        headers = {"X-Self-ID": str(SELF_ID), "X-Client-Role": "Universal"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def connect(self) -> None:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.url, headers=self.headers(self.token))

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def send_private(self, user_id: int, segments: list[dict[str, Any]]) -> None:
        await self._send_message(user_id, segments, {"message_type": "private",
                                                     "sub_type": "friend"})

    async def send_group(self, group_id: int, user_id: int,
                         segments: list[dict[str, Any]]) -> None:
        await self._send_message(user_id, segments, {"message_type": "group",
                                                     "sub_type": "normal", "group_id": group_id})

    async def _send_message(self, user_id: int, segments: list[dict[str, Any]],
                            kind: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_json({
            "time": int(time.time()), "self_id": SELF_ID, "post_type": "message",
            "message_id": next(self._ids), "user_id": user_id, "message": segments,
            "raw_message": "", "font": 0,
            "sender": {"user_id": user_id, "nickname": f"user{user_id}"}, **kind})

    async def replies_until(self, fragment: str, within: float = 20) -> list[tuple[str, str]]:
        """Answer the bot's send actions and collect (to, text) until a text has ``fragment``;
        ``to`` is "user:ID" or "group:ID", an image segment reads as [图片]."""
        collected: list[tuple[str, str]] = []
        async with asyncio.timeout(within):
            while True:
                if (reply := await self._next_reply()) is None:
                    continue
                collected.append(reply)
                if fragment in reply[1]:
                    return collected

    async def replies_for(self, seconds: float) -> list[tuple[str, str]]:
        """Everything the bot sends in the next ``seconds`` (answered as ``replies_until``)."""
        collected: list[tuple[str, str]] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    if (reply := await self._next_reply()) is not None:
                        collected.append(reply)
        return collected

    async def _next_reply(self) -> tuple[str, str] | None:
        """The next action answered; (to, text) when it sent a message."""
        assert self._ws is not None
        frame = await self._ws.receive()
        if frame.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"WebSocket closed: {frame.type}")
        action = json.loads(frame.data)
        if "action" not in action:
            return None
        if self.answer_after:
            await asyncio.sleep(self.answer_after)
        await self._ws.send_json({"status": "ok", "retcode": 0,
                                  "data": {"message_id": next(self._ids)},
                                  "echo": action.get("echo")})
        if action["action"] not in ("send_msg", "send_private_msg", "send_group_msg"):
            return None
        params = action["params"]
        to = (f"group:{params['group_id']}" if params.get("group_id")
              else f"user:{params['user_id']}")
        message = params["message"]
        if isinstance(message, str):  # OneBot allows a plain (CQ-code) string
            message = [{"type": "text", "data": {"text": message}}]
        return to, "".join(s["data"]["text"] if s["type"] == "text" else "[图片]"
                           for s in message)


def text(value: str) -> list[dict]:
    """OneBot message segments of a text message."""
    return [{"type": "text", "data": {"text": value}}]


def picture(url: str) -> list[dict]:
    """OneBot message segments of an image, as NapCat sends it."""
    return [{"type": "image", "data": {"file": url.rsplit("/", 1)[-1], "url": url}}]


# a technician, key agents and the CA: the bot that makes certificates (``so-master.key`` beside)
PKI_CONFIG = f"""
[staff]
technicians = ["qq:{TECHNICIAN}"]
[agents]
enabled = true
so_master_file = "so-master.key"
[pki]
enabled = true
"""


def make_instance(tmp_path: Path, extra: str = "", adapters: tuple[str, ...] = ("onebot",)
                  ) -> tuple[BotProcess, int]:
    """A bot process on a free port speaking OneBot (and the other ``adapters``), configured by
    ``tmp_path/bot.toml`` (``extra`` TOML goes first)."""
    port = free_port()
    config = tmp_path / "bot.toml"
    config.write_text(extra + f"""
[bot]
adapters = {json.dumps(list(adapters))}
data_dir = "live-data"
log_level = "INFO"
[server]
port = {port}
[onebot]
access_token = "{TOKEN}"
[fees]
certificate = 300
""", encoding="utf-8")
    return BotProcess(config, port), port


def talker(peer: OneBotPeer):
    """``say(who, segments, until)``: send privately, return the replies up to ``until``."""

    async def say(who: int, segments: list[dict], until: str) -> str:
        await peer.send_private(who, segments)
        return "\n".join(t for _, t in await peer.replies_until(until, within=40))

    return say
