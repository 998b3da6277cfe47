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
from bot.key_agent.protocol import JobJournal, Refused, VerifiedJob, verify_job
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


def new_pin_from_environment() -> str:
    """Unattended use and tests: CADESK_AGENT_NEW_PIN, or a file named by CADESK_AGENT_PIN_FILE."""
    if pin := os.environ.get("CADESK_AGENT_NEW_PIN"):
        return pin
    if path := os.environ.get("CADESK_AGENT_PIN_FILE"):
        return Path(path).read_text(encoding="utf-8").strip()
    raise RuntimeError("no new PIN given (CADESK_AGENT_NEW_PIN or CADESK_AGENT_PIN_FILE)")


class JobRunner:
    def __init__(self, state: PairedState, worker: TokenWorker, journal: JobJournal,
                 new_pin: NewPin) -> None:
        self.state = state
        self.worker = worker
        self.journal = journal
        self.new_pin = new_pin

    async def run(self, job: dict[str, Any]) -> dict[str, Any]:
        job_id = str(job.get("id", ""))
        try:
            verified = verify_job(job, bot_public=self.state.bot_public,
                                  company=self.state.company, keys=self.state.keys)
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
        try:
            info = await self.worker.info(job.token_serial)  # the serial must match
            if job.kind == "reset_pin" and job.token_serial and job.so_pin:
                try:
                    new_pin = await asyncio.to_thread(self.new_pin)  # a person may take a while
                except (RuntimeError, OSError, EOFError) as error:
                    return {"id": job.id, "ok": False, "code": "no_new_pin",
                            "message": f"没有得到新的 PIN：{error}"}
                info = await self.worker.reset_pin(job.token_serial, job.so_pin, new_pin)
        except TokenError as error:
            code = "wrong_token" if error.code == "token_not_found" else error.code
            logger.warning(f"job {job.id} failed on the token: {code}")
            return {"id": job.id, "ok": False, "code": code, "message": str(error)}
        logger.info(f"job {job.id} ({job.kind}) done on token {info.serial}")
        return {"id": job.id, "ok": True, "kind": job.kind, "token": info.to_json()}
