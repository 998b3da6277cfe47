"""A paid 制证 or 续期 whose token step failed or expired moves on: 重新制证 / 重新续期 queue the
step that stopped again (a certificate already issued is only written), on real SoftHSM2 tokens
run by in-process agents; the UKEY is read back with pkcs11-tool and openssl. Each refusal says
why, and 完成 / 待自取 wait until the certificate is written."""

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy import func, select, update

from bot.samples import fake_uscc
from bot.services.agents.so_pins import initial_user_pin
from bot.services.messages import Account
from storage.models import Certificate, OrderEvent, TokenJob, utcnow
from tests.support.applicant import bind_verified
from tests.support.certificate_world import (
    FACTORY_SO_PIN,
    MASTER_HEX,
    TECHNICIAN,
    LocalAgent,
    World,
    blank_ukey,
    make_world,
    openssl,
    token_certificate_pem,
)
from tests.support.helpers import MakeRuntime
from tests.support.softhsm import SoftToken, softhsm, unplugged


@pytest.fixture
def ukeys() -> Iterator[Path]:
    """SoftHSM2's configuration: its token directory is where UKEYs are plugged in."""
    with softhsm() as config:
        yield config


@pytest.fixture
async def world(make_runtime: MakeRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                ukeys: Path) -> AsyncIterator[World]:
    world = await make_world(make_runtime, tmp_path, monkeypatch)
    yield world
    await world.close()


def after_job(agent: LocalAgent, count: int, then: Callable[[], object]) -> None:
    """``then()`` runs once, right after the agent's ``count``-th next job ran on the token and
    before its answer reaches the bot (the UKEY pulled out, the PC going offline...)."""
    run, seen = agent.runner.run, 0

    async def counting(job: Any) -> dict[str, Any]:
        nonlocal seen
        result = await run(job)
        seen += 1
        if seen == count:
            agent.runner.run = run  # type: ignore[method-assign]
            then()
        return result

    agent.runner.run = counting  # type: ignore[method-assign]


async def issued(world: World) -> tuple[str, SoftToken, str]:
    """A 新办 order made into a UKEY by 制证; its number, the token and the initial PIN."""
    token = blank_ukey("hall-ukey")
    await world.agent(hall=True)
    number = await world.paid_certificate_order()
    await world.staff(f"制证 {number}")
    await world.settle()
    order = await world.order(number)
    return number, token, initial_user_pin(bytes.fromhex(MASTER_HEX), token.serial, order.id)


async def paid_renewal(world: World) -> str:
    """续期 read off the key, confirmed, approved and paid (the request follows at once)."""
    await world.say("续期")
    await world.settle()
    number = world.told()[-1].split("订单号：")[1].split()[0]
    assert "已提交续期订单" in (await world.say(f"确认续期 {number}"))[0]
    assert "已通过" in (await world.staff(f"通过 {number}"))[0]
    await world.staff(f"收款 {number}")
    await world.settle()
    return number


def serial_on(token: SoftToken, path: Path) -> str:
    cert = x509.load_pem_x509_certificate(token_certificate_pem(token, path).read_bytes())
    return f"{cert.serial_number:x}"


async def events(world: World, number: str) -> list[OrderEvent]:
    order = await world.order(number)
    async with world.runtime.db.transaction() as session:
        return list((await session.scalars(select(OrderEvent).where(
            OrderEvent.order_id == order.id).order_by(OrderEvent.id))).all())


async def certificates(world: World) -> int:
    async with world.runtime.db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(Certificate)) or 0)


