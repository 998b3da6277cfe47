"""A CA private key that stays on a PKCS#11 token (HSM or UKEY), usable by cryptography.

cryptography's certificate and CRL builders sign by calling the key object's ``sign(data, ...)``
method, so a subclass of its private-key classes that forwards ``sign`` to the token lets them
sign with a key that never leaves it. Each signature opens its own short session (and login):
the CA signs a few times a day, and a long-lived session would die whenever other code in the
process re-initialises the same PKCS#11 module.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, NoReturn

import pkcs11
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from pkcs11 import KeyType, Mechanism, ObjectClass

from bot.pki.errors import CAError

PIN_ENV = "CADESK_CA_TOKEN_PIN"
_RSA_MECHANISMS = {
    "sha256": Mechanism.SHA256_RSA_PKCS,
    "sha384": Mechanism.SHA384_RSA_PKCS,
    "sha512": Mechanism.SHA512_RSA_PKCS,
}


@dataclass(frozen=True)
class TokenKeyRef:
    """Where the CA key is: PKCS#11 module, token label, private-key label.

    The user PIN comes from the environment variable ``CADESK_CA_TOKEN_PIN``."""

    module: str
    token_label: str
    key_label: str


class _TokenSigner:
    def __init__(self, ref: TokenKeyRef, pin: str) -> None:
        self._ref, self._pin = ref, pin
        self._lock = threading.Lock()
        try:
            self._lib = pkcs11.lib(ref.module)
        except RuntimeError as error:
            raise CAError(f"无法加载 PKCS#11 驱动 {ref.module}：{error}") from None
        self.key_type = self._with_key(lambda key: key.key_type)

    def sign(self, data: bytes, mechanism: Mechanism) -> bytes:
        return self._with_key(lambda key: key.sign(data, mechanism=mechanism))

    def _token(self) -> pkcs11.Token:
        for attempt in range(2):
            try:
                return self._lib.get_token(token_label=self._ref.token_label)
            except pkcs11.NoSuchToken:
                if attempt == 0:
                    self._lib.reinitialize()  # a token inserted after the module was loaded
        raise CAError(f"找不到标签为 {self._ref.token_label} 的 CA 令牌，请确认已插好。")

    def _with_key(self, use: Any) -> Any:
        with self._lock:
            try:
                with self._token().open(user_pin=self._pin) as session:
                    key = session.get_key(
                        object_class=ObjectClass.PRIVATE_KEY, label=self._ref.key_label
                    )
                    return use(key)
            except pkcs11.PinIncorrect:
                raise CAError(f"CA 令牌 PIN 错误，请检查环境变量 {PIN_ENV}。") from None
            except pkcs11.PinLocked:
                raise CAError("CA 令牌的 PIN 已锁定，需要用 SO PIN 解锁。") from None
            except pkcs11.NoSuchKey:
                raise CAError(
                    f"CA 令牌 {self._ref.token_label} 上没有标签为 {self._ref.key_label} 的私钥。"
                ) from None
            except pkcs11.MultipleObjectsReturned:
                raise CAError(
                    f"CA 令牌上有多个标签为 {self._ref.key_label} 的私钥，请让标签唯一。"
                ) from None


def _digest(data: bytes, algorithm: Any) -> bytes:
    if isinstance(algorithm, Prehashed):
        return data
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize()


def _unsupported(what: str) -> NoReturn:
    raise NotImplementedError(f"a token-held CA key cannot {what}")


class TokenECKey(ec.EllipticCurvePrivateKey):
    """ECDSA on the token (``CKM_ECDSA`` over the digest, raw r‖s turned into DER)."""

    def __init__(self, signer: _TokenSigner, public: ec.EllipticCurvePublicKey) -> None:
        self._signer, self._public = signer, public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            _unsupported("sign with anything but ECDSA")
        digest = _digest(data, signature_algorithm.algorithm)
        raw = self._signer.sign(digest, Mechanism.ECDSA)
        half = len(raw) // 2
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        _unsupported("do key agreement")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _unsupported("be exported")

    def private_bytes(self, *args: Any, **kwargs: Any) -> bytes:
        _unsupported("be exported")

    def __copy__(self) -> TokenECKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> TokenECKey:
        return self


class TokenRSAKey(rsa.RSAPrivateKey):
    """RSA PKCS#1 v1.5 on the token (``CKM_SHA256_RSA_PKCS`` and friends)."""

    def __init__(self, signer: _TokenSigner, public: rsa.RSAPublicKey) -> None:
        self._signer, self._public = signer, public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def sign(self, data: bytes, padding_: padding.AsymmetricPadding, algorithm: Any) -> bytes:
        if not isinstance(padding_, padding.PKCS1v15) or isinstance(algorithm, Prehashed):
            _unsupported("sign with anything but PKCS#1 v1.5 over the whole message")
        mechanism = _RSA_MECHANISMS.get(algorithm.name)
        if mechanism is None:
            _unsupported(f"sign with {algorithm.name}")
        return self._signer.sign(data, mechanism)

    def decrypt(self, ciphertext: bytes, padding_: padding.AsymmetricPadding) -> bytes:
        _unsupported("decrypt")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _unsupported("be exported")

    def private_bytes(self, *args: Any, **kwargs: Any) -> bytes:
        _unsupported("be exported")

    def __copy__(self) -> TokenRSAKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> TokenRSAKey:
        return self


def open_token_key(
    ref: TokenKeyRef, public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
) -> TokenECKey | TokenRSAKey:
    """The token key whose public half is ``public`` (taken from the CA certificate)."""
    pin = os.environ.get(PIN_ENV)
    if not pin:
        raise CAError(f"CA 私钥在 PKCS#11 令牌上，请在环境变量 {PIN_ENV} 中提供令牌 PIN。")
    signer = _TokenSigner(ref, pin)
    if isinstance(public, ec.EllipticCurvePublicKey) and signer.key_type == KeyType.EC:
        return TokenECKey(signer, public)
    if isinstance(public, rsa.RSAPublicKey) and signer.key_type == KeyType.RSA:
        return TokenRSAKey(signer, public)
    raise CAError("CA 证书与令牌上私钥的类型不一致（RSA 与 ECDSA），请检查配置。")
