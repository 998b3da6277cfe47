"""SoftHSM2 tokens for the tests: a real PKCS#11 token in software, in a temporary directory,
checked independently with OpenSC's pkcs11-tool."""

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SO_PIN, USER_PIN = "87654321", "123456"


@dataclass
class SoftToken:
    label: str
    serial: str
    module: str = MODULE

    def login_works(self, pin: str) -> bool:
        """Does OpenSC log in to this token with ``pin``? (Independent of python-pkcs11.)"""
        result = subprocess.run(["pkcs11-tool", "--module", self.module, "--token-label",
                                 self.label, "--login", "--pin", pin, "--list-objects"],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0 and "CKR_PIN_INCORRECT" not in result.stderr:
            raise RuntimeError(f"pkcs11-tool failed: {result.stderr}")
        return result.returncode == 0

    def set_so_pin(self, old: str, new: str) -> None:
        subprocess.run(["pkcs11-tool", "--module", self.module, "--token-label", self.label,
                        "--login", "--login-type", "so", "--so-pin", old, "--change-pin",
                        "--new-pin", new], check=True, capture_output=True)

    def write_certificate(self, der: bytes, pin: str = USER_PIN) -> None:
        with tempfile.NamedTemporaryFile(suffix=".der") as file:
            file.write(der)
            file.flush()
            subprocess.run(["pkcs11-tool", "--module", self.module, "--token-label", self.label,
                            "--login", "--pin", pin, "--write-object", file.name,
                            "--type", "cert", "--id", "01", "--label", "cert"],
                           check=True, capture_output=True)


@contextmanager
def softhsm() -> Iterator[Path]:
    """A fresh token directory, with SOFTHSM2_CONF pointing at it for this process."""
    if not os.path.exists(MODULE):
        raise RuntimeError("SoftHSM2 is not installed: run scripts/test (installs it as root)")
    with tempfile.TemporaryDirectory(prefix="cadesk-softhsm-") as root:
        (Path(root) / "tokens").mkdir()
        config = Path(root) / "softhsm2.conf"
        config.write_text(f"directories.tokendir = {root}/tokens\nobjectstore.backend = file\n"
                          "log.level = ERROR\n", encoding="utf-8")
        before = os.environ.get("SOFTHSM2_CONF")
        os.environ["SOFTHSM2_CONF"] = str(config)
        try:
            yield config
        finally:
            if before is None:
                os.environ.pop("SOFTHSM2_CONF", None)
            else:
                os.environ["SOFTHSM2_CONF"] = before


@contextmanager
def unplugged(config: Path) -> Iterator[None]:
    """Every token of ``softhsm()``'s directory pulled out until the block ends: SoftHSM2 rescans
    its token directory, so a job meanwhile fails as on a PC whose UKEY was taken out."""
    tokens, away = config.parent / "tokens", config.parent / "unplugged"
    away.mkdir(exist_ok=True)
    for token in list(tokens.iterdir()):
        token.rename(away / token.name)
    try:
        yield
    finally:
        for token in list(away.iterdir()):
            token.rename(tokens / token.name)


def new_token(label: str, so_pin: str = SO_PIN, pin: str = USER_PIN) -> SoftToken:
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label,
                    "--so-pin", so_pin, "--pin", pin], check=True, capture_output=True)
    return SoftToken(label, _serial_of(label))


def _serial_of(label: str) -> str:
    result = subprocess.run(["pkcs11-tool", "--module", MODULE, "--list-token-slots"],
                            capture_output=True, text=True, check=True).stdout
    blocks = result.split("Slot ")
    for block in blocks:
        if f"token label        : {label}" in block or f"token label   : {label}" in block:
            for line in block.splitlines():
                if "serial num" in line:
                    return line.split(":", 1)[1].strip()
    raise RuntimeError(f"token {label} not listed:\n{result}")


def opensc_objects(token: SoftToken, pin: str) -> str:
    """What OpenSC's pkcs11-tool lists on the token, logged in: an independent reading."""
    return subprocess.run(["pkcs11-tool", "--module", MODULE, "--token-label", token.label,
                           "--login", "--pin", pin, "--list-objects"],
                          capture_output=True, text=True, check=True).stdout
