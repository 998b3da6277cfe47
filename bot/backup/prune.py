"""``cadesk backup --keep N``: the newest N backups kept, older archives deleted, and the objects
no kept archive names deleted with them, so a scan purged from the bot (retention) leaves the
backups too once the last archive that held it is gone."""

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from bot.backup.layout import ARCHIVE_GLOB, MANIFEST, OBJECTS


@dataclass
class Pruned:
    archives: int
    objects: int
    unreadable: list[Path]  # archives whose manifest could not be read: nothing deleted for them


def prune(backup_dir: Path, keep: int) -> Pruned:
    if keep < 1:
        raise ValueError("keep at least one backup")
    dated: list[tuple[str, Path, set[str]]] = []
    unreadable: list[Path] = []
    for archive in backup_dir.glob(ARCHIVE_GLOB):
        try:
            with tarfile.open(archive) as tar:
                member = tar.extractfile(MANIFEST)
                manifest = json.loads(member.read()) if member else None
        except (OSError, tarfile.TarError, KeyError, ValueError):
            manifest = None
        if manifest is None:
            unreadable.append(archive)
            continue
        named = {entry["sha256"] for entry in manifest["files"]}
        dated.append((manifest["created_at"], archive, named))
    dated.sort(key=lambda item: (item[0], item[1].name))
    old, kept = dated[:-keep], dated[-keep:]
    for _, archive, _ in old:
        archive.unlink()
    if unreadable:  # their objects are unknown: keep every object rather than guess
        return Pruned(len(old), 0, unreadable)
    named = set().union(*(hashes for _, _, hashes in kept))
    removed = 0
    for path in (backup_dir / OBJECTS).glob("*/*"):
        if path.is_file() and path.name not in named:
            path.unlink()
            removed += 1
    return Pruned(len(old), removed, [])
