"""``cadesk backup`` / ``cadesk restore``: a running bot's data copied out while it works and
brought back into an empty directory, where a second bot finds every order, scan and
certificate, and the restored CA still signs for the old CA certificate."""

import asyncio
import contextlib
import hashlib
import io
import json
import random
import sqlite3
import stat
import tarfile
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from bot.__main__ import main
from bot.backup.layout import OBJECTS, BackupBusy, locked
from bot.backup.restore import RestoreRefused, restore
from bot.backup.take import back_up
from bot.config import load_settings
from bot.domain.scans import ScanInfo
from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_uscc
from bot.services.filing import file_order
from storage.models import Certificate, Order
from storage.repositories import Conversations
from tests.support.certificate_world import CONFIG, MASTER_HEX, blank_ukey, make_world
from tests.support.helpers import MakeRuntime, RecordingChat, wait_for
from tests.support.softhsm import softhsm

PASSPHRASE = "correct horse battery staple"
SLOTS = ("seal_form", "handler_id_card", "authorisation")
# the bot's CA and agents on, the SO master secret in a file beside the configuration
WITH_SECRETS = CONFIG.replace("[agents]\nenabled = true",
                              '[agents]\nenabled = true\nso_master_file = "so-master.key"')


def write_master(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "so-master.key").write_bytes(bytes.fromhex(MASTER_HEX))


async def submit(runtime: Runtime, rng: random.Random) -> str:
    """An order as the dialogue files one: its scans stored first, then the order with one
    attachment row per scan in one transaction; its number."""
    scans = {}
    for slot in SLOTS:
        data = rng.randbytes(2000)
        digest = hashlib.sha256(data).hexdigest()
        runtime.scans.save(digest, data)
        scans[slot] = ScanInfo(digest, "JPEG", len(data), 1200, 900)
        await asyncio.sleep(0)  # let the other submissions and the backup interleave
    values = {"cert_type": "机构证书", "years": "1年", "region": "临沂", "ukey_count": "1",
              "apply_kind": "新办", "company_name": "临沂备份测试有限公司",
              "org_id_type": "统一社会信用代码", "org_id": fake_uscc(rng),
              "handler_name": "王小明", "handler_id_number": fake_id_number(rng),
              "mobile": "13812345678", "self_pickup": "自取"}
    async with runtime.db.transaction() as session:
        order = await file_order(session, runtime.settings, order_type="certificate",
                                 values=values, scans=scans, company_id=None, actor="qq:31337")
        return order.number


async def orders_of(runtime: Runtime) -> dict[str, tuple[dict[str, str], set[str]]]:
    """Every order's number → its fields and the hashes of its scans."""
    async with runtime.db.transaction() as session:
        orders = await session.scalars(select(Order).options(selectinload(Order.attachments)))
        return {o.number: (dict(o.fields), {a.sha256 for a in o.attachments}) for o in orders}


def assert_scans_restored(runtime: Runtime, orders: dict[str, tuple[dict[str, str], set[str]]]
                          ) -> None:
    """Every scan the orders name is in the runtime's store, byte for byte."""
    for _, hashes in orders.values():
        for digest in hashes:
            assert hashlib.sha256(runtime.scans.read(digest)).hexdigest() == digest


async def certificates_of(runtime: Runtime) -> dict[str, bytes]:
    async with runtime.db.transaction() as session:
        return {c.serial: c.der for c in await session.scalars(select(Certificate))}


