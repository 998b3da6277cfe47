"""A bot with the CA switched on, a company, the service hall's agent and the company's agent,
running real jobs on SoftHSM2 tokens in this process. Certificates are checked with openssl and
pkcs11-tool, independently of the code under test."""

import asyncio
import random
import subprocess
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from bot.domain.trust import HandlerStatus
from bot.key_agent.config import PairedState
from bot.key_agent.protocol import AgentKeys, JobJournal
from bot.key_agent.runner import JobRunner
from bot.key_agent.token import TokenWorker
from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_uscc
from bot.services.filing import file_order
from bot.services.messages import Account, Incoming
from storage.models import Agent, Order, utcnow
from storage.repositories import Handlers
from tests.support.applicant import bind_verified
from tests.support.helpers import MakeRuntime, RecordingChat
from tests.support.softhsm import MODULE, SoftToken, new_token

MASTER_HEX = "5a" * 32
FACTORY_SO_PIN = "12345678"
TECHNICIAN = Account("qq", "900001")
CONFIG = """
[staff]
technicians = ["qq:900001"]
[fees]
certificate = 260
renewal = 200
[agents]
enabled = true
[pki]
enabled = true
"""


class LocalAgent:
    """An agent whose 'connection' is a queue: jobs run one by one, results go to the hub."""

    def __init__(self, runtime: Runtime, agent: Agent, runner: JobRunner) -> None:
        self.runtime, self.agent, self.runner = runtime, agent, runner
        self.jobs: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.results: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._work())

    async def send(self, message: dict[str, Any]) -> None:
        await self.jobs.put(message["job"])

    async def close(self) -> None:
        self.task.cancel()

    async def _work(self) -> None:
        while True:
            job = await self.jobs.get()
            try:
                result = await self.runner.run(job)
                self.results.append(result)
                await self.runtime.hub.result(self.agent.id, {"type": "result", **result})
            finally:
                self.jobs.task_done()

    async def online(self) -> None:
        await self.runtime.hub.connected(self.agent, self.send, self.close)

    async def stop(self) -> None:
        self.task.cancel()
        with suppress(asyncio.CancelledError):
            await self.task


