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
KIND_LABELS = {"token_info": "读取 UKEY", "reset_pin": "重置密码", "personalise": "制作 UKEY",
               "request": "证书申请", "write_certificate": "写入证书"}


def _tell(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - talking to the person at the PC


def ask_new_pin(prompt: Callable[[str], str] = getpass.getpass) -> str:
    """Ask the person at the PC for the new user PIN, twice. The bot never sees it."""
    while True:
        first = prompt("请输入新密码：")
        if len(first) < 4:
            print("密码至少 4 位，请重新输入。")  # noqa: T201 - talking to the person at the PC
            continue
        if prompt("请再次输入新密码：") == first:
            return first
        print("两次输入的新密码不一致，请重新输入。")  # noqa: T201


def ask_current_pin(prompt: Callable[[str], str] = getpass.getpass) -> str:
    """Renewal signs a request with the key on the UKEY: the person at the PC types its PIN."""
    return prompt("续期证书需要用 UKEY 签名，请输入 UKEY 密码（PIN）：")


def current_pin_from_environment() -> str:
    """Unattended use and tests: CADESK_AGENT_PIN."""
    if pin := os.environ.get("CADESK_AGENT_PIN"):
        return pin
    raise RuntimeError("没有提供 UKEY 密码（环境变量 CADESK_AGENT_PIN）")


def new_pin_from_environment() -> str:
    """Unattended use and tests: CADESK_AGENT_NEW_PIN, or a file named by CADESK_AGENT_PIN_FILE."""
    if pin := os.environ.get("CADESK_AGENT_NEW_PIN"):
        return pin
    if path := os.environ.get("CADESK_AGENT_PIN_FILE"):
        return Path(path).read_text(encoding="utf-8").strip()
    raise RuntimeError("没有提供新密码（环境变量 CADESK_AGENT_NEW_PIN 或 CADESK_AGENT_PIN_FILE）")


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
                logger.info(f"任务 {job_id} 之前已收到，按当时的结果回复")
                return earlier
        except Refused as refusal:
            logger.warning(f"拒绝了任务 {job_id}：{refusal}（{refusal.code}）")
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
                _tell(f"收到解锁任务：现在为 UKEY（卡号 {serial}）设置新密码。"
                      "请输入新密码并再输入一次（输入时屏幕不显示）。")
                new_pin = await self._ask(self.new_pin, "no_new_pin", "新密码")
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
                _tell(f"收到续期任务：UKEY（卡号 {serial}）要签一份证书申请。")
                pin = await self._ask(self.current_pin, "no_pin", "UKEY 密码")
                info, csr = await self.worker.request(serial, pin,
                                                      str(job.data.get("common_name", "")))
                extra["csr"] = b64(csr)
            elif job.kind == "write_certificate":
                info = await self.worker.write_certificate(serial,
                                                           unb64(job.data["certificate"]))
        except TokenError as error:
            code = "wrong_token" if error.code == "token_not_found" else error.code
            logger.warning(f"任务 {job.id} 未完成：{error}（{code}）")
            return {"id": job.id, "ok": False, "code": code, "message": str(error)}
        logger.info(f"任务 {job.id}（{KIND_LABELS.get(job.kind, job.kind)}）已在 UKEY "
                    f"{info.serial} 上完成")
        return {"id": job.id, "ok": True, "kind": job.kind, "token": info.to_json(), **extra}

    async def _ask(self, prompt: NewPin, code: str, what: str) -> str:
        try:
            return await asyncio.to_thread(prompt)  # a person may take a while
        except (RuntimeError, OSError, EOFError) as error:
            raise TokenError(code, f"没有得到{what}：{error}") from None
