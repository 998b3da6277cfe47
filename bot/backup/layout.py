"""Where a backup lives: ``DIR/objects/ab/abcdef…`` holds every file of the data directory by
the SHA-256 of its bytes, written once and shared by all the backups in DIR; each backup is one
tar ``DIR/cadesk-backup-YYYYmmddTHHMMSSZ.tar`` holding ``manifest.json`` (every file's path,
hash, size and mode; the database's hash; the sealed secrets' hashes and the key derivation),
the database snapshot and the sealed secrets. A repeated backup writes only the objects that
are new, plus its tar."""

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

FORMAT = "cadesk-backup/1"
ARCHIVE_GLOB = "cadesk-backup-*.tar"
LOCK = ".lock"
MANIFEST = "manifest.json"
OBJECTS = "objects"
CHUNK = 1 << 20


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def object_path(backup_dir: Path, sha256: str) -> Path:
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return backup_dir / OBJECTS / sha256[:2] / sha256


@contextlib.contextmanager
def locked(backup_dir: Path) -> Iterator[None]:
    """One backup at a time into a directory: a second one could otherwise count on an object
    a concurrent prune is deleting."""
    backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (backup_dir / LOCK).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupBusy(f"another backup is writing into {backup_dir}") from None
        yield  # the lock goes with the file's closing


class BackupBusy(Exception):
    pass


def objects_of(archive: Path) -> Path:
    """The object directory a backup archive's files are in: beside the archive."""
    return archive.resolve().parent


def write_new(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Write ``data`` to ``path`` once, atomically and durably; False when it was there."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return True
