"""``cadesk-agent``: the key agent's command line.

    cadesk-agent pair --server URL --code CODE [--config agent.toml] [--module PATH]

makes the agent's own keys, registers their public halves with the bot using the one-time
code from the chat, and pins the bot's public key, all in the agent's state file.
"""

import argparse
import asyncio
import sys
from pathlib import Path

import aiohttp

from bot.key_agent.config import AgentConfig, PairedState
from bot.key_agent.protocol import AgentKeys

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


async def pair(server: str, code: str, state_file: Path) -> PairedState:
    keys = AgentKeys.generate()
    url = f"{server.rstrip('/')}/agent/pair"
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
                session.post(url, json={"code": code, **keys.public()}) as response):
        answer = await response.json(content_type=None)
    if "agent_id" not in answer:
        raise SystemExit(f"绑定失败：{answer.get('message', answer)}")
    state = PairedState(str(answer["agent_id"]), answer["company"], answer["bot_public"], keys)
    state.save(state_file)
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cadesk-agent", description="CA UKEY 密钥代理")
    commands = parser.add_subparsers(dest="command", required=True)
    pairing = commands.add_parser("pair", help="用聊天中获得的绑定码绑定本机")
    pairing.add_argument("--server", required=True)
    pairing.add_argument("--code", required=True)
    pairing.add_argument("--config", type=Path, default=Path("agent.toml"))
    pairing.add_argument("--module", default=DEFAULT_MODULE, help="PKCS#11 驱动（厂商 DLL/SO）")
    args = parser.parse_args(argv)

    if args.command == "pair":
        if not args.config.exists():
            args.config.write_text(f'server = "{args.server}"\nmodule = "{args.module}"\n'
                                   'state_file = "agent-state.json"\n', encoding="utf-8")
        config = AgentConfig.load(args.config)
        state = asyncio.run(pair(args.server, args.code, config.state_file))
        _say(f"绑定成功：密钥代理 {state.agent_id}，单位 {state.company}。")
    return 0


if __name__ == "__main__":
    sys.exit(main())
