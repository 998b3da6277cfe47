"""Fetching chat images: a timeout, and a byte cap enforced while the bytes stream in."""

import asyncio
from pathlib import Path

import aiohttp

from bot.services.messages import ImageSource
from bot.services.ports import FetchError

CHUNK = 64 * 1024


class ImageFetcher:
    """The ``ImageFetching`` port over aiohttp."""

    def __init__(self, max_bytes: int, timeout_seconds: float) -> None:
        self.max_bytes = max_bytes
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _too_big(self) -> FetchError:
        return FetchError(f"图片超过 {self.max_bytes // 1024 // 1024} MB，请压缩后重新发送。")

    async def fetch(self, source: ImageSource) -> bytes:
        if source.path is not None:
            return await asyncio.to_thread(self._read_file, source.path)
        if not source.url or not source.url.startswith(("http://", "https://")):
            raise FetchError("没有拿到这张图片，请重新发送。")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.get(source.url) as response:
                if response.status != 200:
                    raise FetchError(f"图片下载失败（HTTP {response.status}），请重新发送。")
                if (response.content_length or 0) > self.max_bytes:
                    raise self._too_big()
                data = bytearray()
                async for chunk in response.content.iter_chunked(CHUNK):
                    data += chunk
                    if len(data) > self.max_bytes:
                        raise self._too_big()
                return bytes(data)
        except TimeoutError:
            raise FetchError("图片下载超时，请稍后重新发送。") from None
        except aiohttp.ClientError:
            raise FetchError("图片下载失败，请重新发送。") from None

    def _read_file(self, path: Path) -> bytes:
        try:
            if path.stat().st_size > self.max_bytes:
                raise self._too_big()
            return path.read_bytes()
        except OSError:
            raise FetchError(f"读不到文件 {path}，请检查路径。") from None