@dataclass
class World:
    runtime: Runtime
    chat: RecordingChat
    applicant: Account
    uscc: str
    company_name: str
    root: Path
    agents: list[LocalAgent] = field(default_factory=list)
    # one worker thread for the process's token calls, as an agent has (C_Initialize is global)
    worker: TokenWorker = field(default_factory=lambda: TokenWorker(MODULE))

    async def say(self, text: str, account: Account | None = None) -> list[str]:
        return await self.runtime.dialogue.handle(account or self.applicant, Incoming(text=text))

    async def staff(self, text: str) -> list[str]:
        return [str(r) for r in await self.runtime.desk.execute(TECHNICIAN, text, private=True)]

    def told(self, account: Account | None = None) -> list[str]:
        who = str(account or self.applicant)
        return [str(reply) for to, reply in self.chat.sent if to == who]

    async def settle(self) -> None:
        """Wait until every agent has run every job it was sent, and the chain is done."""
        for _ in range(50):
            await asyncio.sleep(0)
            for agent in self.agents:
                await agent.jobs.join()
            if all(a.jobs.empty() for a in self.agents):
                await asyncio.sleep(0.01)
                if all(a.jobs.empty() for a in self.agents):
                    return

    async def agent(self, hall: bool, token_pin: str | None = None) -> LocalAgent:
        if hall:
            [reply] = await self.staff("绑定制证代理")
        else:
            [reply] = await self.say("绑定密钥代理")
        code = reply.split("--code ")[1].split()[0]
        keys = AgentKeys.generate()
        paired = await self.runtime.agents.pair(code, **keys.public())
        async with self.runtime.db.transaction() as session:
            agent = await session.get(Agent, paired.agent_id)
        state = PairedState(str(paired.agent_id), paired.company, paired.bot_public, keys)
        journal = JobJournal(self.root / f"journal-{paired.agent_id}.json")
        runner = JobRunner(state, self.worker, journal, new_pin=lambda: "unused",
                           current_pin=lambda: token_pin or "",
                           factory_so_pin=FACTORY_SO_PIN if hall else None)
        local = LocalAgent(self.runtime, agent, runner)
        self.agents.append(local)
        await local.online()
        return local

    async def paid_certificate_order(self, years: str = "1年") -> str:
        async with self.runtime.db.transaction() as session:
            handler = await Handlers(session).get(self.applicant.platform, self.applicant.user_id)
            rng = random.Random(3)
            values = {"cert_type": "机构证书", "years": years, "region": "临沂",
                      "ukey_count": "1", "apply_kind": "新办", "company_name": self.company_name,
                      "org_id_type": "统一社会信用代码", "org_id": self.uscc,
                      "handler_name": "王小明", "handler_id_number": fake_id_number(rng),
                      "mobile": "13812345678", "self_pickup": "自取"}
            order = await file_order(session, self.runtime.settings, order_type="certificate",
                                     values=values, scans={}, company_id=handler.company_id,
                                     handler_id=handler.id, actor=str(self.applicant))
            number = order.number
        assert "已通过" in (await self.staff(f"通过 {number}"))[0]
        assert "已登记" in (await self.staff(f"收款 {number}"))[0]
        return number

    async def renew(self) -> str:
        """续期 through chat, review and payment, with the company's agent online (``agent``
        first); returns the renewal order's number once the new certificate is on the UKEY."""
        await self.say("续期")
        await self.settle()
        number = self.told()[-1].split("订单号：")[1].split()[0]
        assert "已提交续期订单" in (await self.say(f"确认续期 {number}"))[0]
        assert "已通过" in (await self.staff(f"通过 {number}"))[0]
        await self.staff(f"收款 {number}")
        await self.settle()
        assert (await self.order(number)).status == "completed"
        return number

    async def verify(self, account: Account | None = None, email: str | None = None) -> None:
        """The account's binding verified (as a technician's approval would leave it)."""
        who = account or self.applicant
        async with self.runtime.db.transaction() as session:
            handler = await Handlers(session).get(who.platform, who.user_id)
            assert handler is not None
            handler.status, handler.verified_at = HandlerStatus.VERIFIED, utcnow()
            handler.verified_by, handler.email = str(TECHNICIAN), email

    async def order(self, number: str) -> Order:
        async with self.runtime.db.transaction() as session:
            order = await session.scalar(select(Order).where(Order.number == number))
            assert order is not None
            return order

    async def close(self) -> None:
        for agent in self.agents:
            await agent.stop()
        self.worker.close()
        await self.runtime.stop()

    def ca_pem(self) -> Path:
        path = self.root / "ca.pem"
        assert self.runtime.certificates is not None
        path.write_bytes(self.runtime.certificates.office.ca.certificate.public_bytes(
            Encoding.PEM))
        return path


async def make_world(make_runtime: MakeRuntime, tmp_path: Path, monkeypatch: Any,
                     config: str = CONFIG) -> World:
    monkeypatch.setenv("CADESK_SO_MASTER", MASTER_HEX)
    chat = RecordingChat()
    runtime = await make_runtime(config, chat)
    uscc = fake_uscc(random.Random(len(str(tmp_path))))
    world = World(runtime, chat, Account("qq", "31337"), uscc, "临沂证书测试有限公司", tmp_path)
    await bind_verified(runtime, world.applicant, uscc, world.company_name)
    return world


def blank_ukey(label: str) -> SoftToken:
    """A UKEY as the vendor ships it: formatted, a factory SO PIN, no keys, no certificates."""
    return new_token(label, so_pin=FACTORY_SO_PIN, pin="000000")


def openssl(*args: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=False)
    return (result.stdout + result.stderr).decode(errors="replace")


def token_certificate_pem(token: SoftToken, path: Path) -> Path:
    """The certificate as pkcs11-tool reads it off the token, as PEM for openssl."""
    der = path.with_suffix(".der")
    subprocess.run(["pkcs11-tool", "--module", MODULE, "--token-label", token.label,
                    "--read-object", "--type", "cert", "--label", "cadesk",
                    "--output-file", str(der)], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-inform", "DER", "-in", str(der), "-out", str(path)],
                   check=True, capture_output=True)
    return path
