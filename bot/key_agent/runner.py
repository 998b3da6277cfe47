"""Running one job on the agent: check it, run it on the token, report what happened.

Whatever goes wrong comes back as a result the bot can log and show to technicians; the token
is touched only after every check passed.
"""

import asyncio
import getpass
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from bot.key_agent.config import PairedState
from bot.key_agent.protocol import JobJournal, Refused, VerifiedJob, b64, unb64, verify_job
from bot.key_agent.token import TokenError, TokenWorker

NewPin = Callable[[], str]


def ask_new_pin(prompt: Callable[[str], str] = getpass.getpass) -> str:
    """Ask the person at the PC for the new user PIN, twice. The bot never sees it."""
    while True:
        first = prompt("请输入新的 UKEY 密码（PIN）：")
        if len(first) < 4:
            print("密码至少 4 位，请重新输入。")  # noqa: T201 - talking to the person at the PC
            continue
        if prompt("请再输入一次：") == first:
            return first
        print("两次输入不一致，请重新输入。")  # noqa: T201


def ask_current_pin(prompt: Callable[[str], str] = getpass.getpass) -> str:
    """Renewal signs a request with the key on the UKEY: the person at the PC types its PIN."""
    return prompt("续期证书需要用 UKEY 签名，请输入 UKEY 密码（PIN）：")


def current_pin_from_environment() -> str:
    """Unattended use and tests: CADESK_AGENT_PIN."""
    if pin := os.environ.get("CADESK_AGENT_PIN"):
        return pin
    raise RuntimeError("no UKEY PIN given (CADESK_AGENT_PIN)")


def new_pin_from_environment() -> str:
    """Unattended use and tests: CADESK_AGENT_NEW_PIN, or a file named by CADESK_AGENT_PIN_FILE."""
    if pin := os.environ.get("CADESK_AGENT_NEW_PIN"):
        return pin
    if path := os.environ.get("CADESK_AGENT_PIN_FILE"):
        return Path(path).read_text(encoding="utf-8").strip()
    raise RuntimeError("no new PIN given (CADESK_AGENT_NEW_PIN or CADESK_AGENT_PIN_FILE)")


class JobRunner:
    def __init__(self, state: PairedState, worker: TokenWorker, journal: JobJournal,
                 new_pin: NewPin, current_pin: NewPin = ask_current_pin,
                 factory_so_pin: str | None = None) -> None:
        self.state = state
        self.worker = worker
        self.journal = journal
        self.new_pin = new_pin
        self.current_pin = current_pin
        self.factory_so_pin = factory_so_pin  # the service hall's blank UKEYs (agent.toml)

    async def run(self, job: Any) -> dict[str, Any]:
        job_id = str(job.get("id", "")) if isinstance(job, dict) else ""
        try:
            verified = verify_job(job, bot_public=self.state.bot_public,
                                  agent=self.state.agent_id, company=self.state.company,
                                  keys=self.state.keys)
            if (earlier := self.journal.earlier(job)) is not None:
                logger.info(f"job {job_id} was received before: answering as then")
                return earlier
        except Refused as refusal:
            logger.warning(f"job {job_id} refused: {refusal.code}: {refusal}")
            return {"id": job_id, "ok": False, "code": refusal.code, "message": str(refusal)}
        self.journal.begin(job, time.time())  # on disk before the token is touched
        result = await self._execute(verified)
        self.journal.finish(job_id, result)
        return result

    async def _execute(self, job: VerifiedJob) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        try:
            info = await self.worker.info(job.token_serial)  # the serial must match
            serial = info.serial
            if job.kind == "reset_pin" and job.so_pin:
                new_pin = await self._ask(self.new_pin, "no_new_pin", "新的 PIN")
                info = await self.worker.reset_pin(serial, job.so_pin, new_pin)
            elif job.kind == "personalise" and job.so_pin and job.user_pin:
                if not self.factory_so_pin:
                    raise TokenError("not_a_hall_agent", "这个密钥代理没有配置空白 UKEY 的出厂"
                                     "管理员 PIN（agent.toml 的 factory_so_pin），不能制证。")
                info, csr = await self.worker.personalise(
                    serial, self.factory_so_pin, job.so_pin, job.user_pin,
                    str(job.data.get("common_name", "")))
                extra["csr"] = b64(csr)
            elif job.kind == "request":
                pin = await self._ask(self.current_pin, "no_pin", "UKEY 密码")
                info, csr = await self.worker.request(serial, pin,
                                                      str(job.data.get("common_name", "")))
                extra["csr"] = b64(csr)
            elif job.kind == "write_certificate":
                info = await self.worker.write_certificate(serial,
                                                           unb64(job.data["certificate"]))
        except TokenError as error:
            code = "wrong_token" if error.code == "token_not_found" else error.code
            logger.warning(f"job {job.id} failed on the token: {code}")
            return {"id": job.id, "ok": False, "code": code, "message": str(error)}
        logger.info(f"job {job.id} ({job.kind}) done on token {info.serial}")
        return {"id": job.id, "ok": True, "kind": job.kind, "token": info.to_json(), **extra}

    async def _ask(self, prompt: NewPin, code: str, what: str) -> str:
        try:
            return await asyncio.to_thread(prompt)  # a person may take a while
        except (RuntimeError, OSError, EOFError) as error:
            raise TokenError(code, f"没有得到{what}：{error}") from None
