"""The UKEY over PKCS#11 (python-pkcs11): read what it holds, reset its user PIN, and carry a
certificate: personalise a blank key, make a request with the key on it, write a certificate.

Token calls block, and PKCS#11 wants them from one place: ``TokenWorker`` runs every call in a
single worker thread. Each call rescans the slots first (``reinitialize``): a UKEY plugged in
after the agent started must be found, and a ``Token`` object keeps the flags it was read with.
"""

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import pkcs11
from cryptography import x509
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, KeyType, ObjectClass, TokenFlag
from pkcs11 import exceptions as pk

from bot.key_agent.csr import build_csr

KEY_BITS = 2048  # what UKEY vendors support everywhere; the CA refuses less
KEY_LABEL = "cadesk"


@dataclass(frozen=True)
class PinState:
    initialized: bool
    locked: bool
    count_low: bool  # a wrong PIN was entered since the last good one
    final_try: bool  # one more wrong PIN locks it

    @classmethod
    def from_flags(cls, flags: int) -> "PinState":
        return cls(initialized=bool(flags & TokenFlag.USER_PIN_INITIALIZED),
                   locked=bool(flags & TokenFlag.USER_PIN_LOCKED),
                   count_low=bool(flags & TokenFlag.USER_PIN_COUNT_LOW),
                   final_try=bool(flags & TokenFlag.USER_PIN_FINAL_TRY))

    def describe(self) -> str:
        if self.locked:
            return "用户 PIN 已锁定"
        if self.final_try:
            return "用户 PIN 只剩最后一次尝试"
        if self.count_low:
            return "用户 PIN 曾输错"
        return "用户 PIN 正常" if self.initialized else "用户 PIN 未设置"


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    organisation: str
    serial_number: str  # hex
    not_before: str  # ISO 8601, UTC
    not_after: str
    issuer: str


