"""Fetching chat images: a timeout, a byte cap enforced while the bytes stream in, and
redirects followed only to public addresses.

The first URL is the chat platform's (the OneBot client hands it over; a local NapCat serves
images from 127.0.0.1) and is fetched as given, unless the source says ``public_only`` (QQ's
official attachment URLs, outside ``[qqbot] media_hosts``): then it is checked as a redirect
is. A redirect is the image server's word, and an image server that was tricked or taken over
could point the bot at its own machine or network (the OneBot endpoint, a metadata service at
169.254.169.254, a router): each redirect target is checked before any connection. Its scheme
must be http(s); a literal address must be public (``address_refusal``); a name must not be
``localhost``, and is checked again where it is resolved, on the connection that uses the
answer (``GuardedResolver``), so a name that resolves to a public address once and to 127.0.0.1
the next time (DNS rebinding) is refused at the connection itself.

A channel with media of its own (a WeChat account's, downloaded by MediaId with its access
token) is a ``ChannelMedia``: its URLs, and only those under its configured API base, are
fetched its way; the rules above stay as they are for everything else.
"""

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from loguru import logger
from yarl import URL

from bot.services.messages import ImageSource
from bot.services.ports import FetchError

CHUNK = 64 * 1024
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
UNSAFE = "图片地址不安全，请重新发送图片。"
# legacy numeric IPv4 hosts (2130706433, 0x7f.1, 127.1): never a real image server
_NUMERIC_HOST = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+))*\.?")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_refusal(address: Address) -> str | None:
    """Why a redirect may not lead to ``address``; None for a public one. IPv6 forms that carry
    an IPv4 address (mapped, 6to4, Teredo) are judged by that address too."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour,
                    address.teredo[1] if address.teredo else None]
        for inner in embedded:
            if inner is not None and (why := address_refusal(inner)):
                return why
    for why, hit in (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
                     ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                     ("private", address.is_private), ("reserved", address.is_reserved),
                     ("not global", not address.is_global)):
        if hit:
            return why
    return None


def target_refusal(url: URL) -> str | None:
    """Why a redirect to ``url`` is refused as far as the URL tells; None when it may be tried
    (a name is checked again when it is resolved)."""
    if url.scheme not in ("http", "https"):
        return f"scheme {url.scheme or 'none'}"
    host = (url.host or "").lower()
    if not host:
        return "no host"
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return "localhost"
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return "numeric host" if _NUMERIC_HOST.fullmatch(host) else None
    return address_refusal(address)


class UnsafeAddress(OSError):
    """A redirect's host resolved to an address refused by ``address_refusal``. An OSError, as
    aiohttp expects of a resolver: it comes back as the connection error."""

    def __init__(self, host: str, address: str, why: str) -> None:
        super().__init__(f"{host} resolves to {address} ({why})")
        self.host, self.address, self.why = host, address, why


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` and refuses the name when any address it gave is not public:
    the check is made on the very answer the connection then uses."""

    def __init__(self, inner: AbstractResolver) -> None:
        self.inner = inner

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answers = await self.inner.resolve(host, port, family)
        for answer in answers:
            why = address_refusal(ipaddress.ip_address(answer["host"].partition("%")[0]))
            if why:
                raise UnsafeAddress(host, answer["host"], why)
        return answers

    async def close(self) -> None:
        await self.inner.close()


def too_big(max_bytes: int) -> FetchError:
    return FetchError(f"图片超过 {max_bytes // 1024 // 1024} MB，请压缩后重新发送。")


async def read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body, refused (``FetchError``) as soon as it is known to exceed ``max_bytes``."""
    if (response.content_length or 0) > max_bytes:
        raise too_big(max_bytes)
    data = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        data += chunk
        if len(data) > max_bytes:
            raise too_big(max_bytes)
    return bytes(data)


class ChannelMedia(Protocol):
    """A chat channel's own media, fetched its way (``bot/adapters/wechat/api.py``)."""

    def owns(self, url: str) -> bool:
        """Whether ``url`` names this channel's media (under its configured API base)."""
        ...

    async def download(self, url: str, max_bytes: int) -> bytes:
        """The bytes, at most ``max_bytes``; raises ``FetchError`` saying what went wrong."""
        ...


