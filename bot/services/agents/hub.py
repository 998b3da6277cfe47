"""Running token jobs through key agents: the company's own, or the service hall's.

Approving an unlock queues a ``token_info`` job; its answer names the token, and a
``reset_pin`` job follows with that token's SO PIN, derived from the master secret and sealed
to the agent that will run it, only when that token is on record for the order's company
(``ukeys``): a serial not on record waits for a technician's 确认解锁, a serial of another
company stops the unlock for good. Every job is signed for the one agent it is sent to.
Certificate orders (制证, 续期) chain their own jobs through
``CertificateSteps`` (bot/services/certificates.py). Results go into the order's event log;
success moves the order on, failure is told to the applicant and the technicians. Jobs expire.
"""

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from loguru import logger

from bot.config import Settings
from bot.domain.lifecycle import FINAL, Event, OrderStatus, OrderType, status_label
from bot.domain.order_log import TOKEN_JOB_NAMES
from bot.key_agent.protocol import HALL, Refused, b64, check_proof, result_problem
from bot.services.agents.hellos import HelloGuard
from bot.services.agents.registry import AgentRefused, AgentRegistry, agent_company
from bot.services.agents.so_pins import initial_user_pin, load_master, so_pin_for
from bot.services.agents.ukeys import UkeyRefused, require_on_record, what_was_read, whose
from bot.services.agents.ukeys import record as record_ukey
from bot.services.centre import please_contact
from bot.services.filing import move_order, note_order
from bot.services.messages import Reply
from bot.services.notify import Notice, NoticeKind, Notifier, applicant_notice
from storage.db import Database
from storage.models import Agent, Order, TokenJob, utcnow
from storage.repositories import Agents, Orders, TokenJobs, Ukeys
from storage.repositories.token_jobs import OPEN

Send = Callable[[dict[str, Any]], Awaitable[None]]
Close = Callable[[], Awaitable[None]]
Route = int | str  # a company's id, or HALL for the service hall's agents


# a job its agent may still answer: sent, or expired/withdrawn before the answer came
ANSWERABLE = ("sent", "expired", "withdrawn")
# the order's status in which a job's result moves it on (a late one too)
_WAITS = {(OrderType.UNLOCK, "token_info"): OrderStatus.APPROVED,
          (OrderType.RENEWAL, "token_info"): OrderStatus.DRAFT}
_AGAIN = {OrderType.CERTIFICATE: "重新制证", OrderType.RENEWAL: "重新续期",
          OrderType.UNLOCK: "重新解锁"}
# what a token went through when a job of this kind succeeded
_LATE_TOKEN = {
    "token_info": "只读取了 UKEY（卡号 {serial}），UKEY 没有改动",
    "personalise": ("UKEY {serial} 已被初始化（管理员 PIN 已从出厂值改为派生值，密钥对已在 UKEY 上"
                    "生成），但证书没有签发：它已不是空白 UKEY，不能再当空白 UKEY 制证"),
    "request": "UKEY {serial} 用原有密钥签出了证书请求，UKEY 本身没有改动，新证书没有签发",
    "write_certificate": "证书已写入 UKEY {serial}",
}


def route_of(agent: Agent) -> Route:
    return HALL if agent.hall else agent.company_id  # type: ignore[return-value]


@dataclass
class Step:
    """What follows a job's result: the applicant's notice (chat, and mail when ``mail``), a
    line for the staff, chat-only words for the applicant (never mailed: an initial PIN)."""

    notice: Notice | None = None
    staff: str | None = None
    private: list[Reply] = field(default_factory=list)
    mail: bool = True


class JobSteps(Protocol):
    async def after(self, session: Any, order: Order, job: TokenJob,
                    message: dict[str, Any]) -> Step: ...