@dataclass(frozen=True)
class TokenInfo:
    serial: str
    label: str
    manufacturer: str
    model: str
    pin: PinState
    certificates: list[CertificateInfo] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class TokenError(Exception):
    """A token job that cannot be done; ``code`` for programs, ``str`` for people (Chinese)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _text(value: Any) -> str:
    return (value.decode() if isinstance(value, bytes) else str(value)).strip()


def _certificate(der: bytes) -> CertificateInfo:
    cert = x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        organisation=_text(names[0].value) if names else "",
        serial_number=f"{cert.serial_number:x}",
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        issuer=cert.issuer.rfc4514_string())


class Token:
    """Blocking calls on the PKCS#11 module at ``module_path``; use through ``TokenWorker``."""

    def __init__(self, module_path: str) -> None:
        try:
            self.lib = pkcs11.lib(module_path)
        except RuntimeError as error:
            raise TokenError("no_module", f"无法加载 PKCS#11 驱动 {module_path}：{error}") from None

    def _find(self, serial: str | None) -> pkcs11.Token:
        self.lib.reinitialize()
        tokens = list(self.lib.get_tokens())
        if serial is not None:
            tokens = [t for t in tokens if _text(t.serial) == serial]
        tokens = [t for t in tokens if t.flags & TokenFlag.TOKEN_INITIALIZED]
        if not tokens:
            wanted = f"序列号为 {serial} 的" if serial else ""
            raise TokenError("token_not_found", f"没有找到{wanted}UKEY，请确认已插好。")
        if len(tokens) > 1:
            raise TokenError("several_tokens", "插着多个 UKEY，请只保留要解锁的那一个。")
        return tokens[0]

    def info(self, serial: str | None = None) -> TokenInfo:
        token = self._find(serial)
        certificates = []
        with token.open() as session:  # certificates are public objects: no login
            for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
                try:
                    certificates.append(_certificate(obj[Attribute.VALUE]))
                except ValueError:
                    continue  # not X.509; nothing to show
        return TokenInfo(serial=_text(token.serial), label=_text(token.label),
                         manufacturer=_text(token.manufacturer_id), model=_text(token.model),
                         pin=PinState.from_flags(token.flags), certificates=certificates)

    def reset_pin(self, serial: str, so_pin: str, new_pin: str) -> TokenInfo:
        """SO login, C_InitPIN, then prove the new PIN with a user login."""
        token = self._find(serial)
        try:
            with token.open(rw=True, so_pin=so_pin) as session:
                session.init_pin(new_pin)
        except pk.PinIncorrect:
            raise TokenError("so_pin_incorrect",
                             "管理员 PIN（SO PIN）不正确，UKEY 未改动。") from None
        except pk.PinLocked:
            raise TokenError("so_pin_locked", "管理员 PIN 已锁定，请联系 CA 机构。") from None
        except (pk.PinLenRange, pk.PinInvalid):
            raise TokenError("new_pin_invalid", "新 PIN 的长度或字符不符合 UKEY 的要求。") from None
        token = self._find(serial)  # read again: the flags changed
        try:
            with token.open(user_pin=new_pin):
                pass
        except pk.PKCS11Error as error:
            raise TokenError("verify_failed", f"新 PIN 设置后验证失败：{error}") from None
        return self.info(serial)

    def personalise(self, serial: str, factory_so_pin: str, so_pin: str, user_pin: str,
                    common_name: str) -> tuple[TokenInfo, bytes]:
        """A blank UKEY becomes the company's: the SO PIN moves from the vendor's default to its
        own, the user PIN is set, an RSA key pair is made on the token (never extractable) and a
        certificate request is signed with it. Returns the token and the request (DER)."""
        token = self._find(serial)
        with token.open() as session:
            if any(True for _ in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})):
                raise TokenError("not_blank", "这个 UKEY 已有证书，不是空白 UKEY，未做任何改动。")
        try:
            with token.open(rw=True, so_pin=factory_so_pin) as session:
                session.set_pin(factory_so_pin, so_pin)
                session.init_pin(user_pin)
        except pk.PinIncorrect:
            raise TokenError("so_pin_incorrect", "空白 UKEY 的出厂管理员 PIN 不对"
                             "（agent.toml 的 factory_so_pin），未做任何改动。") from None
        except pk.PinLocked:
            raise TokenError("so_pin_locked", "管理员 PIN 已锁定，请换一个 UKEY。") from None
        token = self._find(serial)
        with token.open(rw=True, user_pin=user_pin) as session:
            if any(True for _ in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
                raise TokenError("not_blank", "这个 UKEY 里已有密钥，不是空白 UKEY。")
            public, private = session.generate_keypair(
                KeyType.RSA, KEY_BITS, id=secrets.token_bytes(8), label=KEY_LABEL, store=True,
                private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                                  Attribute.PRIVATE: True})
            csr = build_csr(public, private, common_name)
        return self.info(serial), csr

    def request(self, serial: str, user_pin: str, common_name: str) -> tuple[TokenInfo, bytes]:
        """A certificate request signed by the key already on the token (renewal keeps it)."""
        token = self._find(serial)
        try:
            with token.open(user_pin=user_pin) as session:
                private = session.get_key(ObjectClass.PRIVATE_KEY, KeyType.RSA, label=KEY_LABEL)
                public = session.get_key(ObjectClass.PUBLIC_KEY, KeyType.RSA, id=private.id)
                csr = build_csr(public, private, common_name)
        except pk.PinIncorrect:
            raise TokenError("pin_incorrect", "UKEY 密码不正确，未做任何改动。") from None
        except pk.PinLocked:
            raise TokenError("pin_locked", "UKEY 密码已锁定，请先申请「解锁」。") from None
        except (pk.NoSuchKey, pk.MultipleObjectsReturned):
            raise TokenError("no_key", "UKEY 里没有找到唯一的证书密钥，请联系技术人员。") from None
        return self.info(serial), csr

    def write_certificate(self, serial: str, der: bytes) -> TokenInfo:
        """Put a certificate next to its key, replacing the certificates it supersedes.

        Certificates are public objects: a read-write public session may write them, so no PIN
        is asked. The certificate must be for the key on this token."""
        cert = x509.load_der_x509_certificate(der)
        token = self._find(serial)
        with token.open(rw=True) as session:
            key = _public_key_for(session, cert)
            if key is None:
                raise TokenError("key_mismatch", "证书与 UKEY 里的密钥不匹配，未写入。")
            for old in list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                                 Attribute.ID: key.id})):
                old.destroy()
            session.create_object({
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                Attribute.TOKEN: True, Attribute.PRIVATE: False, Attribute.ID: key.id,
                Attribute.LABEL: KEY_LABEL, Attribute.VALUE: der,
                Attribute.SUBJECT: cert.subject.public_bytes(),
                Attribute.ISSUER: cert.issuer.public_bytes(),
                Attribute.SERIAL_NUMBER: _der_integer(cert.serial_number)})
        return self.info(serial)


def _public_key_for(session: pkcs11.Session, cert: x509.Certificate) -> Any:
    wanted = cert.public_key().public_numbers()  # type: ignore[union-attr]
    for key in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                                    Attribute.KEY_TYPE: KeyType.RSA}):
        if (int.from_bytes(key[Attribute.MODULUS], "big") == getattr(wanted, "n", None)
                and int.from_bytes(key[Attribute.PUBLIC_EXPONENT], "big") == wanted.e):
            return key
    return None


def _der_integer(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return bytes([0x02, len(body)]) + body


class TokenWorker:
    """Every token call in one worker thread, awaited from asyncio."""

    def __init__(self, module_path: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pkcs11")
        self._token: Token | None = None
        self.module_path = module_path

    def _load(self) -> Token:
        if self._token is None:
            self._token = Token(self.module_path)
        return self._token

    async def info(self, serial: str | None = None) -> TokenInfo:
        return await self._call(lambda: self._load().info(serial))

    async def reset_pin(self, serial: str, so_pin: str, new_pin: str) -> TokenInfo:
        return await self._call(lambda: self._load().reset_pin(serial, so_pin, new_pin))

    async def personalise(self, serial: str, factory_so_pin: str, so_pin: str, user_pin: str,
                          common_name: str) -> tuple[TokenInfo, bytes]:
        return await self._call(lambda: self._load().personalise(
            serial, factory_so_pin, so_pin, user_pin, common_name))

    async def request(self, serial: str, user_pin: str,
                      common_name: str) -> tuple[TokenInfo, bytes]:
        return await self._call(lambda: self._load().request(serial, user_pin, common_name))

    async def write_certificate(self, serial: str, der: bytes) -> TokenInfo:
        return await self._call(lambda: self._load().write_certificate(serial, der))

    async def _call(self, work: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
