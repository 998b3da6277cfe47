"""The WeChat API the bot calls, at ``[wechat] api_base``: the access token (kept until it
expires, fetched again when WeChat calls it invalid), 客服消息, template messages, and
temporary media (an applicant's photo downloaded by its MediaId, a picture uploaded to send).

The access token comes from ``/cgi-bin/stable_token``: every bot process sharing the account
gets the same token, where ``/cgi-bin/token`` would make each fetch end the others' token.
"""

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
from loguru import logger
from nonebot.exception import ActionFailed, NetworkError

from bot.adapters.fetch import read_capped
from bot.config import WeChatSection
from bot.services.ports import FetchError

TIMEOUT_SECONDS = 15
TOKEN_MARGIN_SECONDS = 300  # fetched again this long before WeChat says it expires
STALE_TOKEN = frozenset({40001, 40014, 42001})  # invalid, malformed, expired access token
MEDIA_GET = "/cgi-bin/media/get?media_id="

Form = Callable[[], aiohttp.FormData]


class WeChatError(ActionFailed):
    """WeChat answered with an errcode other than 0."""

    def __init__(self, api: str, errcode: int, errmsg: str) -> None:
        super().__init__(f"{api}: errcode {errcode} {errmsg}")
        self.errcode, self.errmsg = errcode, errmsg


class WeChatApi:
    """One official account's API client (one per process), also the image fetcher's way to the
    account's media (``owns`` / ``download``)."""

    def __init__(self, settings: WeChatSection) -> None:
        self.settings = settings
        self.base = settings.api_base
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._expires = 0.0
        self._token_lock = asyncio.Lock()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def access_token(self, stale: str | None = None) -> str:
        """The current token; ``stale``: the one WeChat just refused, fetched anew unless another
        call already did."""
        async with self._token_lock:
            if self._token and self._token != stale and time.monotonic() < self._expires:
                return self._token
            answer = await self._stable_token(force=False)
            if stale is not None and answer["access_token"] == stale:
                # WeChat's cache still hands out the token it refuses: ask for a new one
                answer = await self._stable_token(force=True)
            self._token = str(answer["access_token"])
            self._expires = time.monotonic() + int(answer.get("expires_in", 7200)) \
                - TOKEN_MARGIN_SECONDS
            return self._token

    async def _stable_token(self, force: bool) -> dict[str, Any]:
        return await self._post("/cgi-bin/stable_token", None, {
            "grant_type": "client_credential", "appid": self.settings.appid,
            "secret": self.settings.appsecret, "force_refresh": force})

    async def _post(self, path: str, token: str | None, body: dict[str, Any] | None = None,
                    form: Form | None = None, **query: str) -> dict[str, Any]:
        params = dict(query, **({"access_token": token} if token else {}))
        payload = (json.dumps(body, ensure_ascii=False).encode() if body is not None
                   else form() if form is not None else None)
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            async with self._http().post(f"{self.base}{path}", params=params, data=payload,
                                         headers=headers) as response:
                if response.status != 200:
                    raise NetworkError(f"{path}: HTTP {response.status}")
                answer = json.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise NetworkError(f"{path}: {type(error).__name__} {error}") from None
        if answer.get("errcode", 0) != 0:
            raise WeChatError(path, int(answer["errcode"]), str(answer.get("errmsg", "")))
        return answer

    async def call(self, path: str, body: dict[str, Any] | None = None,
                   form: Form | None = None, **query: str) -> dict[str, Any]:
        """POST to the API with the access token; once more with a fresh one when WeChat says it
        is stale (expired, or replaced by another fetch)."""
        token = await self.access_token()
        try:
            return await self._post(path, token, body, form, **query)
        except WeChatError as error:
            if error.errcode not in STALE_TOKEN:
                raise
            logger.info(f"WeChat access token refused ({error.errcode}): fetching a new one")
            token = await self.access_token(stale=token)
            return await self._post(path, token, body, form, **query)

    async def send_custom(self, openid: str, message: dict[str, Any]) -> None:
        """One 客服消息, e.g. ``{"msgtype": "text", "text": {"content": "…"}}``."""
        await self.call("/cgi-bin/message/custom/send", {"touser": openid, **message})

    async def send_template(self, openid: str, template_id: str,
                            data: dict[str, str]) -> None:
        await self.call("/cgi-bin/message/template/send", {
            "touser": openid, "template_id": template_id,
            "data": {key: {"value": value} for key, value in data.items()}})

    async def upload_image(self, data: bytes) -> str:
        """A temporary image (kept 3 days by WeChat); its media_id."""
        kind = "png" if data.startswith(b"\x89PNG") else "jpeg"

        def form() -> aiohttp.FormData:  # read once when sent: a retry needs its own
            fields = aiohttp.FormData()
            fields.add_field("media", data, filename=f"picture.{kind.replace('jpeg', 'jpg')}",
                             content_type=f"image/{kind}")
            return fields

        answer = await self.call("/cgi-bin/media/upload", form=form, type="image")
        return str(answer["media_id"])

    # the image fetcher's side (bot/adapters/fetch.py: ChannelMedia)

    def media_url(self, media_id: str) -> str:
        """How an applicant's photo is named to the services: the API's own media URL, without
        the token (added when it is downloaded)."""
        return f"{self.base}{MEDIA_GET}{quote(media_id, safe='')}"

    def owns(self, url: str) -> bool:
        return url.startswith(f"{self.base}{MEDIA_GET}")

    async def download(self, url: str, max_bytes: int) -> bytes:
        """The photo's bytes, by MediaId with the access token (never by the PicUrl a message
        also carries); the byte cap is kept while they stream in."""
        try:
            return await self._download(url, max_bytes)
        except (ActionFailed, NetworkError) as error:  # no access token to be had
            logger.warning(f"WeChat media download without a token: {error}")
            raise FetchError("暂时无法下载图片，请稍后重新发送。") from None

    async def _download(self, url: str, max_bytes: int) -> bytes:
        token = await self.access_token()
        for attempt in range(2):
            try:
                async with self._http().get(url, params={"access_token": token},
                                             allow_redirects=False) as response:
                    if response.status != 200:
                        raise FetchError(f"图片下载失败（HTTP {response.status}），请重新发送。")
                    if response.content_type not in ("application/json", "text/plain"):
                        return await read_capped(response, max_bytes)
                    answer = json.loads(await response.read())
            except (aiohttp.ClientError, TimeoutError, ValueError):
                raise FetchError("图片下载失败，请重新发送。") from None
            errcode = int(answer.get("errcode", -1))
            if errcode in STALE_TOKEN and attempt == 0:
                token = await self.access_token(stale=token)
                continue
            logger.warning(f"WeChat media download refused: errcode {errcode}")
            if errcode == 40007:  # an unknown media_id: temporary media live 3 days
                raise FetchError("这张图片已过期，请重新发送。")
            break
        raise FetchError("图片下载失败，请重新发送。")
