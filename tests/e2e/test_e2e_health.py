"""End to end: /healthz and /metrics of the real bot process over real HTTP: the unlock mailbox
reported stale while the real Dovecot is stopped and fresh once it is back; a request a proxy
forwarded needs the token."""

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support.dovecot import Dovecot, mail_settings
from tests.support.onebot_peer import TOKEN, OneBotPeer, make_instance
from tests.support.smtp_sink import SmtpSink

POLL_SECONDS = 0.5  # stale after three polls without a success: 1.5 s
HEALTH_TOKEN = "health-token-for-the-test"


async def get(url: str, **headers: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.text()


async def health_until(port: int, condition: Any, within: float = 30) -> tuple[int, dict]:
    """/healthz asked again and again until its body satisfies ``condition``."""
    body: dict = {}
    try:
        async with asyncio.timeout(within):
            while True:
                status, text = await get(f"http://127.0.0.1:{port}/healthz")
                body = json.loads(text)
                if condition(body):
                    return status, body
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"never reached; last answer: {body}") from None


async def mailbox_fresh(port: int) -> float:
    """cadesk_mailbox_fresh as /metrics says it."""
    _, text = await get(f"http://127.0.0.1:{port}/metrics")
    [value] = [s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "cadesk_mailbox_fresh"]
    return value


async def test_healthz_reports_the_mailbox_stale_while_dovecot_is_stopped_and_fresh_again(
        dovecot: Dovecot, smtp: SmtpSink, tmp_path: Path) -> None:
    bot, port = make_instance(tmp_path, mail_settings(dovecot, smtp.port, POLL_SECONDS))
    await bot.start()
    peer = OneBotPeer(port, TOKEN)
    try:
        await peer.connect()
        status, healthy = await health_until(port, lambda b: b["chat"]["qq"]["connected"]
                                             and b["mailbox"]["last_success_at"] is not None)
        assert (status, healthy["status"], healthy["problems"]) == (200, "ok", [])
        assert healthy["mailbox"]["fresh"] is True
        assert healthy["mailbox"]["waiting"] == 0
        assert healthy["mailbox"]["stale_after_seconds"] == 3 * POLL_SECONDS

        await asyncio.to_thread(dovecot.stop)
        status, stale = await health_until(port, lambda b: not b["mailbox"]["fresh"])
        assert (status, stale["status"], stale["problems"]) == (200, "degraded",
                                                                ["mailbox stale"])
        assert stale["mailbox"]["last_success_seconds"] >= 3 * POLL_SECONDS  # shown rounded
        assert await mailbox_fresh(port) == 0

        await asyncio.to_thread(dovecot.start)
        # a poll caught by the stop waits for the IMAP timeout (30 s) before the next one
        status, back = await health_until(port, lambda b: b["mailbox"]["fresh"], within=60)
        assert (status, back["status"], back["problems"]) == (200, "ok", [])
        assert back["mailbox"]["last_success_at"] > stale["mailbox"]["last_success_at"]
        assert back["mailbox"]["last_error"] is None
        assert await mailbox_fresh(port) == 1
    finally:
        await peer.close()
        await bot.stop()


async def test_a_request_through_a_proxy_needs_the_token(tmp_path: Path) -> None:
    """Over the real server (uvicorn) on loopback: a request a proxy forwarded counts as from
    elsewhere, since uvicorn rewrites the client address from X-Forwarded-For when the proxy is
    local; it needs the token. (A client from another address is the service test's: traffic
    here stays on loopback.)"""
    bot, port = make_instance(tmp_path)
    bot.env["CADESK_HEALTH_TOKEN"] = HEALTH_TOKEN
    await bot.start()
    try:
        for path in ("/healthz", "/metrics"):
            here = f"http://127.0.0.1:{port}{path}"
            assert "database" in (await get(here))[1]
            proxied = {"X-Forwarded-For": "203.0.113.7"}
            assert (await get(here, **proxied))[0] == 401
            assert (await get(here, **proxied, Authorization="Bearer wrong"))[0] == 401
            status, text = await get(here, **proxied, Authorization=f"Bearer {HEALTH_TOKEN}")
            assert "database" in text
            # no QQ client connected: the bot can serve nobody, which a monitor sees as 503
            assert status == (503 if path == "/healthz" else 200)
    finally:
        await bot.stop()
