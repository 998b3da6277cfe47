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
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

# Only the standard library at import: ``cadesk-agent --help`` answers even before the
# dependencies (aiohttp, python-pkcs11, cryptography) are installed or when one is broken.
if TYPE_CHECKING:
    from bot.key_agent.config import AgentConfig, PairedState
    from bot.key_agent.runner import JobRunner, NewPin

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
DESCRIPTION = (
    "CA 数字证书密钥代理：装在插着 UKEY 的电脑上，替 CA 服务中心在本机完成远程解锁"
    "（重置 UKEY 密码）、证书续期等操作。新密码只在本机输入，不会发给任何人。")
EPILOG = """使用步骤：
  1. 在聊天中发送「绑定密钥代理」，得到绑定码和完整命令。
  2. 绑定本机（只需一次）：
       cadesk-agent pair --server 服务网址 --code 绑定码 --module UKEY驱动文件
  3. 办理解锁、续期时保持运行：
       cadesk-agent run
     技术人员通过解锁申请后，窗口会提示「请输入新密码」「请再次输入新密码」。

各命令的说明：cadesk-agent pair --help、cadesk-agent run --help"""

# argparse's own texts are English; what a person meets is said in Chinese
_ARGPARSE_ERRORS = (
    (r"the following arguments are required: (.*)", r"缺少参数：\1"),
    (r"argument (\S+): invalid choice: (\S+).*", r"没有这个命令：\2（可用：pair、run）"),
    (r"unrecognized arguments: (.*)", r"不认识的参数：\1"),
    (r"argument (\S+): expected one argument", r"参数 \1 后面要写上值"),
)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, "用法：" if prefix is None else prefix)


class _Parser(argparse.ArgumentParser):
    def __init__(self, **options: Any) -> None:
        super().__init__(formatter_class=_Formatter, add_help=False, **options)
        self._positionals.title = "命令"
        self._optionals.title = "选项"
        self.add_argument("-h", "--help", action="help", help="显示本说明后退出")

    def error(self, message: str) -> NoReturn:
        for pattern, chinese in _ARGPARSE_ERRORS:
            message = re.sub(pattern, chinese, message)
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}：{message}\n")


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


class AgentError(Exception):
    """What stops the agent, said to the person at the PC (Chinese)."""


async def pair(server: str, code: str, state_file: Path) -> "PairedState":
    import aiohttp

    from bot.key_agent.config import PairedState
    from bot.key_agent.protocol import AgentKeys

    keys = AgentKeys.generate()
    url = f"{server.rstrip('/')}/agent/pair"
    try:
        async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
                    session.post(url, json={"code": code, **keys.public()}) as response):
            answer = await response.json(content_type=None)
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        raise AgentError(f"连接不上服务 {server}：{error or type(error).__name__}。"
                         "请检查网址是否与聊天中给出的一致、本机能否上网。") from None
    except ValueError:
        raise AgentError(f"{server} 的回复不是密钥代理服务的回复，"
                         "请核对网址是否与聊天中给出的一致。") from None
    if not isinstance(answer, dict) or "agent_id" not in answer:
        why = answer.get("message", answer) if isinstance(answer, dict) else answer
        raise AgentError(f"绑定失败：{why}")
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


async def serve(config: "AgentConfig", new_pin: "NewPin", current_pin: "NewPin | None" = None,
                max_delay: float = 60) -> None:
    """Stay connected to the bot and run its jobs; reconnect with backoff when cut off."""
    import aiohttp
    from loguru import logger

    from bot.key_agent.config import PairedState
    from bot.key_agent.protocol import JobJournal
    from bot.key_agent.runner import JobRunner, ask_current_pin
    from bot.key_agent.token import TokenWorker

    try:
        state = PairedState.load(config.state_file)
    except FileNotFoundError:
        raise AgentError(f"本机还没有绑定（找不到 {config.state_file}）。请先在聊天中发送"
                         "「绑定密钥代理」，按回复运行 cadesk-agent pair。") from None
    worker = TokenWorker(config.module)
    runner = JobRunner(state, worker, JobJournal(config.state_file.with_name("journal.json")),
                       new_pin, current_pin or ask_current_pin, config.factory_so_pin)
    delay = 1.0
    try:
        while True:
            try:
                await _session(config, state, runner)
                delay = 1.0
            except AgentRevoked:
                raise
            except (aiohttp.ClientError, OSError, ConnectionError, ValueError) as error:
                logger.warning(f"与服务 {config.server} 的连接断开或连不上："
                               f"{error or type(error).__name__}。{delay:.0f} 秒后重连，"
                               "请保持本窗口打开、电脑联网。")
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
    finally:
        worker.close()


