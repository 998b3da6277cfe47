"""What WeChat POSTs to /wechat/callback is read only when it is WeChat's: the request's
signature, and in 安全模式 the message's own signature and encryption (made here by wechatpy, an
implementation independent of the bot's)."""

import time

import pytest
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from bot.adapters.wechat.callback import MessageCipher, Refused, open_callback
from bot.adapters.wechat.delivery import pieces, summary

APPID, TOKEN = "wx5f3c0e8a1b2d4c6e", "unit-token"
KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
MESSAGE = ("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUSER]]>"
           "</FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]>"
           "</MsgType><Content><![CDATA[新办证书 <确认>]]></Content><MsgId>42</MsgId></xml>")


def sign(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def sealed(xml: str, appid: str = APPID) -> tuple[dict[str, str], bytes]:
    """A query and body as WeChat sends an encrypted message."""
    timestamp, nonce = str(int(time.time())), "8235"
    reply = WeChatCrypto(TOKEN, KEY, appid).encrypt_message(xml, nonce, timestamp)
    encrypted = reply.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    query = {"signature": sign(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
             "encrypt_type": "aes", "msg_signature": sign(TOKEN, timestamp, nonce, encrypted)}
    return query, f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode()


CIPHER = MessageCipher.of(KEY, APPID)


def test_an_encrypted_message_is_opened() -> None:
    query, body = sealed(MESSAGE)
    fields = open_callback(query, body, TOKEN, CIPHER)
    assert fields["Content"] == "新办证书 <确认>"
    assert (fields["FromUserName"], fields["MsgId"]) == ("oUSER", "42")


def test_a_plain_message_is_read_in_plain_mode_only() -> None:
    query = {"signature": sign(TOKEN, "1", "2"), "timestamp": "1", "nonce": "2"}
    assert open_callback(query, MESSAGE.encode(), TOKEN, None)["MsgId"] == "42"
    with pytest.raises(Refused):  # the account is in 安全模式: plain text is not WeChat's
        open_callback(query, MESSAGE.encode(), TOKEN, CIPHER)


@pytest.mark.parametrize("forgery", ["signature", "msg_signature", "timestamp"])
def test_a_changed_signature_or_signed_value_is_refused(forgery: str) -> None:
    query, body = sealed(MESSAGE)
    query[forgery] = "0" + query[forgery][1:] if query[forgery][0] != "0" else "1"
    with pytest.raises(Refused) as refused:
        open_callback(query, body, TOKEN, CIPHER)
    assert refused.value.status == 403


def test_a_message_encrypted_for_another_account_is_refused() -> None:
    query, body = sealed(MESSAGE, appid="wx0000000000000000")
    with pytest.raises(Refused, match="another AppID"):
        open_callback(query, body, TOKEN, CIPHER)


def test_a_message_from_another_sender_than_the_signed_openid_is_refused() -> None:
    query, body = sealed(MESSAGE)
    assert open_callback(query | {"openid": "oUSER"}, body, TOKEN, CIPHER)["MsgId"] == "42"
    with pytest.raises(Refused, match="openid"):
        open_callback(query | {"openid": "oSOMEONE-ELSE"}, body, TOKEN, CIPHER)


def test_a_body_beyond_any_message_is_refused_unread() -> None:
    query = {"signature": sign(TOKEN, "1", "2"), "timestamp": "1", "nonce": "2"}
    with pytest.raises(Refused) as refused:
        open_callback(query, b"<xml>" + b" " * 70_000 + b"</xml>", TOKEN, None)
    assert refused.value.status == 413


def test_xml_with_a_declaration_is_refused_before_parsing() -> None:
    bomb = ('<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
            "<xml><Content>&b;</Content></xml>")
    query = {"signature": sign(TOKEN, "1", "2"), "timestamp": "1", "nonce": "2"}
    with pytest.raises(Refused) as refused:
        open_callback(query, bomb.encode(), TOKEN, None)
    assert refused.value.status == 400


def test_what_a_person_types_may_look_like_a_declaration() -> None:
    typed = MESSAGE.replace("新办证书 <确认>", "<!DOCTYPE 玩笑> <!-- 注释 -->")
    query, body = sealed(typed)
    assert open_callback(query, body, TOKEN, CIPHER)["Content"] == "<!DOCTYPE 玩笑> <!-- 注释 -->"


def test_long_texts_are_cut_between_lines_within_the_byte_limit() -> None:
    text = "\n".join(f"第{n}行：【经办人身份证号】请核对" for n in range(300))
    parts = pieces(text)
    assert len(parts) > 1
    assert all(len(p.encode()) <= 2000 for p in parts)
    assert "\n".join(parts) == text
    assert "".join(pieces("长" * 1500)) == "长" * 1500  # one line longer than a message


def test_a_template_summary_is_the_first_line_cut_to_twenty_characters() -> None:
    assert summary(["\n您的订单 XB-261203-5ASR 已审核通过，请按二维码付款\n详情……"]) == \
        "您的订单 XB-261203-5ASR…"
    assert summary(["已发货"]) == "已发货"
