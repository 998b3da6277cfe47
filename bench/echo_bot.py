"""The chat baseline: a bare nonebot2 bot that answers every private message with its text.

Same server driver (``~fastapi``), adapter (OneBot v11), transport (reverse WebSocket) and log
level as cadesk in the benchmark; nothing else.

    python -m bench.echo_bot --port 8081 --token TOKEN
"""

import argparse

import nonebot
from nonebot.adapters.onebot.v11 import Adapter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default="")
    args = parser.parse_args()
    nonebot.init(driver="~fastapi", host="127.0.0.1", port=args.port, log_level="WARNING",
                 command_start=["/", ""], onebot_access_token=args.token or None,
                 fastapi_reload=False, fastapi_docs_url=None, fastapi_redoc_url=None,
                 fastapi_openapi_url=None)
    nonebot.get_driver().register_adapter(Adapter)
    nonebot.load_plugin("bench.echo_plugin")
    nonebot.run()


if __name__ == "__main__":
    main()
