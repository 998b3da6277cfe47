"""``cadesk restore``: a backup back into an empty data directory.

Everything is checked before anything is kept: the manifest's seal and the secrets open with
the passphrase before a byte is written; the files are copied into a staging directory inside
the (empty) data directory, each hash checked on the way, and moved up into it only when every
one matched. Staging inside needs no write access to the data directory's parent (/var/lib),
which the service user does not have.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from bot.backup import database
from bot.backup.layout import (
    CHUNK,
    FORMAT,
    MANIFEST,
    object_path,
    objects_of,
    sha256_hex,
    write_new,
)
from bot.backup.sealing import PASSPHRASE_ENV, Seal, SealError
from bot.backup.secret_files import DESCRIPTIONS, secret_places
from bot.config import Settings
from storage.db import sqlite_file


class RestoreRefused(Exception):
    """Nothing was written; ``str`` says why and what to do."""


@dataclass
class RestoreResult:
    data_dir: Path
    files: int
    secrets: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def restore(archive: Path, settings: Settings, passphrase: str | None,
                  without_secrets: bool = False) -> RestoreResult:
    """``without_secrets``: the passphrase is lost; everything else is restored, the sealed
    secrets are not (a new CA and SO master secret are then needed)."""
    try:
        return await _restore(archive, settings, passphrase, without_secrets)
    except (KeyError, TypeError, AttributeError) as error:  # a manifest missing what it must say
        raise RestoreRefused(f"the backup's manifest is damaged or incomplete ({error!r}): "
                             "the archive was changed or damaged; nothing was restored "
                             "(备份已损坏或被改动)") from None


async def _restore(archive: Path, settings: Settings, passphrase: str | None,
                   without_secrets: bool) -> RestoreResult:
    with _opened(archive) as tar:
        manifest = _manifest(tar)
        target = await _checked_target(settings, manifest)
        notes: list[str] = []
        if without_secrets:
            secrets = {}
            notes += [f"{DESCRIPTIONS[entry['name']]} NOT restored (without secrets)"
                      for entry in manifest.get("secrets") or []]
        else:
            secrets = _opened_secrets(tar, manifest, passphrase)
        places = secret_places(settings).paths
        outside: dict[Path, bytes] = {}  # secrets whose place is outside the data directory
        inside: dict[str, bytes] = {}
        for name, secret in secrets.items():
            place = places.get(name)
            if place is None:
                notes.append(f"{DESCRIPTIONS[name]} is in the backup but has no place in this "
                             "configuration: not written")
            elif place.resolve().is_relative_to(settings.data_dir.resolve()):
                inside[place.resolve().relative_to(settings.data_dir.resolve()).as_posix()] = secret
            elif place.exists() and place.read_bytes() != secret:
                raise RestoreRefused(f"{place} exists and differs from {DESCRIPTIONS[name]} in "
                                     "the backup: move it away first")
            elif not place.exists() and not _writable(place.parent):
                raise RestoreRefused(f"{DESCRIPTIONS[name]} goes to {place}, which this user "
                                     "cannot write: make its directory writable first")
            else:
                outside[place] = secret
        return _put_in_place(tar, manifest, settings, target, inside, outside, archive, notes)


@contextlib.contextmanager
def _opened(archive: Path) -> Iterator[tarfile.TarFile]:
    try:
        tar = tarfile.open(archive)  # noqa: SIM115 (closed below; its errors said first)
    except (OSError, tarfile.TarError) as error:
        raise RestoreRefused(f"{archive} is not a readable backup archive ({error})") from None
    with tar:
        yield tar


def _manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    try:
        manifest = json.loads(_member(tar, MANIFEST).read())
    except (KeyError, ValueError):
        raise RestoreRefused("the archive has no readable manifest.json: not a cadesk "
                             "backup") from None
    if manifest.get("format") != FORMAT:
        raise RestoreRefused(f"unknown backup format {manifest.get('format')!r}")
    return manifest


async def _checked_target(settings: Settings, manifest: dict[str, Any]) -> Path | None:
    """Refuse anything but an empty place; the SQLite file's path when it lies outside the data
    directory (None otherwise)."""
    data_dir = settings.data_dir
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise RestoreRefused(f"the data directory {data_dir} is not empty: restore only into an "
                             "empty or new directory (数据目录不是空的，拒绝覆盖)")
    engine = manifest["database"]["engine"]
    url = settings.database_url
    if database.engine_of(url) != engine:
        raise RestoreRefused(f"the backup holds a {engine} database but the configuration "
                             f"names a {database.engine_of(url)} one: configure a {engine} "
                             "database to restore into")
    if engine == database.POSTGRESQL:
        if not await database.is_empty(url):
            raise RestoreRefused("the configured PostgreSQL database has tables: restore only "
                                 "into a new, empty database (createdb)")
        return None
    path = sqlite_file(url)
    assert path is not None
    if path.resolve().is_relative_to(data_dir.resolve()):
        return None
    if path.exists():
        raise RestoreRefused(f"the database file {path} exists: restore only into a new one")
    return path


def _opened_secrets(tar: tarfile.TarFile, manifest: dict[str, Any],
                    passphrase: str | None) -> dict[str, bytes]:
    sealed = manifest.get("secrets") or []
    if not sealed:
        return {}
    if not passphrase:
        raise RestoreRefused(f"the backup holds encrypted secrets: set {PASSPHRASE_ENV} to the "
                             "passphrase it was made with (备份含加密的密钥，请提供备份口令); "
                             "passphrase lost: --without-secrets")
    try:
        seal = Seal.derive(passphrase, manifest["kdf"])
        body = {k: v for k, v in manifest.items() if k != "mac"}
        seal.check(body, manifest.get("mac", ""))
        opened = {}
        for entry in sealed:
            blob = _member(tar, entry["member"]).read()
            if sha256_hex(blob) != entry["sha256"]:
                raise RestoreRefused(f"{entry['member']} does not match its hash: the archive "
                                     "was changed or damaged")
            opened[entry["name"]] = seal.open(entry["name"], blob)
        return opened
    except SealError as error:
        raise RestoreRefused(f"wrong passphrase, or the archive was changed: {error} "
                             "(备份口令错误或备份被改动)") from None


def _put_in_place(tar: tarfile.TarFile, manifest: dict[str, Any], settings: Settings,
                  sqlite_outside: Path | None, inside: dict[str, bytes],
                  outside: dict[Path, bytes], archive: Path, notes: list[str]) -> RestoreResult:
    data_dir = settings.data_dir
    made = not data_dir.exists()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(dir=data_dir, prefix=".restoring-"))
    try:
        objects = objects_of(archive)
        for entry in manifest["files"]:
            relative = _safe(entry["path"])
            with _open_object(objects, entry["sha256"]) as source:
                _copy_checked(source, staging / relative, entry["sha256"], entry["mode"] & 0o700,
                              entry["path"])
        db = manifest["database"]
        dump = staging / ".database"
        _copy_checked(_member(tar, db["member"]), dump, db["sha256"], 0o600, db["member"])
        if db["engine"] == database.POSTGRESQL:
            database.restore(settings.database_url, dump)
            dump.unlink()
        else:
            path = sqlite_file(settings.database_url)
            assert path is not None
            if sqlite_outside is None:
                place = staging / path.resolve().relative_to(data_dir.resolve())
                place.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                dump.rename(place)
        for relative, secret in inside.items():
            write_new(staging / _safe(relative), secret)
        if sqlite_outside is not None:
            sqlite_outside.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(dump, sqlite_outside)
        for entry in staging.iterdir():
            entry.rename(data_dir / entry.name)
        staging.rmdir()
        os.chmod(data_dir, 0o700)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if made:
            shutil.rmtree(data_dir, ignore_errors=True)
        raise
    for place, secret in outside.items():
        if not place.exists():
            write_new(place, secret)
    return RestoreResult(data_dir, len(manifest["files"]), list(inside) + [
        str(p) for p in outside], notes + list(manifest.get("left_out", [])))


def _writable(directory: Path) -> bool:
    while not directory.exists():  # made on the way
        directory = directory.parent
    return os.access(directory, os.W_OK)


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    file = tar.extractfile(name)
    if file is None:
        raise KeyError(name)
    return file


@contextlib.contextmanager
def _open_object(objects: Path, sha256: str) -> Iterator[IO[bytes]]:
    try:
        with object_path(objects, sha256).open("rb") as file:
            yield file
    except FileNotFoundError:
        raise RestoreRefused(f"object {sha256} is missing from {objects}/objects: keep the "
                             "objects directory beside the archive") from None


def _copy_checked(source: IO[bytes], target: Path, sha256: str, mode: int, name: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256()
    with target.open("xb") as out:
        os.fchmod(out.fileno(), mode | 0o600)
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256:
        raise RestoreRefused(f"{name} does not match its hash in the manifest: the backup was "
                             "changed or damaged; nothing was restored (备份已损坏或被改动)")


def _safe(path: str) -> Path:
    """A manifest path that stays inside the data directory."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise RestoreRefused(f"the manifest names {path!r}, outside the data directory: refused")
    return Path(*pure.parts)
