"""Scans on disk, content-addressed: DATA_DIR/scans/ab/abcdef… (SHA-256 of the bytes)."""

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


class ScanStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256

    def save(self, sha256: str, data: bytes) -> Path:
        """Write once, atomically (a crash leaves no half file) and durably, readable by the
        owner only."""
        target, directories = self._write(sha256, data)
        # the rename survives a power cut too: the row naming the scan is committed after it
        self.sync_directories(directories)
        return target

    def write(self, sha256: str, data: bytes) -> list[Path]:
        """``save`` without its directory sync, for a batch: the file is written and synced;
        returns the directories whose new entries ``sync_directories`` must make durable
        before anything naming the scan is committed."""
        return self._write(sha256, data)[1]

    def sync_directories(self, directories: Iterable[Path]) -> None:
        """One fsync per directory however many scans went into it; a new shard's own entry
        (in the root) after what it holds."""
        for directory in sorted(set(directories), key=lambda d: len(d.parts), reverse=True):
            _fsync_directory(directory)

    def _write(self, sha256: str, data: bytes) -> tuple[Path, list[Path]]:
        """The file, synced; returns it and the directories whose entries still need a sync."""
        target = self.path(sha256)
        if target.exists():
            return target, []
        directories = [target.parent]
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            directories.append(self.root)  # the new shard's name must survive a power cut too
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target, directories

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def discard(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
