"""The chat image fetcher follows redirects only to public addresses.

Real local aiohttp servers on 127.0.0.1: an image server that redirects wherever the test
says, and a target that counts what reaches it. No test sends a packet anywhere but
127.0.0.1: a refused target is refused before any connection, and the addresses that have no
server here (10.x, 169.254.x, ...) prove it by the refusal itself (a connection would time out
or fail, which the fetcher reports differently).
"""

import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import Self

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from loguru import logger
from yarl import URL

from bot.adapters import fetch
from bot.adapters.fetch import ImageFetcher, address_refusal, target_refusal
from bot.services.messages import ImageSource
from bot.services.ports import FetchError
from tests.support.helpers import free_port

IMAGE = b"GIF89a-not-really-an-image"


class Server:
    """An HTTP server on 127.0.0.1: /image answers IMAGE, /go?to=URL redirects there."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requested: list[str] = []
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def redirect(self, to: str) -> str:
        return str(URL(self.url("/go")).with_query(to=to))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requested.append(request.path_qs)
        if request.path == "/go":
            raise web.HTTPFound(request.query["to"])
        return web.Response(body=IMAGE)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


class HostsFile(AbstractResolver):
    """A resolver answering from a table, as a DNS server an attacker runs would."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        return [{"hostname": host, "host": address, "port": port,
                 "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                 "proto": 0, "flags": 0} for address in self.table[host]]

    async def close(self) -> None:
        pass


@pytest.fixture
async def origin() -> AsyncIterator[Server]:
    async with Server() as server:
        yield server


@pytest.fixture
async def target() -> AsyncIterator[Server]:
    async with Server() as server:
        yield server


async def fetched(url: str, resolver: AbstractResolver | None = None) -> bytes:
    fetcher = ImageFetcher(1024 * 1024, 5, resolver)
    try:
        return await fetcher.fetch(ImageSource(url=url))
    finally:
        await fetcher.close()


async def test_the_platforms_own_url_on_loopback_is_fetched(origin: Server) -> None:
    assert await fetched(origin.url("/image")) == IMAGE  # NapCat serving from 127.0.0.1


@pytest.mark.parametrize("where", [
    "http://127.0.0.1:{port}/image", "http://[::ffff:127.0.0.1]:{port}/image",
    "http://localhost:{port}/image", "http://LOCALHOST.:{port}/image",
    "http://images.localhost:{port}/image", "http://0.0.0.0:{port}/image",
    "http://127.1:{port}/image", "http://2130706433:{port}/image"])
async def test_a_redirect_to_this_machine_is_refused_and_nothing_reaches_it(
        where: str, origin: Server, target: Server) -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        with pytest.raises(FetchError, match="图片地址不安全，请重新发送图片。"):
            await fetched(origin.redirect(where.format(port=target.port)))
    finally:
        logger.remove(sink)
    assert origin.requested  # the image server was asked ...
    assert target.requested == []  # ... and what it pointed at never was
    assert "chat image redirect to http://" in "".join(lines)


@pytest.mark.parametrize("where", [
    "http://10.20.30.40/image", "http://172.16.0.1/image", "http://192.168.1.1/image",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/image",
    "http://[fe80::1]/image", "http://[fd00::1]/image", "http://100.64.0.1/image",
    "http://224.0.0.1/image", "http://[2002:7f00:1::]/image", "http://[::]/image",
    "file:///etc/passwd", "ftp://198.51.100.1/image", "gopher://example.com/"])
async def test_a_redirect_to_a_private_or_odd_target_is_refused_before_connecting(
        where: str, origin: Server) -> None:
    with pytest.raises(FetchError, match="图片地址不安全"):
        await fetched(origin.redirect(where))


async def test_a_name_resolving_to_loopback_is_refused_where_it_is_resolved(
        origin: Server, target: Server) -> None:
    """The name's own answer is checked, on the connection that would use it: a name pointing
    at 127.0.0.1 (or rebinding to it among public answers) is refused, nothing connects."""
    resolver = HostsFile({"img.example.test": ["127.0.0.1"],
                          "rebind.example.test": ["93.184.216.34", "127.0.0.1"],
                          "v6.example.test": ["::1"]})
    for name in resolver.table:
        with pytest.raises(FetchError, match="图片地址不安全"):
            await fetched(origin.redirect(f"http://{name}:{target.port}/image"), resolver)
    assert resolver.asked == ["img.example.test", "rebind.example.test", "v6.example.test"]
    assert target.requested == []


async def test_an_untrusted_platforms_first_url_is_judged_as_a_redirect_is(
        origin: Server) -> None:
    """An official platform's attachment (``public_only``: its host not in ``[qqbot]
    media_hosts``) gets no pass for being the platform's word: loopback, a name resolving to
    it, are refused before anything connects."""
    resolver = HostsFile({"media.example.test": ["127.0.0.1"]})
    fetcher = ImageFetcher(1024 * 1024, 5, resolver)
    try:
        for url in (origin.url("/image"), f"http://media.example.test:{origin.port}/image"):
            with pytest.raises(FetchError, match="图片地址不安全"):
                await fetcher.fetch(ImageSource(url=url, public_only=True))
    finally:
        await fetcher.close()
    assert resolver.asked == ["media.example.test"]
    assert origin.requested == []


async def test_allowed_redirects_are_followed_a_few_times_at_most(
        origin: Server, target: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 127.0.0.1 allowed for the test (there is no public server to use), a redirect is
    followed to its image, and a loop stops after MAX_REDIRECTS hops."""
    monkeypatch.setattr(fetch, "address_refusal", lambda address: None)
    assert await fetched(origin.redirect(target.url("/image"))) == IMAGE
    assert target.requested == ["/image"]
    loop = origin.url("/image")
    for _ in range(fetch.MAX_REDIRECTS + 1):
        loop = origin.redirect(loop)
    with pytest.raises(FetchError, match="跳转次数过多"):
        await fetched(loop)


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "8.8.8.8", "114.114.114.114",
                                     "2606:4700:4700::1111", "2400:3200::1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None
    host = f"[{address}]" if ":" in address else address
    assert target_refusal(URL(f"https://{host}/image.jpg")) is None


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.0.0.1", "private"),
    ("192.168.0.1", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("224.0.0.251", "multicast"),
    ("ff02::1", "multicast"), ("::ffff:10.0.0.1", "private"), ("2002:a00:1::", "private"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"), ("240.0.0.1", "private"),
    ("100.64.0.1", "not global"), ("203.0.113.9", "private")])
def test_other_addresses_are_refused_with_their_reason(address: str, why: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == why


def test_names_pass_the_url_check_and_are_judged_when_resolved() -> None:
    assert target_refusal(URL("https://gchat.qpic.cn/gchatpic_new/1/2-3-ABC/0")) is None
    assert target_refusal(URL("https://localhost/x")) == "localhost"
    assert target_refusal(URL("javascript:alert(1)")) == "scheme javascript"
