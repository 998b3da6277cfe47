"""``cadesk-agent``: the key agent's command line.

    cadesk-agent pair --server URL --code CODE [--config agent.toml] [--module PATH]
    cadesk-agent run [--config agent.toml] [--unattended]

``pair`` makes the agent's own keys, registers their public halves with the bot using the
one-time code from the chat, and pins the bot's public key, all in the agent's state file.
``run`` connects out to the bot (the PC may be behind NAT), proves its key, runs the jobs it is
sent and reconnects with backoff; it stops for good only when the bot says it was revoked.
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path

import aiohttp
from loguru import logger

from bot.key_agent.config import AgentConfig, PairedState
from bot.key_agent.protocol import AgentKeys, JobJournal
from bot.key_agent.runner import (
    JobRunner,
    NewPin,
    ask_current_pin,
    ask_new_pin,
    current_pin_from_environment,
    new_pin_from_environment,
)
from bot.key_agent.token import TokenWorker

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


def socket_url(server: str) -> str:
    base = server.rstrip("/")
    for plain, secure in (("http://", "ws://"), ("https://", "wss://")):
        if base.startswith(plain):
            base = secure + base[len(plain):]
    return base + "/agent/ws"


class AgentRevoked(Exception):
    pass


async def serve(config: AgentConfig, new_pin: NewPin, current_pin: NewPin = ask_current_pin,
                max_delay: float = 60) -> None:
    """Stay connected to the bot and run its jobs; reconnect with backoff when cut off."""
    state = PairedState.load(config.state_file)
    worker = TokenWorker(config.module)
    runner = JobRunner(state, worker, JobJournal(config.state_file.with_name("journal.json")),
                       new_pin, current_pin, config.factory_so_pin)
    delay = 1.0
    try:
        while True:
            try:
                await _session(config, state, runner)
                delay = 1.0
            except AgentRevoked:
                raise
            except (aiohttp.ClientError, OSError, ConnectionError, ValueError) as error:
                logger.warning(f"connection to the bot lost: {type(error).__name__}: {error}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
    finally:
        worker.close()


async def _session(config: AgentConfig, state: PairedState, runner: JobRunner) -> None:
    async with (aiohttp.ClientSession() as session,
                session.ws_connect(socket_url(config.server), heartbeat=30) as socket):
        first = await socket.receive_json(timeout=30)
        if first.get("type") == "refused":  # too many refused hellos from this address
            raise ConnectionError(f"refused: {first.get('message')}")
        challenge = first["challenge"]
        await socket.send_json({"type": "hello", "agent_id": int(state.agent_id),
                                "proof": state.keys.prove(challenge)})
        answer = await socket.receive_json(timeout=30)
        if answer.get("type") == "refused":
            if answer.get("code") == "revoked":
                raise AgentRevoked(answer.get("message"))
            raise ConnectionError(f"refused: {answer.get('message')}")
        logger.info(f"connected to {config.server} for {answer.get('company')}")
        async for frame in socket:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            if message.get("type") == "job":
                result = await runner.run(message.get("job"))
                await socket.send_json({"type": "result", **result})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cadesk-agent", description="CA UKEY 密钥代理")
    commands = parser.add_subparsers(dest="command", required=True)
    pairing = commands.add_parser("pair", help="用聊天中获得的绑定码绑定本机")
    pairing.add_argument("--server", required=True)
    pairing.add_argument("--code", required=True)
    pairing.add_argument("--config", type=Path, default=Path("agent.toml"))
    pairing.add_argument("--module", default=DEFAULT_MODULE, help="PKCS#11 驱动（厂商 DLL/SO）")
    running = commands.add_parser("run", help="连接服务并执行解锁任务")
    running.add_argument("--config", type=Path, default=Path("agent.toml"))
    running.add_argument("--unattended", action="store_true",
                         help="新 PIN 取自 CADESK_AGENT_NEW_PIN 或 CADESK_AGENT_PIN_FILE，"
                         "续期用的 UKEY 密码取自 CADESK_AGENT_PIN，不询问")
    args = parser.parse_args(argv)

    if args.command == "run":
        config = AgentConfig.load(args.config)
        try:
            if args.unattended:
                asyncio.run(serve(config, new_pin_from_environment,
                                  current_pin_from_environment))
            else:
                asyncio.run(serve(config, ask_new_pin, ask_current_pin))
        except AgentRevoked as revoked:
            _say(f"此密钥代理已被吊销：{revoked}。如需继续使用，请重新绑定。")
            return 3
        except KeyboardInterrupt:
            return 0

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
