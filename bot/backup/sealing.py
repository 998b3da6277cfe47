"""The backup's secrets (CA key, SO master secret, the bot's signing key) sealed with a
passphrase: scrypt derives the key, AES-256-GCM seals each secret, and an HMAC under a key
derived from the same passphrase seals the manifest, so a wrong passphrase or an edited manifest
is refused before anything is written."""

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

PASSPHRASE_ENV = "CADESK_BACKUP_PASSPHRASE"
# scrypt's recommended interactive cost (~64 MiB, ~0.2 s): a guessed passphrase costs as much
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**16, 8, 1
NONCE_BYTES = 12


class SealError(Exception):
    """The passphrase is wrong, or what it sealed was changed."""


def passphrase_from_environment() -> str | None:
    value = os.environ.get(PASSPHRASE_ENV, "")
    return value or None


@dataclass(frozen=True)
class Seal:
    """The keys one passphrase gives for one backup (its salt)."""

    secrets_key: bytes
    manifest_key: bytes
    kdf: dict[str, Any]  # what the manifest records to derive them again

    @classmethod
    def new(cls, passphrase: str) -> "Seal":
        params = {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
                  "salt": base64.b64encode(os.urandom(16)).decode(),
                  "cipher": "AES-256-GCM", "manifest_mac": "HMAC-SHA256"}
        return cls.derive(passphrase, params)

    @classmethod
    def derive(cls, passphrase: str, kdf: dict[str, Any]) -> "Seal":
        if kdf.get("name") != "scrypt" or kdf.get("cipher") != "AES-256-GCM":
            raise SealError(f"unknown key derivation {kdf.get('name')}/{kdf.get('cipher')}")
        derived = Scrypt(salt=base64.b64decode(kdf["salt"]), length=64, n=int(kdf["n"]),
                         r=int(kdf["r"]), p=int(kdf["p"])).derive(passphrase.encode())
        return cls(derived[:32], derived[32:], dict(kdf))

    def seal(self, name: str, secret: bytes) -> bytes:
        """nonce + AES-GCM(secret), bound to its name: a blob moved to another name fails."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.secrets_key).encrypt(nonce, secret, name.encode())

    def open(self, name: str, sealed: bytes) -> bytes:
        try:
            return AESGCM(self.secrets_key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                                    name.encode())
        except InvalidTag:
            raise SealError(f"the secret {name} does not open with this passphrase") from None

    def mac(self, manifest: dict[str, Any]) -> str:
        return hmac.new(self.manifest_key, canonical(manifest), hashlib.sha256).hexdigest()

    def check(self, manifest: dict[str, Any], mac: str) -> None:
        if not hmac.compare_digest(self.mac(manifest), mac):
            raise SealError("the passphrase is wrong, or the manifest was changed")


def canonical(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode()
