"""The SO PIN of each UKEY, derived from one master secret and the token's serial; and the
initial user PIN of a UKEY made for an order.

No PIN is stored anywhere: HMAC-SHA256(master, serial) gives it again when a job needs it.
The master secret comes from the environment or a key file, never from bot.toml.
"""

import hashlib
import hmac
import os
from pathlib import Path

DIGITS = 12


def so_pin_for(master: bytes, token_serial: str) -> str:
    digest = hmac.new(master, b"cadesk-so-pin:" + token_serial.encode(), hashlib.sha256).digest()
    return str(int.from_bytes(digest, "big") % 10**DIGITS).zfill(DIGITS)


def initial_user_pin(master: bytes, token_serial: str, order_id: int) -> str:
    """The user PIN a new UKEY is handed over with (8 digits); the applicant changes it."""
    digest = hmac.new(master, f"cadesk-initial-pin:{token_serial}:{order_id}".encode(),
                      hashlib.sha256).digest()
    return str(int.from_bytes(digest, "big") % 10**8).zfill(8)


def load_master(key_file: Path | None = None) -> bytes:
    """``CADESK_SO_MASTER`` (hex) or a key file of at least 32 random bytes."""
    if value := os.environ.get("CADESK_SO_MASTER"):
        master = bytes.fromhex(value)
    elif key_file is not None:
        master = key_file.read_bytes()
    else:
        raise RuntimeError("no SO PIN master secret: set CADESK_SO_MASTER or a key file")
    if len(master) < 32:
        raise RuntimeError("the SO PIN master secret must be at least 32 bytes")
    return master