class ImageFetcher:
    """The ``ImageFetching`` port over aiohttp. ``resolver`` resolves redirect targets' names
    (the system's by default; tests give their own); ``channels`` fetch their own media."""

    def __init__(self, max_bytes: int, timeout_seconds: float,
                 resolver: AbstractResolver | None = None,
                 channels: Sequence[ChannelMedia] = ()) -> None:
        self.channels = tuple(channels)
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.resolver = resolver
        self._session: aiohttp.ClientSession | None = None  # the platform's URL, as given
        self._guarded: aiohttp.ClientSession | None = None  # redirect targets

    async def close(self) -> None:
        for session in (self._session, self._guarded):
            if session is not None:
                await session.close()
        self._session = self._guarded = None

    def _sessions(self) -> tuple[aiohttp.ClientSession, aiohttp.ClientSession]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        if self._guarded is None:
            resolver = GuardedResolver(self.resolver or DefaultResolver())
            self._guarded = aiohttp.ClientSession(
                timeout=self.timeout,
                connector=aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False))
        return self._session, self._guarded

    @staticmethod
    def _unsafe(url: URL, why: str) -> FetchError:
        logger.warning(f"chat image redirect to {url.scheme}://{url.host} refused: {why}")
        return FetchError(UNSAFE)

    async def fetch(self, source: ImageSource) -> bytes:
        if source.path is not None:
            return await asyncio.to_thread(self._read_file, source.path)
        if not source.url or not source.url.startswith(("http://", "https://")):
            raise FetchError("没有拿到这张图片，请重新发送。")
        for channel in self.channels:
            if channel.owns(source.url):
                try:
                    async with asyncio.timeout(self.timeout_seconds):
                        return await channel.download(source.url, self.max_bytes)
                except TimeoutError:
                    raise FetchError("图片下载超时，请稍后重新发送。") from None
        first, guarded = self._sessions()
        url: Any = source.url  # the first as the platform gave it, then yarl URLs
        if source.public_only:
            url = URL(source.url)
            if why := target_refusal(url):
                raise self._unsafe(url, why)
            first = guarded
        try:
            async with asyncio.timeout(self.timeout_seconds):
                for hop in range(MAX_REDIRECTS + 1):
                    http = first if hop == 0 else guarded
                    async with http.get(url, allow_redirects=False) as response:
                        if response.status in REDIRECTS:
                            url = self._next(response)
                            continue
                        return await self._body(response)
        except TimeoutError:
            raise FetchError("图片下载超时，请稍后重新发送。") from None
        except aiohttp.ClientConnectorError as error:
            if isinstance(error.os_error, UnsafeAddress):
                raise self._unsafe(URL(str(url)), error.os_error.why) from None
            raise FetchError("图片下载失败，请重新发送。") from None
        except aiohttp.ClientError:
            raise FetchError("图片下载失败，请重新发送。") from None
        raise FetchError("图片地址跳转次数过多，请重新发送图片。")

    def _next(self, response: aiohttp.ClientResponse) -> URL:
        """Where a redirect points, refused (``FetchError``) unless it may be tried."""
        location = response.headers.get("Location", "")
        try:
            if not location:
                raise ValueError("a redirect to nowhere")
            target = response.url.join(URL(location))
        except ValueError:
            raise FetchError("图片下载失败，请重新发送。") from None
        if why := target_refusal(target):
            raise self._unsafe(target, why)
        return target

    async def _body(self, response: aiohttp.ClientResponse) -> bytes:
        if response.status != 200:
            raise FetchError(f"图片下载失败（HTTP {response.status}），请重新发送。")
        return await read_capped(response, self.max_bytes)

    def _read_file(self, path: Path) -> bytes:
        try:
            if path.stat().st_size > self.max_bytes:
                raise too_big(self.max_bytes)
            return path.read_bytes()
        except OSError:
            raise FetchError(f"读不到文件 {path}，请检查路径。") from None
