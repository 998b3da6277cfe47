"""QQ official: replies packed into few messages without losing a word, the webhook's checks,
which attachment hosts are trusted, and replies numbered within the platform's allowance."""

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.adapters.qq_official import (
    REPLY_NUMBERS,
    Outgoing,
    ReplyNumbers,
    batched,
    send,
    signing_key,
    trusted,
    webhook_refusal,
)
from bot.services.channels import rules_of
from bot.services.messages import Account, Picture

SECRET = "unitTestSecret"


def test_a_dialogues_texts_go_as_one_message() -> None:
    assert batched(["您好，欢迎使用", "请输入【统一社会信用代码】"]) == [
        Outgoing("您好，欢迎使用\n\n请输入【统一社会信用代码】")]


def test_a_picture_is_captioned_by_the_text_before_it_and_its_name() -> None:
    qr = Picture(b"\x89PNG qr", "支付二维码")
    assert batched(["审核通过，请扫码支付", qr, "支付后请等待"]) == [
        Outgoing("审核通过，请扫码支付\n\n支付二维码", b"\x89PNG qr"), Outgoing("支付后请等待")]
    assert batched([qr, qr]) == [Outgoing("支付二维码", qr.data)] * 2


@given(st.lists(st.text(alphabet="订单号：\n ab1", max_size=120), min_size=1, max_size=12))
def test_texts_are_cut_at_line_ends_and_nothing_is_lost(replies: list[str]) -> None:
    messages = batched(replies, max_text=50)
    assert all(len(m.text) <= 50 for m in messages)
    def printed(texts: list[str]) -> str:  # what a reader sees, blank space aside
        return "".join("".join(texts).split())

    assert printed([m.text for m in messages]) == printed(replies)


def test_a_long_text_fills_several_messages_in_order() -> None:
    lines = [f"第 {n} 行：订单 XB-261203-{n:04d} 待审核" for n in range(200)]
    messages = batched(["\n".join(lines)], max_text=500)
    assert len(messages) > 1
    assert "\n".join(m.text for m in messages).split("\n") == lines


def test_only_the_listed_media_hosts_are_trusted() -> None:
    hosts = ["127.0.0.1:8123", "media.example.test"]
    assert trusted("http://127.0.0.1:8123/download?fileid=a", hosts)
    assert not trusted("http://127.0.0.1:8124/download?fileid=a", hosts)
    assert trusted("https://MEDIA.example.test/x.jpg", hosts)
    assert not trusted("https://media.example.test.evil.test/x.jpg", hosts)
    assert not trusted("http://10.0.0.1/x.jpg", [])


def signed(body: bytes, secret: str = SECRET, timestamp: str = "1733130000") -> dict[str, str]:
    signature = signing_key(secret).sign(timestamp.encode() + body).hex()
    return {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": timestamp}


EVENT = json.dumps({"op": 0, "t": "C2C_MESSAGE_CREATE", "d": {"content": "你好"}}).encode()


def test_a_signed_event_passes_and_anything_else_is_refused() -> None:
    assert webhook_refusal(SECRET, signed(EVENT), EVENT) is None
    for headers, body in [({}, EVENT), (signed(EVENT, "another secret"), EVENT),
                          (signed(EVENT), EVENT.replace(b"op", b"oq")),
                          ({**signed(EVENT), "X-Signature-Ed25519": "zz"}, EVENT),
                          ({**signed(EVENT), "X-Signature-Timestamp": "1733130001"}, EVENT)]:
        refusal = webhook_refusal(SECRET, headers, body)
        assert refusal is not None
        assert refusal.status == 401


@pytest.mark.parametrize(("token", "ts", "answered"), [
    ("Arq0D5A61EgUu4OxUvOp", "1725442341", True),
    (EVENT.decode(), "1725442341", False),  # a forged event to be signed back
    ("abc", "1725442341{", False),
    ("", "1", False),
])
def test_the_callback_validation_is_answered_only_for_a_platform_token(
        token: str, ts: str, answered: bool) -> None:
    body = json.dumps({"op": 13, "d": {"plain_token": token, "event_ts": ts}}).encode()
    assert (webhook_refusal(SECRET, {}, body) is None) is answered


@dataclass
class SentRecorder:
    """Stands in for the adapter's Bot: what ``send_to_c2c`` was asked."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    async def send_to_c2c(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


async def test_replies_beyond_the_allowance_go_proactively_numbered_once() -> None:
    allowed = rules_of("qqbot").replies_per_message
    assert allowed == 5
    bot, account = SentRecorder(), Account("qqbot", "OPENID")
    msg_id = f"msg-{time.monotonic_ns()}"
    pictures = [Picture(bytes([n]), f"第 {n} 页") for n in range(4)]
    assert await send(bot, account, ["请打印", *pictures], reply_to=msg_id)  # type: ignore[arg-type]
    qr = Picture(b"x", "二维码")
    assert await send(bot, account, ["通知一", qr, qr, "通知二"],  # type: ignore[arg-type]
                      reply_to=msg_id)
    base = REPLY_NUMBERS.base
    numbered = [(c.get("msg_id"), c.get("msg_seq")) for c in bot.calls]
    assert numbered == [(msg_id, base + n) for n in range(1, 6)] + [(None, None)] * 2
    assert bot.calls[0]["openid"] == "OPENID"


def test_two_processes_number_their_replies_to_one_message_apart() -> None:
    """A restarted bot, or a second process, replying to a message the first answered does not
    repeat its msg_seq (the platform would refuse the notice)."""
    first, second = ReplyNumbers(), ReplyNumbers()
    assert 0 <= first.base < 1 << 24
    if first.base == second.base:  # one chance in a million
        second = ReplyNumbers(first.base + 16)
    used = {first.next("m") for _ in range(5)}
    assert used.isdisjoint({second.next("m") for _ in range(5)})


@dataclass
class Refusing(SentRecorder):
    """The platform refuses the second message, or holds it for review."""

    error: Exception = field(default_factory=lambda: RuntimeError())

    async def send_to_c2c(self, **kwargs: Any) -> None:
        await super().send_to_c2c(**kwargs)
        if len(self.calls) == 2:
            raise self.error


async def test_a_refusal_stops_the_sending_and_a_review_hold_does_not() -> None:
    from nonebot.adapters.qq.exception import AuditException, RateLimitException
    from nonebot.drivers import Response

    replies = [Picture(b"1", "一"), Picture(b"2", "二"), Picture(b"3", "三")]
    refused = Refusing(error=RateLimitException(Response(429)))
    assert not await send(refused, Account("qqbot", "O"), replies)  # type: ignore[arg-type]
    assert len(refused.calls) == 2  # the outbox retries; nothing after the refusal went out
    held = Refusing(error=AuditException("audit-1"))
    assert await send(held, Account("qqbot", "O"), replies)  # type: ignore[arg-type]
    assert len(held.calls) == 3
