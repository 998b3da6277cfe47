"""The scan store's durability in a batch: every file synced, each directory once."""

import hashlib
import os
from pathlib import Path

import pytest

from bot.adapters import scan_store
from bot.adapters.scan_store import ScanStore


def scan(n: int) -> tuple[str, bytes]:
    data = f"scan {n}".encode()
    return hashlib.sha256(data).hexdigest(), data


def test_a_batch_syncs_each_new_entry_s_directory_once_and_a_new_shard_in_the_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, synced, files = ScanStore(tmp_path / "scans"), [], []
    real_fsync = os.fsync
    monkeypatch.setattr(scan_store, "_fsync_directory", synced.append)
    monkeypatch.setattr(scan_store.os, "fsync", lambda fd: (files.append(fd), real_fsync(fd)))
    store.save(*scan(0))  # a shard there before the batch
    synced.clear()
    files.clear()

    scans = [scan(n) for n in range(40)]
    directories = [d for sha, data in scans for d in store.write(sha, data)]
    assert synced == []  # nothing yet: the batch syncs them all at once
    store.sync_directories(directories)

    new = {store.path(sha).parent for sha, _ in scans} - {store.path(scan(0)[0]).parent}
    shards = {store.path(sha).parent for sha, _ in scans[1:]}
    assert len(files) == 39  # scan 0 was there: every other file synced, each once
    assert sorted(synced[:len(shards)]) == sorted(shards)  # each shard once …
    assert synced[len(shards):] == ([store.root] if new else [])  # … then the root, once
    assert all(store.read(sha) == data for sha, data in scans)
    assert store.write(*scans[5]) == []  # already there: nothing to write or sync
