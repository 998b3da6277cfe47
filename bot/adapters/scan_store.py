"""Scans on disk, content-addressed: DATA_DIR/scans/ab/abcdef… (SHA-256 of the bytes)."""

import os
import tempfile
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
        target = self.path(sha256)
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
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
        _fsync_directory(target.parent)  # the rename survives a power cut too: the order row
        return target  # that names this scan is committed only after it

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
