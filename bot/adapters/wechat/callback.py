"""What WeChat sends to /wechat/callback, checked and opened: the signature over token,
timestamp and nonce (明文模式), and in 安全模式 the message's own signature and its AES-256-CBC
encryption (WeChat's 消息加解密, the format its WXBizMsgCrypt samples implement).

Nothing here trusts the request: a signature that does not match, an encrypted message for
another AppID, a body that is not the plain XML WeChat sends, are each a ``Refused``.
"""

import base64
import hashlib
import hmac
import re
import struct
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MAX_BODY = 64 * 1024  # a text message is at most 2048 bytes; an event is smaller
_BLOCK = 32  # WeChat pads to 32 bytes (PKCS#7 with a 32-byte block), not AES's 16
_CDATA = re.compile(rb"<!\[CDATA\[.*?\]\]>", re.DOTALL)


class Refused(Exception):
    """A callback that is not WeChat's: answered 403 (400 for a malformed one), never read."""

    def __init__(self, why: str, status: int = 403) -> None:
        super().__init__(why)
        self.status = status


def signature(*parts: str) -> str:
    """WeChat's SHA-1 over the parts sorted and joined (token, timestamp, nonce[, Encrypt])."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signed(token: str, query: Mapping[str, str]) -> bool:
    """Whether the query's ``signature`` is the token's over its timestamp and nonce."""
    expected = signature(token, query.get("timestamp", ""), query.get("nonce", ""))
    return hmac.compare_digest(expected, query.get("signature", ""))


@dataclass(frozen=True)
class MessageCipher:
    """安全模式: the EncodingAESKey's 32 bytes, and the AppID every message must name."""

    key: bytes
    appid: str

    @classmethod
    def of(cls, encoding_aes_key: str, appid: str) -> "MessageCipher":
        return cls(base64.b64decode(encoding_aes_key + "="), appid)

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def decrypt(self, encrypted: str) -> str:
        """The XML inside ``Encrypt``: 16 random bytes, its length (4 bytes, big-endian), the
        XML, the AppID; padded to 32 bytes."""
        try:
            data = base64.b64decode(encrypted, validate=True)
            decryptor = self._cipher().decryptor()
            plain = decryptor.update(data) + decryptor.finalize()
            pad = plain[-1]
            if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes([pad]) * pad:
                raise ValueError("bad padding")
            plain = plain[16:-pad]
            (length,) = struct.unpack(">I", plain[:4])
            xml, appid = plain[4:4 + length], plain[4 + length:]
        except (ValueError, struct.error, IndexError) as error:
            raise Refused(f"undecryptable message ({error})", 400) from None
        if appid.decode(errors="replace") != self.appid:
            raise Refused("encrypted for another AppID")
        return xml.decode()


def parse_xml(body: bytes) -> dict[str, str]:
    """A flat ``<xml>`` of WeChat's into its fields. No DTD is accepted: WeChat sends none, and
    an entity is how XML bombs and external-entity reads begin."""
    if b"<!" in _CDATA.sub(b"", body):  # what a person typed is inside CDATA: theirs to write
        raise Refused("XML with a declaration", 400)
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise Refused("not XML", 400) from None
    if root.tag != "xml":
        raise Refused("not a WeChat message", 400)
    return {child.tag: (child.text or "") for child in root}


def open_callback(query: Mapping[str, str], body: bytes, token: str,
                  cipher: MessageCipher | None) -> dict[str, str]:
    """The fields of a POSTed message, after every check: the request's signature; with a
    cipher, the message's own signature over its ``Encrypt`` and the AppID inside (a plain
    message is then refused: the account is in 安全模式); the sender must be the ``openid``
    the request names."""
    if len(body) > MAX_BODY:
        raise Refused("body too large", 413)
    if not signed(token, query):
        raise Refused("bad signature")
    fields = parse_xml(body)
    if cipher is None:
        if query.get("encrypt_type", "raw") != "raw":
            raise Refused("an encrypted message, and no EncodingAESKey is configured", 400)
        return _from_openid(query, fields)
    encrypted = fields.get("Encrypt", "")
    if query.get("encrypt_type") != "aes" or not encrypted:
        raise Refused("a plain message to an account in 安全模式")
    expected = signature(token, query.get("timestamp", ""), query.get("nonce", ""), encrypted)
    if not hmac.compare_digest(expected, query.get("msg_signature", "")):
        raise Refused("bad message signature")
    return _from_openid(query, parse_xml(cipher.decrypt(encrypted).encode()))


def _from_openid(query: Mapping[str, str], fields: dict[str, str]) -> dict[str, str]:
    if query.get("openid", fields.get("FromUserName")) != fields.get("FromUserName"):
        raise Refused("the sender is not the openid the request names")
    return fields