async def expire_jobs(world: World) -> None:
    """The job lifetime has passed (the agent stayed offline): the bot marks them expired."""
    async with world.runtime.db.transaction() as session:
        await session.execute(update(TokenJob).where(TokenJob.status.in_(("queued", "sent")))
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert await world.runtime.hub.expire_due() >= 1


async def test_a_renewal_whose_job_fails_after_payment_is_retried_to_a_written_certificate(
        world: World, tmp_path: Path) -> None:
    _, token, pin = await issued(world)
    old_serial = serial_on(token, tmp_path / "old.pem")
    pc = await world.agent(hall=False, token_pin="999999")  # the person types a wrong PIN
    renewal = await paid_renewal(world)

    failed = world.told()[-1]
    assert "UKEY 密码不正确" in failed
    assert f"重新续期 {renewal}" in failed  # the notice names what works
    assert "联系技术人员" not in failed
    assert (await world.order(renewal)).status == "paid"
    assert serial_on(token, tmp_path / "still.pem") == old_serial
    [refused] = await world.staff(f"完成 {renewal}")  # no certificate written: not closed
    assert "还没有写入 UKEY" in refused
    assert f"重新续期 {renewal}" in refused
    assert (await world.order(renewal)).status == "paid"

    pc.runner.current_pin = lambda: pin  # the right PIN this time
    [retried] = await world.say(f"重新续期 {renewal}")
    assert f"已重新安排续期订单 {renewal}" in retried
    assert "输入 UKEY 密码" in retried
    await world.settle()

    order = await world.order(renewal)
    assert order.status == "completed"
    new_serial = serial_on(token, tmp_path / "new.pem")
    assert new_serial == order.certificate_serial != old_serial
    assert openssl("verify", "-CAfile", str(world.ca_pem()),
                   str(tmp_path / "new.pem")).strip().endswith(": OK")
    assert "已完成" in world.told()[-1]
    assert token.login_works(pin)
    assert any(f"{world.applicant} 重新安排了续期订单 {renewal}" in t
               for t in world.told(TECHNICIAN))
    [retry] = [e for e in await events(world, renewal) if e.event == "token_retry"]
    assert retry.actor == str(world.applicant)
    [history] = await world.staff(f"历史 {renewal}")
    assert "重新安排 UKEY 任务" in history
    assert "写入证书" in history
    [again] = await world.say(f"重新续期 {renewal}")
    assert "已经写入 UKEY" in again


async def test_a_renewal_whose_write_failed_is_only_written_again(
        world: World, ukeys: Path, tmp_path: Path) -> None:
    _, token, pin = await issued(world)
    pc = await world.agent(hall=False, token_pin=pin)
    await world.say("续期")
    await world.settle()
    number = world.told()[-1].split("订单号：")[1].split()[0]
    await world.say(f"确认续期 {number}")
    await world.staff(f"通过 {number}")
    with ExitStack() as pulled:
        # the request is signed, then the UKEY is pulled out before the certificate is written
        after_job(pc, 1, lambda: pulled.enter_context(unplugged(ukeys)))
        await world.staff(f"收款 {number}")
        await world.settle()
        assert "请确认已插好" in world.told()[-1]
        assert f"重新续期 {number}" in world.told()[-1]
    issued_serial = (await world.order(number)).certificate_serial
    made = await certificates(world)

    [retried] = await world.staff(f"重新续期 {number}")  # plugged in again
    assert "写入证书" in retried
    assert any("技术人员已重新安排您的续期订单" in t for t in world.told())
    await world.settle()
    assert (await world.order(number)).status == "completed"
    assert serial_on(token, tmp_path / "written.pem") == issued_serial
    assert await certificates(world) == made  # no second certificate was issued
    [retry] = [e for e in await events(world, number) if e.event == "token_retry"]
    assert (retry.actor, retry.detail["kind"]) == (str(TECHNICIAN), "write_certificate")


async def test_a_failed_personalisation_is_made_again(world: World, tmp_path: Path) -> None:
    token = blank_ukey("hall-ukey")
    hall = await world.agent(hall=True)
    hall.runner.factory_so_pin = None  # agent.toml lost its factory SO PIN
    number = await world.paid_certificate_order()
    await world.staff(f"制证 {number}")
    await world.settle()
    failed = world.told(TECHNICIAN)[-1]
    assert "制证失败" in failed
    assert f"重新制证 {number}" in failed
    [waits] = await world.staff(f"待自取 {number}")
    assert "还没有制证" in waits
    assert token.login_works("000000")  # untouched

    hall.runner.factory_so_pin = FACTORY_SO_PIN
    [retried] = await world.staff(f"重新制证 {number}")
    assert "已重新安排" in retried
    assert "读取 UKEY" in retried
    await world.settle()
    order = await world.order(number)
    assert f"订单 {number} 制证完成" in world.told(TECHNICIAN)[-1]
    assert serial_on(token, tmp_path / "made.pem") == order.certificate_serial
    assert token.login_works(initial_user_pin(bytes.fromhex(MASTER_HEX), token.serial, order.id))
    assert "已设为待自取" in (await world.staff(f"待自取 {number}"))[0]


async def test_a_write_that_expired_while_the_hall_agent_was_offline_is_written_again(
        world: World, tmp_path: Path) -> None:
    token = blank_ukey("hall-ukey")
    hall = await world.agent(hall=True)
    number = await world.paid_certificate_order()
    # token_info, then personalise; the hall PC goes offline before the certificate is written
    after_job(hall, 2, lambda: world.runtime.hub.disconnected(hall.agent.id))
    await world.staff(f"制证 {number}")
    await world.settle()
    order = await world.order(number)
    assert order.certificate_serial  # issued, not written

    [busy] = await world.staff(f"重新制证 {number}")  # the write still waits for the agent
    assert "还在进行" in busy
    assert f"解锁状态 {number}" in busy
    [again] = await world.staff(f"制证 {number}")  # nor a second chain on another blank UKEY
    assert "还在进行" in again
    [waits] = await world.staff(f"待自取 {number}")
    assert "还没有写入 UKEY" in waits
    assert f"重新制证 {number}" in waits

    await expire_jobs(world)
    [retried] = await world.staff(f"重新制证 {number}")
    assert "写入证书" in retried
    assert "不在线" in retried
    await hall.online()
    await world.settle()
    assert serial_on(token, tmp_path / "written.pem") == order.certificate_serial
    assert await certificates(world) == 1
    assert "已设为待自取" in (await world.staff(f"待自取 {number}"))[0]


async def test_a_retry_is_refused_with_the_reason_and_changes_nothing(world: World) -> None:
    number, _, pin = await issued(world)  # made and written
    [written] = await world.staff(f"重新制证 {number}")
    assert "已经写入 UKEY" in written
    [made] = await world.staff(f"制证 {number}")
    assert "已经写入 UKEY" in made
    [other] = await world.staff(f"重新续期 {number}")
    assert "不能重新续期" in other
    assert f"重新制证 {number}" in other
    [theirs] = await world.say(f"重新续期 {number}")  # the applicant may not 重新制证
    assert "不能重新续期" in theirs
    assert "重新制证" not in theirs
    fresh = await world.paid_certificate_order()
    [not_started] = await world.staff(f"重新制证 {fresh}")
    assert f"请发「制证 {fresh}」" in not_started
    [unknown] = await world.staff("重新制证 XB-261201-AAAA")
    assert "没有找到订单" in unknown

    pc = await world.agent(hall=False, token_pin=pin)
    await world.say("续期")
    await world.settle()
    renewal = world.told()[-1].split("订单号：")[1].split()[0]
    [draft] = await world.say(f"重新续期 {renewal}")
    assert "还没有提交" in draft
    assert "「续期」" in draft
    await world.say(f"确认续期 {renewal}")
    await world.staff(f"通过 {renewal}")
    [unpaid] = await world.staff(f"重新续期 {renewal}")
    assert "目前待支付" in unpaid
    world.runtime.hub.disconnected(pc.agent.id)  # paid while the applicant's PC is off
    await world.staff(f"收款 {renewal}")
    [busy] = await world.say(f"重新续期 {renewal}")
    assert "还在进行" in busy
    assert f"解锁状态 {renewal}" in busy
    stranger = Account("qq", "4242")
    await bind_verified(world.runtime, stranger, fake_uscc(random.Random(42)), "别的测试有限公司")
    [unseen] = await world.say(f"重新续期 {renewal}", stranger)
    assert "没有找到订单" in unseen

    for each in (number, fresh, renewal):
        assert not [e for e in await events(world, each) if e.event == "token_retry"]
    async with world.runtime.db.transaction() as session:
        request_jobs = await session.scalar(select(func.count()).select_from(TokenJob).where(
            TokenJob.kind == "request"))
    assert request_jobs == 1  # the one queued at payment, nothing more


async def test_two_retries_at_once_queue_the_step_once(world: World) -> None:
    await issued(world)
    pc = await world.agent(hall=False, token_pin="999999")
    renewal = await paid_renewal(world)  # the request failed: wrong PIN
    world.runtime.hub.disconnected(pc.agent.id)  # what is queued stays queued
    replies = await asyncio.gather(world.staff(f"重新续期 {renewal}"),
                                   world.say(f"重新续期 {renewal}"))
    [loser] = [r for [r] in replies if "已重新安排" not in r]  # one of the two won
    assert any(why in loser for why in ("刚被", "还在进行")), loser  # the other is told so
    assert len([e for e in await events(world, renewal) if e.event == "token_retry"]) == 1
    async with world.runtime.db.transaction() as session:
        queued = await session.scalar(select(func.count()).select_from(TokenJob).where(
            TokenJob.kind == "request", TokenJob.status == "queued"))
    assert queued == 1
