"""The UKEY over PKCS#11 (python-pkcs11): read what it holds, reset its user PIN.

Token calls block, and PKCS#11 wants them from one place: ``TokenWorker`` runs every call in a
single worker thread. Each call rescans the slots first (``reinitialize``): a UKEY plugged in
after the agent started must be found, and a ``Token`` object keeps the flags it was read with.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import pkcs11
from cryptography import x509
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, ObjectClass, TokenFlag
from pkcs11 import exceptions as pk


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

    async def _call(self, work: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
