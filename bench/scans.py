"""Checking and storing a 5 MB JPEG (bot/domain/scans.py + bot/services/scan_store.py) against
Pillow's own open + verify of the same bytes."""

import io
import random
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench.report import Figure, latencies
from bot.adapters.scan_store import ScanStore
from bot.domain.scans import ScanRules, inspect_scan

TARGET_BYTES = 5 * 1024 * 1024


def five_megabyte_jpeg(seed: int = 7) -> bytes:
    """An A4 page at 300 dpi with fine noise, saved so the file is about 5 MB."""
    rng = random.Random(seed)
    size = (2480, 3508)
    noise = Image.frombytes("L", size, rng.randbytes(size[0] * size[1]))
    page = Image.merge("RGB", [noise.point(lambda v, k=k: 128 + (v - 128) // k) for k in (3, 4, 5)])
    best = b""
    for quality in (60, 70, 75, 80, 85, 90, 95):
        buffer = io.BytesIO()
        page.save(buffer, "JPEG", quality=quality)
        best = buffer.getvalue()
        if len(best) >= TARGET_BYTES:
            break
    return best


def _side_by_side(ours, baseline, repeats: int) -> tuple[list[float], list[float]]:
    """Seconds per round of each, taken in turns so a busy moment of the machine hits both."""
    ours(), baseline()  # warm-up: imports, plugin registry, page cache
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for work, kept in ((ours, times[0]), (baseline, times[1])):
            start = time.perf_counter()
            work()
            kept.append(time.perf_counter() - start)
    return times


def run(quick: bool) -> tuple[list[Figure], str]:
    repeats = 5 if quick else 30
    data = five_megabyte_jpeg()
    rules = ScanRules()  # bot.toml's defaults: 10 MB, 600×800 at least, 60 Mpx at most
    with tempfile.TemporaryDirectory(prefix="cadesk-bench-scans-") as root:
        store = ScanStore(Path(root) / "scans")

        def cadesk() -> None:
            info = inspect_scan(data, rules)
            store.save(info.sha256, data)
            store.discard(info.sha256)  # the next round writes it again

        def pillow_verify() -> None:
            with Image.open(io.BytesIO(data)) as image:
                image.verify()

        def check_only() -> None:
            inspect_scan(data, rules)

        def pillow_load() -> None:
            with Image.open(io.BytesIO(data)) as image:
                image.load()

        ours, baseline = _side_by_side(cadesk, pillow_verify, repeats)
        checked, decoded = _side_by_side(check_only, pillow_load, repeats)
    megabytes = len(data) / 1024 / 1024
    figures = [*latencies("scans", f"check + store a {megabytes:.1f} MB JPEG", ours, baseline),
               *latencies("scans", "check only, against Pillow open + load", checked, decoded)]
    note = (f"`inspect_scan` (format, size, pixel cap before decoding, full decode, SHA-256) "
            f"then `ScanStore.save` (temp file, fsync, rename, 0600) of a "
            f"{len(data) / 1024 / 1024:.1f} MB 2480×3508 JPEG, p50 and p99 (nearest rank: of "
            f"{repeats}, the slowest) of {repeats} rounds, taken in "
            "turns with the baseline's; baseline: "
            "`Image.open(...).verify()` on the same bytes, which for a JPEG reads the headers "
            "but decodes no pixel, so it cannot see a truncated file. The second row puts "
            "`inspect_scan` alone beside Pillow's full decode (`open` + `load`), which it "
            "includes, to show what the check adds to decoding.")
    return figures, note