def restored_settings(root: Path, config: str = WITH_SECRETS):
    root.mkdir(parents=True, exist_ok=True)
    (root / "bot.toml").write_text(config, encoding="utf-8")
    return load_settings(root / "bot.toml")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_running_bot_restores_whole_and_its_ca_still_signs(
        make_runtime: MakeRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_master(tmp_path)
    with softhsm():
        world = await make_world(make_runtime, tmp_path, monkeypatch, WITH_SECRETS)
        try:
            runtime = world.runtime
            blank_ukey("hall-ukey")
            await world.agent(hall=True)
            number = await world.paid_certificate_order()
            await world.staff(f"制证 {number}")
            await world.settle()
            assert (await world.order(number)).certificate_serial
            rng = random.Random(14)
            for _ in range(3):
                await submit(runtime, rng)
            orders, certificates = await orders_of(runtime), await certificates_of(runtime)
            old_ca = runtime.certificates.office.ca.certificate  # type: ignore[union-attr]
            result = back_up(runtime.settings, tmp_path / "backups", PASSPHRASE)
        finally:
            await world.close()
    assert sorted(result.secrets) == ["bot_signing_key", "ca_key", "so_master"]

    monkeypatch.delenv("CADESK_SO_MASTER")  # the restored bot reads the restored file
    settings = restored_settings(tmp_path / "elsewhere")
    await restore(result.archive, settings, PASSPHRASE)
    second = await Runtime.start(settings, RecordingChat())
    try:
        assert await orders_of(second) == orders
        assert_scans_restored(second, orders)
        assert await certificates_of(second) == certificates
        office = second.certificates.office  # type: ignore[union-attr]
        assert office.ca.certificate == old_ca
        crl = x509.load_der_x509_crl(await office.publish_crl())
        assert crl.is_signature_valid(old_ca.public_key())
    finally:
        await second.stop()
    master = tmp_path / "elsewhere" / "so-master.key"
    assert master.read_bytes() == bytes.fromhex(MASTER_HEX)
    assert mode(master) == 0o600
    assert mode(settings.data_dir) == 0o700
    assert mode(settings.data_dir / "pki" / "ca-key.pem") == 0o600
    assert mode(settings.data_dir / "cadesk.db") == 0o600
    assert {mode(p) for p in (settings.data_dir / "scans").rglob("*") if p.is_file()} == {0o600}


async def test_a_backup_during_a_burst_of_submissions_restores_only_whole_orders(
        make_runtime: MakeRuntime, tmp_path: Path) -> None:
    runtime = await make_runtime("")
    rng = random.Random(7)

    async def later(delay: float) -> str:
        await asyncio.sleep(delay)  # submissions spread over the backup, as people send them
        return await submit(runtime, random.Random(rng.random()))

    burst = [asyncio.create_task(later(i * 0.02)) for i in range(60)]
    await wait_for(lambda: sum(task.done() for task in burst) >= 3)
    # taken while the others store their scans and commit their orders
    result = await asyncio.to_thread(back_up, runtime.settings, tmp_path / "backups", None)
    filed_during = sum(not task.done() for task in burst)
    numbers = await asyncio.gather(*burst)

    settings = restored_settings(tmp_path / "restored", "")
    await restore(result.archive, settings, None)
    restored = sqlite3.connect(settings.data_dir / "cadesk.db")
    orders = restored.execute("SELECT id, number FROM orders").fetchall()
    assert orders
    assert {number for _, number in orders} <= set(numbers)
    assert filed_during  # the backup did run in the middle of the burst
    for order_id, _ in orders:
        hashes = [h for (h,) in restored.execute(
            "SELECT sha256 FROM attachments WHERE order_id = ?", (order_id,))]
        assert len(hashes) == len(SLOTS)
        for digest in hashes:
            scan = settings.data_dir / "scans" / digest[:2] / digest
            assert hashlib.sha256(scan.read_bytes()).hexdigest() == digest
    restored.close()


def objects_in(backup_dir: Path) -> int:
    return sum(1 for p in (backup_dir / OBJECTS).rglob("*") if p.is_file())


async def test_a_repeated_backup_copies_only_what_is_new(
        make_runtime: MakeRuntime, tmp_path: Path) -> None:
    runtime = await make_runtime("")
    rng = random.Random(3)
    for _ in range(2):
        await submit(runtime, rng)
    backups = tmp_path / "backups"
    first = back_up(runtime.settings, backups, None)
    assert first.objects_written == objects_in(backups) == len(SLOTS) * 2

    again = back_up(runtime.settings, backups, None)
    assert again.objects_written == 0
    await submit(runtime, rng)
    third = back_up(runtime.settings, backups, None)
    assert third.objects_written == len(SLOTS)
    assert objects_in(backups) == len(SLOTS) * 3
    assert len({first.archive, again.archive, third.archive}) == 3  # each backup its own tar


async def backed_up(make_runtime: MakeRuntime, tmp_path: Path, passphrase: str | None):
    runtime = await make_runtime(WITH_SECRETS)
    await submit(runtime, random.Random(5))
    return back_up(runtime.settings, tmp_path / "backups", passphrase)


def rewrite_member(archive: Path, name: str, change) -> None:  # type: ignore[no-untyped-def]
    """The archive again with member ``name``'s bytes changed by ``change``."""
    members = []
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            data = tar.extractfile(info).read()  # type: ignore[union-attr]
            members.append((info, change(data) if info.name == name else data))
    with tarfile.open(archive, "w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


@pytest.mark.parametrize("tamper", ["scan", "database", "manifest", "manifest cut"])
async def test_a_tampered_backup_is_refused_and_nothing_restored(
        make_runtime: MakeRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        tamper: str) -> None:
    write_master(tmp_path)
    monkeypatch.setenv("CADESK_SO_MASTER", MASTER_HEX)
    result = await backed_up(make_runtime, tmp_path, PASSPHRASE)
    with tarfile.open(result.archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    if tamper == "scan":
        digest = next(f["sha256"] for f in manifest["files"] if f["path"].startswith("scans/"))
        scan = tmp_path / "backups" / OBJECTS / digest[:2] / digest
        scan.write_bytes(flip_last_byte(scan.read_bytes()))
    elif tamper == "database":
        rewrite_member(result.archive, manifest["database"]["member"], flip_last_byte)
    elif tamper == "manifest":  # a scan swapped for another file, its hash changed to match
        def swapped(data: bytes) -> bytes:
            edited = json.loads(data)
            edited["files"][0]["sha256"] = edited["database"]["sha256"]
            return json.dumps(edited).encode()
        rewrite_member(result.archive, "manifest.json", swapped)
    else:  # what the manifest says of the database gone, and its seal with it
        def cut(data: bytes) -> bytes:
            edited = json.loads(data)
            del edited["database"], edited["mac"], edited["secrets"]
            return json.dumps(edited).encode()
        rewrite_member(result.archive, "manifest.json", cut)
    settings = restored_settings(tmp_path / "restored")
    with pytest.raises(RestoreRefused, match=r"changed or damaged|被改动"):
        await restore(result.archive, settings, PASSPHRASE)
    assert not settings.data_dir.exists()
    assert not (tmp_path / "restored" / "so-master.key").exists()
    assert [p.name for p in (tmp_path / "restored").iterdir()] == ["bot.toml"]


async def test_a_wrong_passphrase_is_refused_and_nothing_written(
        make_runtime: MakeRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_master(tmp_path)
    result = await backed_up(make_runtime, tmp_path, PASSPHRASE)
    settings = restored_settings(tmp_path / "restored")
    settings.data_dir.mkdir(mode=0o700)  # made empty by the sysadmin, as docs/operations.md says
    for wrong in ("Correct horse battery staple", None):
        with pytest.raises(RestoreRefused, match="口令"):
            await restore(result.archive, settings, wrong)
    assert list(settings.data_dir.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "restored").iterdir()) == ["bot.toml", "data"]

    await restore(result.archive, settings, PASSPHRASE)  # the right one, into that directory
    assert (settings.data_dir / "pki" / "ca-key.pem").exists()
    assert not any(p.name.startswith(".") for p in settings.data_dir.iterdir())


async def test_a_lost_passphrase_restores_all_but_the_secrets_when_asked(
        make_runtime: MakeRuntime, tmp_path: Path) -> None:
    write_master(tmp_path)
    result = await backed_up(make_runtime, tmp_path, PASSPHRASE)
    settings = restored_settings(tmp_path / "restored")
    restored = await restore(result.archive, settings, None, without_secrets=True)
    assert (settings.data_dir / "cadesk.db").exists()
    assert (settings.data_dir / "pki" / "ca-cert.pem").exists()
    assert not (settings.data_dir / "pki" / "ca-key.pem").exists()
    assert not (tmp_path / "restored" / "so-master.key").exists()
    assert any("CA key" in note and "NOT restored" in note for note in restored.notes)


async def test_a_restore_into_a_used_data_directory_is_refused(
        make_runtime: MakeRuntime, tmp_path: Path) -> None:
    result = await backed_up(make_runtime, tmp_path, None)
    settings = restored_settings(tmp_path / "restored", "")
    settings.data_dir.mkdir()
    (settings.data_dir / "cadesk.db").write_bytes(b"the live database")
    with pytest.raises(RestoreRefused, match="not empty"):
        await restore(result.archive, settings, None)
    assert (settings.data_dir / "cadesk.db").read_bytes() == b"the live database"


async def test_without_a_passphrase_the_secrets_are_left_out_and_said(
        make_runtime: MakeRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    write_master(tmp_path)
    runtime = await make_runtime(WITH_SECRETS)
    await submit(runtime, random.Random(9))
    monkeypatch.delenv("CADESK_BACKUP_PASSPHRASE", raising=False)
    backups = tmp_path / "backups"
    # the command line, as cron runs it (its own thread: it runs its own event loop)
    assert await asyncio.to_thread(
        main, ["backup", "--config", str(tmp_path / "bot.toml"), "--to", str(backups)]) == 0
    said = capsys.readouterr().err
    assert "CADESK_BACKUP_PASSPHRASE" in said
    assert "CA key" in said
    assert "SO master" in said
    assert "LEFT OUT" in said
    [archive] = backups.glob("*.tar")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert not any(n.startswith("secrets/") for n in names)
    paths = {f["path"] for f in manifest["files"]}
    assert "pki/ca-cert.pem" in paths
    assert "pki/ca-key.pem" not in paths
    assert "bot-signing-key.raw" not in paths
    key = (tmp_path / "data" / "pki" / "ca-key.pem").read_bytes()
    master = bytes.fromhex(MASTER_HEX)
    for digest in {f["sha256"] for f in manifest["files"]}:
        copied = (backups / OBJECTS / digest[:2] / digest).read_bytes()
        assert copied not in (key, master)

    # and it restores, saying again what it does not hold
    restored = tmp_path / "restored"
    restored_settings(restored, "")
    assert await asyncio.to_thread(
        main, ["restore", str(archive), "--config", str(restored / "bot.toml")]) == 0
    assert "LEFT OUT" in capsys.readouterr().err
    assert (restored / "data" / "pki" / "ca-cert.pem").exists()
    assert not (restored / "data" / "pki" / "ca-key.pem").exists()


async def test_postgresql_round_trip(make_runtime: MakeRuntime, tmp_path: Path,
                                     postgres) -> None:  # type: ignore[no-untyped-def]
    runtime = await make_runtime(f'[database]\nurl = "{postgres()}"\n')
    rng = random.Random(11)
    for _ in range(2):
        await submit(runtime, rng)
    orders = await orders_of(runtime)
    result = back_up(runtime.settings, tmp_path / "backups", None)

    used = restored_settings(tmp_path / "used",
                             f'[database]\nurl = "{runtime.settings.database_url}"\n')
    with pytest.raises(RestoreRefused, match="has tables"):
        await restore(result.archive, used, None)

    settings = restored_settings(tmp_path / "restored", f'[database]\nurl = "{postgres()}"\n')
    await restore(result.archive, settings, None)
    second = await Runtime.start(settings, RecordingChat())
    try:
        assert await orders_of(second) == orders
        assert_scans_restored(second, orders)
    finally:
        await second.stop()


def a_scan_named_in(database: Path) -> str:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        [[sha256]] = connection.execute("SELECT sha256 FROM attachments LIMIT 1")
        return sha256


def purging_after_the_snapshot(monkeypatch: pytest.MonkeyPatch, purge) -> list[str]:  # type: ignore[no-untyped-def]
    """The first database snapshot is followed at once by ``purge`` (a retention pass deleting
    a scan between the database copy and the file walk); the snapshots taken, as they are."""
    import bot.backup.take as take

    real, calls = take.snapshot, []

    def snapshot(url: str, target: Path) -> None:
        real(url, target)
        calls.append(url)
        if len(calls) == 1:
            purge()

    monkeypatch.setattr(take, "snapshot", snapshot)
    return calls


async def test_a_scan_purged_while_backing_up_is_not_named_by_the_backup(
        make_runtime: MakeRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = await make_runtime("")
    await submit(runtime, random.Random(21))
    database = runtime.settings.data_dir / "cadesk.db"
    purged = a_scan_named_in(database)

    def purge() -> None:  # the row and then the file, as a purge would
        with sqlite3.connect(database) as live:
            live.execute("DELETE FROM attachments WHERE sha256 = ?", (purged,))
        runtime.scans.discard(purged)

    purging_after_the_snapshot(monkeypatch, purge)
    # in a thread, as the CLI is its own process: the bot's loop goes on, so a transaction it
    # had open (a notice being delivered) ends and the purge's write gets the lock
    result = await asyncio.to_thread(back_up, runtime.settings, tmp_path / "backups", None)
    settings = restored_settings(tmp_path / "restored", "")
    await restore(result.archive, settings, None)
    restored = sqlite3.connect(settings.data_dir / "cadesk.db")
    named = {h for (h,) in restored.execute("SELECT sha256 FROM attachments")}
    restored.close()
    assert purged not in named
    assert len(named) == len(SLOTS) - 1
    for digest in named:
        assert (settings.data_dir / "scans" / digest[:2] / digest).is_file()


async def test_a_backup_whose_orders_name_missing_scans_fails_and_says_so(
        make_runtime: MakeRuntime, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        database_url: str) -> None:
    runtime = await make_runtime(f'[database]\nurl = "{database_url}"\n')
    await submit(runtime, random.Random(22))
    [(_, scans)] = (await orders_of(runtime)).values()
    lost = min(scans)
    runtime.scans.discard(lost)  # gone from disk, still named by its order
    backups = tmp_path / "backups"
    assert await asyncio.to_thread(
        main, ["backup", "--config", str(tmp_path / "bot.toml"), "--to", str(backups)]) == 1
    said = capsys.readouterr().err
    assert f"FAILED: 1 scans named by orders are not in {tmp_path / 'data' / 'scans'}" in said
    assert lost in said
    assert list(backups.glob("*.tar")) == []


async def test_keeping_the_newest_backups_deletes_older_archives_and_their_files(
        make_runtime: MakeRuntime, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runtime = await make_runtime("")
    rng = random.Random(31)
    first_order = await submit(runtime, rng)
    backups = tmp_path / "backups"
    first = back_up(runtime.settings, backups, None)
    # the first order's scans purged (as retention does), then two more backups keeping two
    async with runtime.db.transaction() as session:
        order = await session.scalar(select(Order).where(Order.number == first_order)
                                     .options(selectinload(Order.attachments)))
        assert order is not None
        purged = {a.sha256 for a in order.attachments}
        for attachment in order.attachments:
            await session.delete(attachment)
    for digest in purged:
        runtime.scans.discard(digest)
    await submit(runtime, rng)
    second = back_up(runtime.settings, backups, None)
    assert purged <= {p.name for p in (backups / OBJECTS).rglob("*")}  # the first still names them
    command = ["backup", "--config", str(tmp_path / "bot.toml"), "--to", str(backups),
               "--keep", "2"]
    assert await asyncio.to_thread(main, command) == 0
    assert "1 older archives and 3 objects deleted" in capsys.readouterr().out
    assert not first.archive.exists()
    assert second.archive.exists()
    assert len(list(backups.glob("*.tar"))) == 2
    left = {p.name for p in (backups / OBJECTS).rglob("*") if p.is_file()}
    assert not purged & left
    assert len(left) == len(SLOTS)  # the second order's scans, named by both kept backups


async def test_one_backup_at_a_time_into_a_directory(
        make_runtime: MakeRuntime, tmp_path: Path) -> None:
    runtime = await make_runtime("")
    backups = tmp_path / "backups"
    with locked(backups), pytest.raises(BackupBusy, match="another backup"):
        back_up(runtime.settings, backups, None)
    assert back_up(runtime.settings, backups, None).archive.exists()  # free again afterwards


async def test_a_draft_dropped_while_backing_up_leaves_no_scan_missing(
        make_runtime: MakeRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        database_url: str) -> None:
    """A form abandoned between the database copy and the file walk: its scan's file goes once
    its draft is gone, so the copy, which still has the draft, is taken again."""
    runtime = await make_runtime(f'[database]\nurl = "{database_url}"\n')
    data = random.Random(41).randbytes(3000)
    digest = hashlib.sha256(data).hexdigest()
    runtime.scans.save(digest, data)
    async with runtime.db.transaction() as session:  # a draft holding one scan, as saved
        await Conversations(session).save("qq", "31337", {"scans": {"seal_form": {
            "sha256": digest, "format": "JPEG", "size": len(data), "width": 1200,
            "height": 900}}})
    loop = asyncio.get_running_loop()

    async def drop() -> None:  # as Dialogue._drop: the draft, then its file
        async with runtime.db.transaction() as session:
            await Conversations(session).delete("qq", "31337")
        runtime.scans.discard(digest)

    snapshots = purging_after_the_snapshot(
        monkeypatch, lambda: asyncio.run_coroutine_threadsafe(drop(), loop).result())
    result = await asyncio.to_thread(back_up, runtime.settings, tmp_path / "backups", None)
    assert len(snapshots) == 2  # the first named the dropped draft's scan: taken again
    with tarfile.open(result.archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert digest not in {f["sha256"] for f in manifest["files"]}
