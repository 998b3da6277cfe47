"""The secrets a backup holds only sealed with the passphrase, and where each lives: the CA key
(signs every certificate and CRL), the SO master secret (every UKEY's SO PIN derives from it)
and the bot's signing key (paired agents trust what it signs)."""

import os
from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings
from bot.pki.store import KEY_NAME
from bot.services.agents.registry import BOT_KEY_NAME

CA_KEY, SO_MASTER, BOT_KEY = "ca_key", "so_master", "bot_signing_key"
DESCRIPTIONS = {CA_KEY: "the CA key (CA 私钥)", SO_MASTER: "the SO master secret (SO 主密钥)",
                BOT_KEY: "the bot's signing key (机器人签名密钥)"}


@dataclass(frozen=True)
class SecretPlaces:
    """Where each secret is on this machine (None: it has no file here), and what a backup
    cannot hold, said in a sentence each."""

    paths: dict[str, Path | None]
    elsewhere: list[str]


def secret_places(settings: Settings) -> SecretPlaces:
    pki, agents = settings.pki, settings.agents
    elsewhere: list[str] = []
    ca_key: Path | None = pki.ca_key_file or settings.data_dir / "pki" / KEY_NAME
    if pki.ca_token_module:
        ca_key = None
        elsewhere.append(f"the CA key stays on its PKCS#11 token ({pki.ca_token_label}): "
                         "not in the backup")
    if pki.ca_cert_file is not None and not _inside(pki.ca_cert_file, settings.data_dir):
        elsewhere.append(f"[pki] ca_cert_file {pki.ca_cert_file} is outside the data "
                         "directory: keep your own copy")
    if agents.enabled and agents.so_master_file is None:
        elsewhere.append("the SO master secret comes from CADESK_SO_MASTER: not in the backup, "
                         "keep it as safely as the backup passphrase")
    elif agents.enabled and os.environ.get("CADESK_SO_MASTER"):
        elsewhere.append("CADESK_SO_MASTER is set and wins over [agents] so_master_file: the "
                         "backup holds the file, keep the variable's value too")
    return SecretPlaces({CA_KEY: ca_key, SO_MASTER: agents.so_master_file,
                         BOT_KEY: settings.data_dir / BOT_KEY_NAME}, elsewhere)


def _inside(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())
