"""``cadesk backup``: one consistent snapshot of a data directory, taken while the bot runs.

The database is copied first; every scan an order in that copy names was on disk before the
order was committed (the scan store writes first), so the files walked after it hold them all.
A scan deleted between the two (a purge, an abandoned draft) is caught by checking every scan
the copy names against the files taken, and the whole snapshot is taken again.
"""

import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.backup.database import MEMBER, engine_of, referenced_scans, snapshot
from bot.backup.layout import (
    FORMAT,
    MANIFEST,
    locked,
    object_path,
    sha256_hex,
    sha256_of,
    write_new,
)
from bot.backup.prune import Pruned, prune
from bot.backup.sealing import PASSPHRASE_ENV, Seal
from bot.backup.secret_files import DESCRIPTIONS, secret_places
from bot.config import Settings
from storage.db import sqlite_file

ATTEMPTS = 3


class BackupError(Exception):
    pass


@dataclass
class BackupResult:
    archive: Path
    files: int
    objects_written: int
    secrets: list[str] = field(default_factory=list)  # sealed into the archive
    left_out: list[str] = field(default_factory=list)  # sentences for the operator
    pruned: Pruned | None = None


def back_up(settings: Settings, backup_dir: Path, passphrase: str | None,
            now: datetime | None = None, keep: int | None = None) -> BackupResult:
    """A backup into ``backup_dir``; with ``keep``, then only the newest ``keep`` backups left
    there (bot/backup/prune.py)."""
    with locked(backup_dir):
        result = _back_up(settings, backup_dir, passphrase, now)
        if keep is not None:
            result.pruned = prune(backup_dir, keep)
    return result


def _back_up(settings: Settings, backup_dir: Path, passphrase: str | None,
             now: datetime | None) -> BackupResult:
    data_dir = settings.data_dir
    if not data_dir.is_dir():
        raise BackupError(f"no data directory at {data_dir}: nothing to back up")
    engine = engine_of(settings.database_url)
    places = secret_places(settings)
    secrets = {name: path for name, path in places.paths.items()
               if path is not None and path.is_file()}
    skipped = _not_plain_files(settings, backup_dir, secrets.values())
    with tempfile.TemporaryDirectory(dir=backup_dir, prefix=".taking-") as work:
        dump = Path(work) / "database"
        written = 0
        for _ in range(ATTEMPTS):
            snapshot(settings.database_url, dump)
            files, new = _store_files(data_dir, backup_dir, skipped)
            written += new
            missing = referenced_scans(engine, dump) - {entry["sha256"] for entry in files}
            if not missing:
                break
        else:
            raise BackupError(
                f"{len(missing)} scans named by orders are not in {data_dir / 'scans'} (one: "
                f"{min(missing)}): missing from the data directory, or deleted every time the "
                "backup looked. No backup written: it would not restore whole.")
        left_out = list(places.elsewhere)
        sealed: dict[str, bytes] = {}
        seal = Seal.new(passphrase) if passphrase and secrets else None
        if seal is not None:
            sealed = {name: seal.seal(name, path.read_bytes()) for name, path in secrets.items()}
        elif secrets:
            left_out.insert(0, "LEFT OUT of this backup (未备份): " + ", ".join(
                DESCRIPTIONS[name] for name in secrets) + f": {PASSPHRASE_ENV} is not set "
                f"(没有设置备份口令). Set it to include them, encrypted.")
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "created_at": (now or datetime.now(UTC)).isoformat(),
            "database": {"engine": engine, "member": MEMBER[engine],
                         "sha256": sha256_of(dump), "size": dump.stat().st_size},
            "files": files,
            "secrets": [{"name": name, "member": f"secrets/{name}.sealed",
                         "sha256": sha256_hex(blob)} for name, blob in sealed.items()],
            "kdf": seal.kdf if seal else None,
            "left_out": left_out,
        }
        if seal is not None:
            manifest["mac"] = seal.mac(manifest)
        archive = _write_archive(backup_dir, manifest, dump, sealed, now)
    return BackupResult(archive, len(files), written, list(sealed), left_out)


def _not_plain_files(settings: Settings, backup_dir: Path,
                     secrets: Iterable[Path]) -> set[Path]:
    """What the walk of the data directory leaves out: the live database (its snapshot goes in
    instead), the secrets (sealed, or not at all) and the backup directory itself."""
    skipped = {path.resolve() for path in secrets} | {backup_dir.resolve()}
    if (database := sqlite_file(settings.database_url)) is not None:
        skipped |= {database.with_name(database.name + suffix).resolve()
                    for suffix in ("", "-wal", "-shm", "-journal")}
    return skipped


def _store_files(data_dir: Path, backup_dir: Path,
                 skipped: set[Path]) -> tuple[list[dict[str, Any]], int]:
    """Every regular file of the data directory into the object store by hash; its entries,
    and how many objects were new."""
    entries: list[dict[str, Any]] = []
    written = 0
    for directory, subdirectories, names in os.walk(data_dir):
        here = Path(directory)
        subdirectories[:] = sorted(d for d in subdirectories
                                   if (here / d).resolve() not in skipped)
        for name in sorted(names):
            path = here / name
            # dot files are the stores' half-written temporaries; others are not ours to keep
            if name.startswith(".") or path.resolve() in skipped or not path.is_file():
                continue
            try:
                data = path.read_bytes()  # one read: the hash and the copy agree
                mode = path.stat().st_mode & 0o777
            except FileNotFoundError:  # removed while we walked: not in this snapshot
                continue
            digest = sha256_hex(data)
            written += write_new(object_path(backup_dir, digest), data)
            entries.append({"path": path.relative_to(data_dir).as_posix(), "sha256": digest,
                            "size": len(data), "mode": mode})
    return entries, written


def _write_archive(backup_dir: Path, manifest: dict[str, Any], dump: Path,
                   sealed: dict[str, bytes], now: datetime | None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    fd, temporary = tempfile.mkstemp(dir=backup_dir, prefix=".archive-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as file:
            with tarfile.open(fileobj=file, mode="w") as tar:
                _add(tar, MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1).encode())
                with dump.open("rb") as database:
                    tar.addfile(_info(manifest["database"]["member"], dump.stat().st_size),
                                database)
                for name, blob in sealed.items():
                    _add(tar, f"secrets/{name}.sealed", blob)
            file.flush()
            os.fsync(file.fileno())
        for n in range(1000):  # two backups in one second each get their own name
            archive = backup_dir / f"cadesk-backup-{stamp}{f'-{n}' if n else ''}.tar"
            try:
                os.link(temporary, archive)
                return archive
            except FileExistsError:
                continue
        raise BackupError(f"no free archive name in {backup_dir}")
    finally:
        os.unlink(temporary)


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    return info


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))
