"""``python -m bot [--config PATH]``: start cadesk."""

import argparse
import sys

from bot.config import ConfigError, config_path, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Run the cadesk chat bot.")
    parser.add_argument("--config", metavar="PATH",
                        help="configuration file (default: $CADESK_CONFIG, else ./bot.toml)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(config_path(args.config))
    except ConfigError as error:
        sys.stderr.write(f"cadesk: {error}\n")
        return 2
    from bot.app import run  # nonebot is imported only once the configuration is sound

    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