async def _session(config: "AgentConfig", state: "PairedState", runner: "JobRunner") -> None:
    import aiohttp
    from loguru import logger

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
            raise ConnectionError(f"服务拒绝了连接：{answer.get('message')}")
        logger.info(f"已连接服务 {config.server}（单位 {answer.get('company')}）。"
                    "请保持本窗口打开，有任务时会在这里提示。")
        async for frame in socket:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            if message.get("type") == "job":
                result = await runner.run(message.get("job"))
                await socket.send_json({"type": "result", **result})


def parser() -> argparse.ArgumentParser:
    """The command line, every text in Chinese."""
    top = _Parser(prog="cadesk-agent", description=DESCRIPTION, epilog=EPILOG)
    commands = top.add_subparsers(dest="command", required=True, title="命令",
                                  metavar="{pair,run}", parser_class=_Parser)
    pairing = commands.add_parser(
        "pair", help="用聊天中获得的绑定码绑定本机（只需一次）",
        description="用聊天中「绑定密钥代理」给出的一次性绑定码，把本机的密钥代理绑定到"
                    "您的单位。绑定后运行 cadesk-agent run。")
    pairing.add_argument("--server", required=True, metavar="网址",
                         help="CA 服务的网址（聊天中给出，例如 https://ca.example.com）")
    pairing.add_argument("--code", required=True, metavar="绑定码",
                         help="聊天中给出的 8 位绑定码（一次性，有效期几分钟）")
    pairing.add_argument("--config", type=Path, default=Path("agent.toml"), metavar="文件",
                         help="本机配置文件（默认 agent.toml，没有时自动生成）")
    pairing.add_argument("--module", default=DEFAULT_MODULE, metavar="驱动文件",
                         help="UKEY 厂商的 PKCS#11 驱动（Windows 上是 .dll 文件，"
                              "随 UKEY 驱动安装；聊天中给出的命令已写好）")
    running = commands.add_parser(
        "run", help="连接服务并执行解锁、续期任务（办理期间保持运行）",
        description="连接 CA 服务，等待并执行解锁、续期等任务。技术人员通过解锁申请后，"
                    "这里会提示「请输入新密码」「请再次输入新密码」。按 Ctrl+C 退出。")
    running.add_argument("--config", type=Path, default=Path("agent.toml"), metavar="文件",
                         help="本机配置文件（默认 agent.toml）")
    running.add_argument("--unattended", action="store_true",
                         help="无人值守（测试、自助机）：新密码取自 CADESK_AGENT_NEW_PIN 或 "
                              "CADESK_AGENT_PIN_FILE，续期用的 UKEY 密码取自 CADESK_AGENT_PIN，"
                              "不询问")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _pair(args) if args.command == "pair" else _run(args)
    except AgentError as error:
        _say(str(error))
        return 1
    except KeyboardInterrupt:
        return 0


def _load(path: Path) -> "AgentConfig":
    from bot.key_agent.config import AgentConfig

    try:
        return AgentConfig.load(path)
    except FileNotFoundError:
        raise AgentError(f"找不到配置文件 {path}。请先运行 cadesk-agent pair 绑定本机，"
                         "或在绑定时的文件夹里运行。") from None
    except (KeyError, ValueError) as error:
        raise AgentError(f"配置文件 {path} 有误：{error}。") from None


def _run(args: argparse.Namespace) -> int:
    from bot.key_agent.runner import (
        ask_current_pin,
        ask_new_pin,
        current_pin_from_environment,
        new_pin_from_environment,
    )

    config = _load(args.config)
    try:
        if args.unattended:
            asyncio.run(serve(config, new_pin_from_environment, current_pin_from_environment))
        else:
            asyncio.run(serve(config, ask_new_pin, ask_current_pin))
    except AgentRevoked as revoked:
        _say(f"此密钥代理已被吊销：{revoked}。如需继续使用，请重新绑定。")
        return 3
    return 0


def _pair(args: argparse.Namespace) -> int:
    if not args.config.exists():
        args.config.write_text(f'server = "{args.server}"\nmodule = {json.dumps(args.module)}\n'
                               'state_file = "agent-state.json"\n', encoding="utf-8")
    config = _load(args.config)
    state = asyncio.run(pair(args.server, args.code, config.state_file))
    _say(f"绑定成功：密钥代理 {state.agent_id}，单位 {state.company}。\n"
         "下一步：运行 cadesk-agent run，办理解锁、续期期间保持窗口打开。")
    return 0


if __name__ == "__main__":
    sys.exit(main())