class AgentHub:
    def __init__(self, settings: Settings, db: Database, registry: AgentRegistry,
                 notifier: Notifier) -> None:
        self.settings = settings
        self.db = db
        self.registry = registry
        self.notifier = notifier
        self.online: dict[int, tuple[Route, Send]] = {}  # agent id → (route, send)
        self._closers: dict[int, Close] = {}
        # [cluster]: whom the agents connected to any process serve, as ``sync`` last read
        self.elsewhere: set[Route] = set()
        self.certificate_steps: JobSteps | None = None  # set by the runtime when [pki] is on
        self.hellos = HelloGuard(notifier)  # refused hellos: per-address limit, staff told

    # --- connections ------------------------------------------------------------------------
    async def hello(self, agent_id: object, challenge: str, proof: str) -> Agent:
        """The agent that proved its key, or ``AgentRefused``. ``agent_id`` is as the caller
        sent it: anything but a whole number a database can hold is an unknown agent."""
        if isinstance(agent_id, str) and agent_id.isascii() and agent_id.isdigit():
            agent_id = int(agent_id)
        if isinstance(agent_id, bool) or not isinstance(agent_id, int) or not (
                0 < agent_id < 2**63):
            logger.warning("agent hello refused: not an agent id")
            raise AgentRefused("unknown_agent", "未绑定的密钥代理")
        async with self.db.transaction() as session:
            agent = await Agents(session).get(agent_id)
            try:
                if agent is None:
                    raise AgentRefused("unknown_agent", "未绑定的密钥代理")
                if agent.revoked_at is not None:
                    raise AgentRefused("revoked", "该密钥代理已被吊销")
                check_proof(agent.identity_key, challenge, proof)
            except (AgentRefused, Refused) as refusal:
                logger.warning(f"agent #{agent_id} refused at hello: {refusal.code}")
                raise AgentRefused(refusal.code, str(refusal)) from None
            agent.last_seen_at = utcnow()
            return agent

    async def connected(self, agent: Agent, send: Send, close: Close) -> None:
        self.online[agent.id] = (route_of(agent), send)
        self._closers[agent.id] = close
        logger.info(f"agent #{agent.id} online")
        await self.deliver(route_of(agent))

    def disconnected(self, agent_id: int) -> None:
        self.online.pop(agent_id, None)
        self._closers.pop(agent_id, None)
        logger.info(f"agent #{agent_id} offline")

    async def cut_off(self, agent_id: int) -> None:
        """A revoked agent loses its connection now; it is refused when it comes back."""
        if close := self._closers.get(agent_id):
            await close()

    async def sync(self) -> None:
        """[cluster], every ``agent_poll_seconds``: the agents connected here are marked seen,
        and those connected to other processes learnt (``company_online``); what another
        process did for the agents here follows — a job queued there goes out now, an agent
        revoked there loses its connection. (A job queued in this process goes at once:
        ``deliver`` after its commit.)"""
        now = utcnow()
        fresh = now - timedelta(seconds=3 * self.settings.cluster.agent_poll_seconds)
        async with self.db.transaction() as session:
            agents = Agents(session)
            revoked = await agents.revoked_among(list(self.online)) if self.online else []
            if self.online:
                await agents.seen(list(self.online), now)
            self.elsewhere = {HALL if hall else company_id
                              for hall, company_id in await agents.seen_since(fresh)}
        for agent_id in revoked:
            await self.cut_off(agent_id)
            self.disconnected(agent_id)
        for route in {route for route, _ in self.online.values()}:
            await self.deliver(route, resend=False)  # what was sent is not sent again

    def company_online(self, route: Route) -> bool:
        """Is an agent of this company (or, for HALL, of the service hall) connected, here or
        ([cluster]) to another process as last learnt?"""
        return route in self.elsewhere or any(r == route for r, _ in self.online.values())

    # --- jobs -------------------------------------------------------------------------------
    async def start_unlock(self, order: Order) -> bool:
        """Queue the first job of an approved unlock; True when an agent is there to run it."""
        return await self.start(order, "token_info", None)

    async def start(self, order: Order, kind: str, serial: str | None, *,
                    hall: bool = False) -> bool:
        """Queue a job on its own; True when an agent is there to run it."""
        async with self.db.transaction() as session:
            await self.queue(session, order, kind, serial, hall=hall)
        route: Route = HALL if hall else order.company_id
        await self.deliver(route)
        return self.company_online(route)

    async def retry(self, order: Order, actor: str) -> bool:
        """Start an unlock again after a failure or expiry; False while one is still open."""
        async with self.db.transaction() as session:
            if await TokenJobs(session).open_for_order(order.id, utcnow()):
                return False
            logger.info(f"unlock of {order.number} retried by {actor}")
        await self.start_unlock(order)
        return True

    async def queue(self, session: Any, order: Order, kind: str, serial: str | None, *,
                    hall: bool = False, data: dict[str, Any] | None = None) -> None:
        """Add a job for the order's company agent (or the hall's), in the caller's transaction;
        ``deliver`` sends it after the commit. A job that changes a token is refused
        (``UkeyRefused``) unless the token is on record for the order's company."""
        await require_on_record(session, order.company_id, serial, kind)
        minutes = self.settings.agents.job_lifetime_minutes
        session.add(TokenJob(id=b64(secrets.token_bytes(15)), order_id=order.id,
                             company_id=order.company_id, kind=kind, token_serial=serial,
                             hall=hall, data=data,
                             expires_at=utcnow() + timedelta(minutes=minutes)))

    async def deliver(self, route: Route, *, resend: bool = True) -> None:
        """Send the open jobs of a company (or of the hall) to its agents; a job already sent
        goes again, unchanged, to the agent it was sealed for (unless not ``resend``)."""
        outgoing: list[tuple[Send, dict[str, Any]]] = []
        company_id = None if route == HALL else int(route)
        async with self.db.transaction() as session:
            jobs = await TokenJobs(session).due_for_agents(company_id, utcnow())
            for job in jobs:
                if job.status == "sent":
                    if resend and job.agent_id in self.online and job.signed:
                        outgoing.append((self.online[job.agent_id][1], job.signed))
                    continue
                agent_id = next((a for a, (r, _) in self.online.items() if r == route), None)
                if agent_id is None:
                    continue
                agent = await Agents(session).get(agent_id)
                if agent is None or agent.revoked_at is not None:
                    continue
                job.signed = self._sign(job, agent)
                job.agent_id, job.status = agent.id, "sent"
                outgoing.append((self.online[agent.id][1], job.signed))
        for send, signed in outgoing:
            try:
                await send({"type": "job", "job": signed})
            except Exception as error:  # the agent vanished: the job stays sent, resent later
                logger.warning(f"sending job {signed['id']} failed: {error}")

    def _sign(self, job: TokenJob, agent: Agent) -> dict[str, Any]:
        """Signed for this agent; PINs are derived now and exist only sealed inside the job."""
        so_pin = user_pin = None
        if job.kind in ("reset_pin", "personalise"):
            assert job.token_serial
            master = load_master(self.settings.agents.so_master_file)
            so_pin = so_pin_for(master, job.token_serial)
            if job.kind == "personalise":
                user_pin = initial_user_pin(master, job.token_serial, job.order_id)
        remaining = (job.expires_at - utcnow()).total_seconds()
        return self.registry.bot_key.job(
            agent=str(agent.id), kind=job.kind, company=agent_company(agent),
            token_serial=job.token_serial,
            agent_sealing=agent.sealing_key, lifetime_seconds=remaining, so_pin=so_pin,
            user_pin=user_pin, data=job.data, job_id=job.id)

    async def result(self, agent_id: int, message: dict[str, Any]) -> None:
        """An agent's answer: logged on the order, then the next step. Only the agent the job
        was sent to may answer it, while it is sent, or after the sweeper expired it (the
        person typed the PIN late: the token did it all the same) or withdrew it."""
        async with self.db.transaction() as session:
            job_id = message.get("id") if isinstance(message, dict) else None
            job = await TokenJobs(session).locked(job_id) if isinstance(job_id, str) else None
            if job is None or job.agent_id != agent_id or job.status not in ANSWERABLE:
                logger.warning(f"agent #{agent_id}: unexpected result for {str(job_id)[:40]}")
                return
            if problem := result_problem(message, job.kind):
                # the job's own agent answered nonsense: a failure, so the order can move on
                logger.warning(f"agent #{agent_id}: malformed result for job {job.id}: {problem}")
                message = {"id": job.id, "ok": False, "code": "malformed_result",
                           "message": "密钥代理的回复不完整，没有完成这一步"}
            ok = bool(message.get("ok"))
            token = message.get("token") or {}
            was = job.status
            late = was != "sent"
            job.status = ("done_late" if late else "done") if ok else "failed"
            job.finished_at = utcnow()
            job.result = {k: v for k, v in message.items() if k in ("ok", "code", "message",
                                                                     "kind", "token", "csr")}
            order = await Orders(session).by_id(job.order_id)
            assert order is not None
            detail = {"job": job.id, "kind": job.kind, "ok": ok, "code": message.get("code"),
                      "token_serial": token.get("serial"), "pin": token.get("pin")}
            if late:
                detail["late"] = was  # expired or withdrawn before the answer came
            note_order(session, order, f"agent:{agent_id}", Event.TOKEN_JOB,
                       reason=message.get("message"), detail=detail)
            if late:
                step = await self._late(session, order, job, was, message, agent_id)
            elif order.type is OrderType.UNLOCK:
                step = await self._unlock_step(session, order, job, message, agent_id)
            elif self.certificate_steps is not None:
                step = await self.certificate_steps.after(session, order, job, message)
            else:
                step = Step()
            if step.notice:  # chat, and mail too where the step says so
                notice = step.notice if step.mail else Notice(step.notice.replies, "", "")
                await self.notifier.notify_applicant(session, order, notice)
            if step.private:
                await self.notifier.notify_applicant(
                    session, order, Notice(step.private, "", "", private=True))
            if step.staff:
                await self.notifier.notify_staff(session, step.staff, order.id)
            route: Route = HALL if job.hall else order.company_id
        logger.info(f"job {job.id} ({job.kind}) {job.status} on agent #{agent_id}")
        await self.notifier.deliver()
        await self.deliver(order.company_id)
        if route == HALL:
            await self.deliver(HALL)

    async def _late(self, session: Any, order: Order, job: TokenJob, was: str,
                    message: dict[str, Any], agent_id: int) -> Step:
        """A result that came after its job expired (or was withdrawn): the token did what it
        reports, so the order hears the truth. A success moves the order on as an on-time one
        would when nothing newer was queued since and the order still waits for it; a late PIN
        reset completes the unlock and withdraws a retry's jobs (the token is not reset twice
        unasked). Otherwise it is recorded and the staff told what the token went through."""
        number, name = order.number, TOKEN_JOB_NAMES[job.kind]
        serial = (message.get("token") or {}).get("serial") or job.token_serial or "未知"
        head = (f"订单 {number} 的「{name}」任务{'已过期' if was == 'expired' else '已撤回'}，"
                f"密钥代理 {agent_id} 随后才送回结果")
        if not message.get("ok"):
            return Step(staff=f"{head}：失败（{message.get('code')}）{message.get('message')}。"
                              "订单状态不变。")
        jobs = await TokenJobs(session).of_order(order.id)
        newer = [j for j in jobs if j.created_at > job.created_at and j.id != job.id]
        if order.type is OrderType.UNLOCK and job.kind == "reset_pin":
            return await self._late_reset(session, order, newer, head, was, serial, agent_id)
        waits = _WAITS.get((order.type, job.kind), OrderStatus.PAID)
        if was == "expired" and not newer and order.status is waits:
            if order.type is OrderType.UNLOCK:
                step = await self._unlock_step(session, order, job, message, agent_id)
            elif self.certificate_steps is not None:
                step = await self.certificate_steps.after(session, order, job, message)
            else:
                step = Step()
            then = f"\n{step.staff}" if step.staff else ""
            step.staff = f"{head}（成功），已按原流程继续。{then}"
            return step
        again = _AGAIN.get(order.type, "")
        what = _LATE_TOKEN.get(job.kind, "").format(serial=serial)
        state = status_label(order.type, order.status)
        return Step(staff=f"{head}（成功）：{what}。订单目前{state}"
                          + ("，之后已安排了新的任务" if newer else "") + "，没有按这个结果继续。"
                          + (f"需要时请核对 UKEY 后发送「{again} {number}」。"
                             if again and order.status not in FINAL else ""))

    async def _late_reset(self, session: Any, order: Order, newer: Sequence[TokenJob],
                          head: str, was: str, serial: str, agent_id: int) -> Step:
        """The PIN WAS reset: the unlock completes (if it still waits), a retry's open jobs are
        withdrawn, the applicant and the staff told it came late."""
        number = order.number
        withdrawn = [j for j in newer if j.status in OPEN]
        for j in withdrawn:
            j.status, j.finished_at = "withdrawn", utcnow()
        if withdrawn:
            note_order(session, order, f"agent:{agent_id}", Event.TOKEN_JOB,
                       reason="UKEY 密码已重置，撤回重新解锁的任务",
                       detail={"withdrawn": [j.id for j in withdrawn]})
        undone = ("随后「重新解锁」安排的任务已撤回，UKEY 不会因此再被重置。"
                  if withdrawn else "")
        if was != "expired" or order.status is not OrderStatus.APPROVED:
            state = status_label(order.type, order.status)
            return Step(staff=f"{head}：UKEY {serial} 的密码已被重置（电脑前的人输入了新密码）。"
                              f"订单目前{state}，未变更。{undone}")
        move_order(session, order, f"agent:{agent_id}", Event.COMPLETE,
                   reason="UKEY 密码已重置（结果在任务过期后送达）")
        text = (f"您的订单 {number}（证书解锁）已完成：UKEY 密码其实已经重置了——电脑上的密钥代理"
                "在任务过期之后才把结果发回来。请使用您刚才在电脑上设置的新密码。" + undone)
        return Step(Notice([text], f"订单 {number}：UKEY 密码已重置（结果迟到）", text),
                    staff=f"{head}：UKEY 密码已重置，订单已完成，已通知申请人。{undone}")

    async def _unlock_step(self, session: Any, order: Order, job: TokenJob,
                           message: dict[str, Any], agent_id: int) -> Step:
        ok = bool(message.get("ok"))
        if ok and job.kind == "token_info":
            return await self._token_read(session, order, message.get("token") or {}, agent_id)
        if ok:
            move_order(session, order, f"agent:{agent_id}", Event.COMPLETE,
                       reason="UKEY 密码已重置")
            return Step(applicant_notice(order, NoticeKind.UNLOCKED, self.settings))
        return Step(applicant_notice(order, NoticeKind.UNLOCK_FAILED, self.settings,
                                     reason=str(message.get("message", ""))),
                    staff=f"订单 {order.number} 的远程解锁失败（{message.get('code')}）："
                          f"{message.get('message')}")

    async def _token_read(self, session: Any, order: Order, token: dict[str, Any],
                          agent_id: int) -> Step:
        """An unlock's token was read: reset it when it is the company's UKEY on record; wait
        for a technician when it is on no record; stop for good when it is another company's."""
        serial = str(token.get("serial"))
        ukey = await Ukeys(session).by_serial(serial)
        company = order.company
        whom = f"{company.name}（{company.uscc}）" if company else "（未知单位）"
        if ukey is not None and ukey.company_id == order.company_id:
            await self.queue(session, order, "reset_pin", serial)
            return Step()
        read = what_was_read(token)
        if ukey is None:
            return Step(applicant_notice(order, NoticeKind.UKEY_UNRECORDED, self.settings,
                                         reason=serial),
                        staff=f"订单 {order.number}（{whom}）的远程解锁暂停：读到的 UKEY 没有登记。"
                              f"\n{read}\n核实这是该单位的 UKEY 后发送「确认解锁 {order.number}」"
                              "继续重置密码。")
        note_order(session, order, f"agent:{agent_id}", Event.TOKEN_MISMATCH,
                   reason=f"UKEY {serial} 登记在 {whose(ukey)} 名下",
                   detail={"token_serial": serial, "owner_company_id": ukey.company_id})
        logger.warning(f"unlock {order.number}: agent #{agent_id} read token {serial}, "
                       f"on record for company #{ukey.company_id}, not #{order.company_id}")
        return Step(applicant_notice(order, NoticeKind.UKEY_NOT_OURS, self.settings,
                                     reason=serial),
                    staff=f"订单 {order.number}（{whom}）的远程解锁已停止：密钥代理 {agent_id} "
                          f"读到的 UKEY 卡号 {serial} 登记在 {whose(ukey)} 名下，没有重置密码。"
                          f"\n{read}\n请与申请单位核实（可能插错了 UKEY，或有人冒用）。")

    async def confirm_unlock(self, order: Order, actor: str) -> str:
        """确认解锁: the serial the unlock's token_info read goes on record for the order's
        company (``confirmed``) and its reset_pin is queued. Refused for another's serial."""
        async with self.db.transaction() as session:
            jobs = await TokenJobs(session).of_order(order.id)
            read = [j for j in jobs if j.kind == "token_info" and j.status == "done"]
            if not read:
                raise UkeyRefused(f"订单 {order.number} 还没有读到 UKEY，无法确认；"
                                  f"「解锁状态 {order.number}」可查看进度。")
            if any(j.kind == "reset_pin" and j.status in (*OPEN, "done", "done_late")
                   for j in jobs):
                raise UkeyRefused(f"订单 {order.number} 已经在重置密码了，"
                                  f"「解锁状态 {order.number}」可查看进度。")
            serial = str(((read[-1].result or {}).get("token") or {}).get("serial"))
            assert order.company is not None
            _, new = await record_ukey(session, serial, order.company, "confirmed", actor)
            note_order(session, order, actor, Event.TOKEN_CONFIRMED,
                       reason=f"UKEY {serial}" + ("" if new else "（已在登记中）"),
                       detail={"token_serial": serial})
            await self.queue(session, order, "reset_pin", serial)
        logger.info(f"unlock {order.number}: token {serial} confirmed by {actor}")
        await self.deliver(order.company_id)
        where = ("已交给申请人的密钥代理" if self.company_online(order.company_id)
                 else "等申请人的密钥代理上线后")
        return (f"已确认 UKEY {serial} 属于 {order.company.name}，{where}重置密码。"
                f"「解锁状态 {order.number}」可查看进度。")

    async def _waiting(self, order: Order, jobs: Sequence[TokenJob]) -> str | None:
        """What an unlock whose last job read the UKEY waits for, when it waits on the record."""
        last = jobs[-1]
        if (order.type is not OrderType.UNLOCK or order.status is not OrderStatus.APPROVED
                or last.kind != "token_info" or last.status != "done"):
            return None
        serial = str(((last.result or {}).get("token") or {}).get("serial"))
        async with self.db.transaction() as session:
            ukey = await Ukeys(session).by_serial(serial)
        if ukey is None:
            return (f"· 读到的 UKEY（卡号 {serial}）还没有登记在本单位名下：等待技术人员核对后"
                    f"「确认解锁 {order.number}」。")
        if ukey.company_id != order.company_id:
            return (f"· 读到的 UKEY（卡号 {serial}）登记在其他单位名下：已停止，不会重置密码。"
                    "请插上本单位自己的 UKEY；需要核实登记的，"
                    + please_contact(self.settings))
        return None

    async def expire_due(self) -> int:
        """Open jobs whose time is up become ``expired``; each order's applicant (unlock,
        renewal) and the staff hear it with what to do next, in the same transaction."""
        async with self.db.transaction() as session:
            due = await TokenJobs(session).overdue(utcnow())
            by_order: dict[int, list[TokenJob]] = {}
            for job in due:
                job.status, job.finished_at = "expired", utcnow()
                by_order.setdefault(job.order_id, []).append(job)
            for order_id, jobs in by_order.items():
                order = await Orders(session).by_id(order_id)
                assert order is not None
                for job in jobs:
                    note_order(session, order, "system", Event.TOKEN_JOB, reason="任务过期未完成",
                               detail={"job": job.id, "kind": job.kind, "ok": False,
                                       "code": "expired", "expired": True})
                step = self._expired(order, jobs)
                if step.notice:
                    await self.notifier.notify_applicant(session, order, step.notice)
                if step.staff:
                    await self.notifier.notify_staff(session, step.staff, order.id)
        if due:
            logger.info(f"{len(due)} token job(s) expired")
            await self.notifier.deliver()
        return len(due)

    def _expired(self, order: Order, jobs: Sequence[TokenJob]) -> Step:
        """Who hears that an order's jobs expired, and what they are to do."""
        number = order.number
        names = "、".join(TOKEN_JOB_NAMES[j.kind] for j in jobs)
        late = "若密钥代理之后送回结果，会照实记录并通知。"
        if order.type is OrderType.UNLOCK and order.status is OrderStatus.APPROVED:
            text = (f"您的订单 {number}（证书解锁）的远程解锁任务（{names}）已过期：电脑上的"
                    "密钥代理没有在规定时间内完成。技术人员会重新安排，届时请把 UKEY 插在电脑上"
                    "并保持「cadesk-agent run」运行。如果您刚才已经在电脑上设置了新密码，结果送达"
                    f"后会通知您。发送「解锁状态 {number}」可查看进度。")
            return Step(Notice([text], f"订单 {number}：远程解锁任务已过期", text),
                        staff=f"订单 {number} 的远程解锁任务（{names}）已过期未完成。请确认申请人"
                              f"的密钥代理在线后发送「重新解锁 {number}」。{late}")
        if order.type is OrderType.RENEWAL and order.status is OrderStatus.DRAFT:
            text = (f"续期订单 {number} 读取 UKEY 超时：密钥代理没有在规定时间内读到 UKEY。请确认 "
                    "UKEY 插好、「cadesk-agent run」在运行，然后再发送「续期」。")
            return Step(Notice([text], f"续期订单 {number}：读取 UKEY 超时", text))
        if order.type is OrderType.RENEWAL and order.status is OrderStatus.PAID:
            text = (f"续期订单 {number} 的「{names}」步骤已过期，新证书还没有写入 UKEY。技术人员会"
                    "重新安排，届时请把 UKEY 插在运行着「cadesk-agent run」的电脑上，并按提示输入 "
                    "UKEY 密码。")
            return Step(Notice([text], f"续期订单 {number}：写入新证书未完成", text),
                        staff=f"续期订单 {number} 的「{names}」任务已过期未完成。请确认申请人的"
                              f"密钥代理在线后发送「重新续期 {number}」。{late}")
        if order.type is OrderType.CERTIFICATE and order.status is OrderStatus.PAID:
            return Step(staff=f"订单 {number} 的制证任务（{names}）已过期未完成。请检查服务大厅的"
                              f"密钥代理和 UKEY，然后发送「重新制证 {number}」。{late}")
        return Step(staff=f"订单 {number} 的密钥代理任务（{names}）已过期未完成（订单目前"
                          f"{status_label(order.type, order.status)}）。{late}")

    async def describe(self, order: Order) -> str:
        """解锁状态: where an unlock order's jobs stand."""
        async with self.db.transaction() as session:
            jobs = await TokenJobs(session).of_order(order.id)
        if not jobs:
            if order.type is not OrderType.UNLOCK:
                return f"订单 {order.number} 还没有密钥代理任务。"
            return f"订单 {order.number} 还没有远程解锁任务（审核通过后才会安排）。"
        states = {"queued": "等待密钥代理上线", "sent": "密钥代理执行中", "done": "完成",
                  "failed": "失败", "expired": "已过期", "done_late": "完成（过期后才送回结果）",
                  "withdrawn": "已撤回（之前的任务已完成）"}
        what = "远程解锁" if order.type is OrderType.UNLOCK else " UKEY 任务"
        lines = [f"订单 {order.number} 的{what}："]
        for job in jobs:
            why = f"（{job.result.get('message')}）" if job.result and not job.result.get(
                "ok") else ""
            lines.append(f"· {TOKEN_JOB_NAMES[job.kind]}：{states[job.status]}{why}")
        if waiting := await self._waiting(order, jobs):
            lines.append(waiting)
        elif not self.company_online(order.company_id) and any(j.status in OPEN for j in jobs):
            lines.append("密钥代理不在线：请在插着 UKEY 的电脑上运行「cadesk-agent run」。")
        return "\n".join(lines)
