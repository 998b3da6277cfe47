"""``python -m bot [--config PATH]``: start cadesk; ``cadesk backup`` and ``cadesk restore``
copy its data out and back (docs/operations.md#backup)."""

import argparse
import asyncio
import sys
from pathlib import Path

from bot.config import ConfigError, Settings, config_path, load_settings

SUBCOMMANDS = ("backup", "restore")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        return _subcommand(argv)
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="Run the cadesk chat bot. Also: cadesk backup, "
        "cadesk restore (each with --help).")
    _config_option(parser)
    args = parser.parse_args(argv)
    settings = _settings(args.config)
    if settings is None:
        return 2
    from bot.app import run  # nonebot is imported only once the configuration is sound

    run(settings)
    return 0


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH",
                        help="configuration file (default: $CADESK_CONFIG, else ./bot.toml)")


def _settings(path: str | None) -> Settings | None:
    try:
        return load_settings(config_path(path))
    except ConfigError as error:
        sys.stderr.write(f"cadesk: {error}\n")
        return None


def _subcommand(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cadesk")
    commands = parser.add_subparsers(dest="command", required=True)
    backup = commands.add_parser(
        "backup", help="copy the data directory and database while the bot runs",
        description="A consistent backup of the running bot into DIR: one tar per backup with "
        "a manifest of hashes, files shared by hash in DIR/objects. The CA key and the SO "
        "master secret go in only encrypted with CADESK_BACKUP_PASSPHRASE.")
    _config_option(backup)
    backup.add_argument("--to", metavar="DIR", type=Path,
                        help="backup directory (default: backups/ beside the configuration)")
    backup.add_argument("--keep", metavar="N", type=_at_least_one,
                        help="then keep only the newest N backups in DIR, deleting older "
                        "archives and the files only they held (default: keep all)")
    restore = commands.add_parser(
        "restore", help="restore a backup into an empty data directory",
        description="Restore ARCHIVE (its objects/ directory beside it) into the configured, "
        "empty data directory and database, checking every hash.")
    restore.add_argument("archive", metavar="ARCHIVE", type=Path)
    restore.add_argument("--without-secrets", action="store_true",
                         help="the passphrase is lost: restore all but the encrypted secrets "
                         "(the CA key and the SO master secret must then be made anew)")
    _config_option(restore)
    args = parser.parse_args(argv)
    settings = _settings(args.config)
    if settings is None:
        return 2
    if args.command == "backup":
        return _backup(settings, args.to or config_path(args.config).resolve().parent
                       / "backups", args.keep)
    return _restore(settings, args.archive, args.without_secrets)


def _at_least_one(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("keep at least one backup")
    return number


def _backup(settings: Settings, to: Path, keep: int | None) -> int:
    from bot.backup.database import DatabaseCopyError
    from bot.backup.layout import BackupBusy
    from bot.backup.sealing import passphrase_from_environment
    from bot.backup.take import BackupError, back_up

    try:
        result = back_up(settings, to, passphrase_from_environment(), keep=keep)
    except (BackupError, BackupBusy, DatabaseCopyError, OSError) as error:
        sys.stderr.write(f"cadesk backup: FAILED: {error}\n")
        return 1
    for sentence in result.left_out:
        sys.stderr.write(f"cadesk backup: NOTE: {sentence}\n")
    sys.stdout.write(f"{result.archive}: {result.files} files ({result.objects_written} new "
                     f"objects), database, {len(result.secrets)} encrypted secrets\n")
    if (pruned := result.pruned) is not None:
        sys.stdout.write(f"kept the newest {keep} backups: {pruned.archives} older archives and "
                         f"{pruned.objects} objects deleted\n")
        for archive in pruned.unreadable:
            sys.stderr.write(f"cadesk backup: NOTE: {archive} is not a readable backup: no "
                             "object deleted while it is there\n")
    return 0


def _restore(settings: Settings, archive: Path, without_secrets: bool) -> int:
    from bot.backup.database import DatabaseCopyError
    from bot.backup.restore import RestoreRefused, restore
    from bot.backup.sealing import passphrase_from_environment

    try:
        result = asyncio.run(restore(archive, settings, passphrase_from_environment(),
                                     without_secrets))
    except (RestoreRefused, DatabaseCopyError) as error:
        sys.stderr.write(f"cadesk restore: REFUSED: {error}\n")
        return 1
    for sentence in result.notes:
        sys.stderr.write(f"cadesk restore: NOTE: {sentence}\n")
    sys.stdout.write(f"restored {result.files} files, the database and {len(result.secrets)} "
                     f"secrets into {result.data_dir}; start the bot to check it\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
