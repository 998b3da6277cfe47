"""Certificates from chat commands to the UKEY and the CRL: 制证 onto a blank SoftHSM token, 续期
from the key, 挂失 / 解挂, 吊销, a company-name mismatch refused; every claim the bot makes checked
with openssl and pkcs11-tool."""

import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, select, update

from bot.samples import fake_id_number, fake_uscc
from bot.services.agents.so_pins import initial_user_pin
from bot.services.messages import Account, Incoming
from storage.models import Certificate, Company, Crl, utcnow
from storage.repositories import Conversations
from tests.support.applicant import bind_verified
from tests.support.certificate_world import (
    MASTER_HEX,
    TECHNICIAN,
    World,
    blank_ukey,
    make_world,
    openssl,
    token_certificate_pem,
)
from tests.support.helpers import MakeRuntime
from tests.support.softhsm import SoftToken, opensc_objects, softhsm


@pytest.fixture
async def world(make_runtime: MakeRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with softhsm():
        world = await make_world(make_runtime, tmp_path, monkeypatch)
        yield world
        await world.close()


async def issue(world: World, label: str = "hall-ukey") -> tuple[str, SoftToken, str]:
    """A paid order made into a UKEY by 制证; returns order number, token and initial PIN."""
    token = blank_ukey(label)
    if not any(a.runner.factory_so_pin for a in world.agents):
        await world.agent(hall=True)
    number = await world.paid_certificate_order()
    [started] = await world.staff(f"制证 {number}")
    assert "已开始为订单" in started
    await world.settle()
    order = await world.order(number)
    pin = initial_user_pin(bytes.fromhex(MASTER_HEX), token.serial, order.id)
    return number, token, pin


async def test_issuance_onto_a_blank_ukey_is_what_openssl_and_pkcs11_tool_see(
        world: World, tmp_path: Path) -> None:
    number, token, pin = await issue(world)
    order = await world.order(number)
    assert order.token_serial == token.serial
    told = "\n".join(world.told())
    assert f"UKEY 初始密码：{pin}" in told  # in the applicant's private chat, once
    assert told.count(pin) == 1
    staff = "\n".join(world.told(TECHNICIAN))
    assert f"订单 {number} 制证完成" in staff
    assert pin not in staff

    # the key is on the token and cannot leave it; the initial PIN opens it, the factory one not
    assert token.login_works(pin)
    assert not token.login_works("000000")
    listing = opensc_objects(token, pin)
    private = listing[listing.index("Private Key Object"):].split("\n\n")[0]
    assert "never extractable" in private

    cert_pem = token_certificate_pem(token, tmp_path / "issued.pem")
    assert openssl("verify", "-CAfile", str(world.ca_pem()), str(cert_pem)).strip() \
        .endswith(": OK")
    text = openssl("x509", "-in", str(cert_pem), "-noout", "-text", "-nameopt", "utf8")
    assert "O=临沂证书测试有限公司" in text.replace(" = ", "=")
    assert f"NTRCN-{world.uscc}" in text
    assert "Digital Signature, Non Repudiation" in text
    assert "TLS Web Client Authentication" in text
    assert "Serial Number:" in text
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    assert f"{cert.serial_number:x}" == order.certificate_serial
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 365 <= days <= 366  # 证书年限 1年
    assert f"有效期至 {cert.not_valid_after_utc.astimezone(world.runtime.settings.tz):%Y-%m-%d}" \
        in told

    [shipped] = await world.staff(f"待自取 {number}")  # made, so it may be handed over
    assert "已设为待自取" in shipped


def someone_elses_certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("O=Other Co,CN=Other Co")
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7).not_valid_before(now)
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256())
            .public_bytes(Encoding.DER))


async def test_delivery_waits_for_the_ukey_and_a_used_ukey_is_refused(world: World) -> None:
    await world.agent(hall=True)
    number = await world.paid_certificate_order()
    [refused] = await world.staff(f"待自取 {number}")
    assert "还没有制证" in refused
    used = blank_ukey("used-ukey")
    used.write_certificate(someone_elses_certificate(), pin="000000")  # already in use
    await world.staff(f"制证 {number}")
    await world.settle()
    assert any("不是空白 UKEY" in t for t in world.told(TECHNICIAN))
    assert used.login_works("000000")  # untouched
    assert (await world.order(number)).certificate_serial is None


async def test_renewal_keeps_the_key_and_adds_twelve_months(world: World,
                                                             tmp_path: Path) -> None:
    _, token, pin = await issue(world)
    before = x509.load_pem_x509_certificate(
        token_certificate_pem(token, tmp_path / "before.pem").read_bytes())
    await world.agent(hall=False, token_pin=pin)  # the applicant's own PC, the same UKEY

    [reading] = await world.say("续期")
    assert "正在读取您的 UKEY" in reading
    await world.settle()
    summary = world.told()[-1]
    for label in ("项目：证书续期", "订单号：XQ-", "公司名称：临沂证书测试有限公司",
                  f"统一社会信用代码：{world.uscc}", "证书信息：", "当前截止日期："):
        assert label in summary
    renewal = re.search(r"订单号：(XQ-\S+)", summary).group(1)
    [query] = await world.say(f"查询 {renewal}")
    assert "证书信息：临沂证书测试有限公司" in query
    [submitted] = await world.say(f"确认续期 {renewal}")
    [review] = await world.staff(f"查看 {renewal}")
    assert "当前截止日期：" in review
    assert "已提交续期订单" in submitted
    assert "已通过" in (await world.staff(f"通过 {renewal}"))[0]
    assert "续期" in (await world.staff(f"收款 {renewal}"))[0]
    await world.settle()

    after = x509.load_pem_x509_certificate(
        token_certificate_pem(token, tmp_path / "after.pem").read_bytes())
    assert after.serial_number != before.serial_number
    assert after.public_key() == before.public_key()  # the key stayed on the token
    moved = after.not_valid_after_utc - before.not_valid_after_utc
    assert timedelta(days=365) <= moved <= timedelta(days=366)
    assert openssl("verify", "-CAfile", str(world.ca_pem()),
                   str(tmp_path / "after.pem")).strip().endswith(": OK")
    done = world.told()[-1]
    tz = world.runtime.settings.tz
    assert f"有效期至 {after.not_valid_after_utc.astimezone(tz):%Y-%m-%d %H:%M}" in done
    assert (await world.order(renewal)).status == "completed"
    assert token.login_works(pin)  # the PIN did not change
    [mine] = await world.say("我的证书")
    assert "已续期（由新证书接替）" in mine
    assert f"{after.serial_number:x}" in mine


async def test_renewal_is_refused_when_the_company_name_changed(world: World) -> None:
    await issue(world)
    await world.agent(hall=False, token_pin="unused")
    async with world.runtime.db.transaction() as session:
        await session.execute(update(Company).values(name="临沂证书测试集团有限公司"))
    await world.say("续期")
    await world.settle()
    refusal = world.told()[-1]
    assert "无法办理" in refusal
    assert "不一致" in refusal
    assert "新办证书" in refusal
    async with world.runtime.db.transaction() as session:
        statuses = (await session.scalars(select(Certificate.status))).all()
    assert statuses == ["active"]  # nothing issued


async def crl_text(world: World, tmp_path: Path) -> str:
    """The CRL as served, checked by openssl (signature against the CA included)."""
    assert world.runtime.certificates is not None
    path = tmp_path / "served.crl"
    path.write_bytes(await world.runtime.certificates.office.current_crl())
    text = openssl("crl", "-inform", "DER", "-in", str(path), "-noout", "-text",
                   "-CAfile", str(world.ca_pem()))
    assert "verify OK" in text
    return text


async def loss_form(world: World, kind: str, token_serial: str, cert_serial: str) -> list[str]:
    """A 挂失/解挂 filed. The company's only UKEY comes filled in (its newest certificate): then
    a different ``cert_serial`` is put in with 修改 at the summary."""
    started = await world.say(kind)
    prefilled = "【USBKEY卡号】" not in started[-1]
    if prefilled:
        assert f"卡号 {token_serial}，" in started[0], started
    replies = []
    for answer in (() if prefilled else (token_serial, cert_serial)) + (
            "王小明", fake_id_number(random.Random(9)), "13812345678"):
        replies = await world.say(answer)
    if prefilled and f"证书序列号：{cert_serial}\n" not in replies[-1]:
        assert "【证书序列号】" in (await world.say("修改 2"))[-1]
        replies = await world.say(cert_serial)
    assert "请核对" in replies[-1]
    return await world.say("确认提交")


async def second_ukey(world: World, serial: str, token_serial: str) -> str:
    """A second certificate of the company on another UKEY, recorded as a second 制证 leaves it
    (the hall's agent takes one blank UKEY at a time); its serial."""
    async with world.runtime.db.transaction() as session:
        first = await session.scalar(select(Certificate).where(Certificate.serial == serial))
        assert first is not None
        session.add(Certificate(
            serial="5ec0" + serial[4:], company_id=first.company_id, order_id=first.order_id,
            token_serial=token_serial, subject_name=first.subject_name, uscc=first.uscc,
            not_before=first.not_before, not_after=first.not_after, der=first.der))
    return "5ec0" + serial[4:]


async def test_loss_report_holds_at_once_and_release_lifts_it(world: World,
                                                               tmp_path: Path) -> None:
    number, token, _ = await issue(world)
    serial = (await world.order(number)).certificate_serial
    assert serial.upper() not in (await crl_text(world, tmp_path)).upper()

    [filed] = await loss_form(world, "挂失", token.serial, serial)
    assert "证书已立即挂失" in filed
    text = await crl_text(world, tmp_path)  # before any technician looked at it
    assert serial.upper() in text.upper()
    assert "Certificate Hold" in text
    assert (tmp_path / "data" / "pki" / "ca.crl").read_bytes() == \
        (tmp_path / "served.crl").read_bytes()  # the file is the CRL served
    loss = re.search(r"订单号：(GS-\S+)", filed).group(1)
    await world.staff(f"通过 {loss}")
    assert "Certificate Hold" in await crl_text(world, tmp_path)  # confirmed, still held

    [filed] = await loss_form(world, "解挂", token.serial, serial)
    release = re.search(r"订单号：(JG-\S+)", filed).group(1)
    assert "Certificate Hold" in await crl_text(world, tmp_path)  # not before review
    [approved] = await world.staff(f"通过 {release}")
    assert "已解挂" in approved
    assert serial.upper() not in (await crl_text(world, tmp_path)).upper()
    assert any("已解挂，恢复使用" in t for t in world.told())


async def test_a_loss_report_for_someone_elses_certificate_is_asked_again(
        world: World, tmp_path: Path) -> None:
    _, token, _ = await issue(world)
    replies = await loss_form(world, "挂失", token.serial, "abcdef")
    assert any("没有找到本单位这个序列号的证书" in r for r in replies)
    assert "【证书序列号】" in replies[-1]
    async with world.runtime.db.transaction() as session:
        held = (await session.scalars(select(Certificate).where(
            Certificate.status == "hold"))).all()
    assert held == []


async def test_revocation_is_for_good(world: World, tmp_path: Path) -> None:
    number, _, _ = await issue(world)
    serial = (await world.order(number)).certificate_serial
    [missing] = await world.staff(f"吊销 {serial}")
    assert "吊销理由" in missing
    [revoked] = await world.staff(f"吊销 {serial} 密钥泄露")
    assert "已吊销证书" in revoked
    text = await crl_text(world, tmp_path)
    assert "Key Compromise" in text
    [again] = await world.staff(f"吊销 {serial} 停止使用")
    assert "已吊销，不能再变更" in again
    async with world.runtime.db.transaction() as session:
        numbers = (await session.scalars(select(Crl.number).order_by(Crl.number))).all()
    assert numbers == sorted(set(numbers))
    assert len(numbers) >= 2  # re-signed on the change


async def test_expiry_reminders_reach_each_handler_once(world: World) -> None:
    await issue(world)
    colleague = Account("qq", "424242")
    await bind_verified(world.runtime, colleague, world.uscc, world.company_name)
    await world.say("邮箱 colleague@example.test", colleague)
    async with world.runtime.db.transaction() as session:
        await session.execute(update(Certificate).values(
            not_after=utcnow() + timedelta(days=6, hours=1)))
    office = world.runtime.certificates.office
    before = len(world.chat.sent)
    assert await office.send_reminders() == 1
    assert await office.send_reminders() == 0  # once
    reminders = world.chat.sent[before:]
    assert sorted(to for to, _ in reminders) == ["qq:31337", "qq:424242"]
    assert all("还剩 7 天" in str(r) and "续期" in str(r) for _, r in reminders)

    async with world.runtime.db.transaction() as session:  # a day later than the 1-day mark
        await session.execute(update(Certificate).values(
            not_after=utcnow() + timedelta(hours=20)))
    assert await office.send_reminders() == 1
    assert await office.send_reminders() == 0
    assert "还剩 1 天" in str(world.chat.sent[-1][1])


async def test_the_ukey_jobs_of_a_certificate_order_can_be_followed(world: World) -> None:
    number, _, _ = await issue(world)
    [status] = await world.staff(f"解锁状态 {number}")
    assert f"订单 {number} 的 UKEY 任务" in status
    for step in ("读取 UKEY：完成", "初始化 UKEY：完成", "写入证书：完成"):
        assert step in status


async def test_a_second_loss_report_is_refused_and_nothing_changes(world: World,
                                                                   tmp_path: Path) -> None:
    number, token, _ = await issue(world)
    serial = (await world.order(number)).certificate_serial
    await loss_form(world, "挂失", token.serial, serial)
    replies = await loss_form(world, "挂失", token.serial, serial)
    assert any("已挂失（暂停使用），不能挂失" in r for r in replies)
    [confirm] = await world.say("取消")
    assert "确定要放弃" in confirm
    await world.say("是")
    replies = await loss_form(world, "解挂", token.serial, serial)
    assert any("订单号：JG-" in r for r in replies)  # a held certificate may be released


async def test_without_the_ca_certificate_commands_are_not_offered(
        make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime("[agents]\nenabled = true\n")
    account = Account("qq", "5150")
    await bind_verified(runtime, account, fake_uscc(random.Random(5)), "临沂无证书测试有限公司")
    [replies] = await runtime.dialogue.handle(account, Incoming(text="帮助"))
    assert "续期" not in replies
    assert "我的订单" in replies
    for text in ("挂失", "续期", "我的证书"):
        [answer] = await runtime.dialogue.handle(account, Incoming(text=text))
        assert "暂未开通在线续期和挂失" in answer


async def test_the_crl_is_re_signed_on_schedule(world: World, tmp_path: Path) -> None:
    office = world.runtime.certificates.office
    await office.refresh_crl()  # the worker's pass at start: a CRL exists
    async with world.runtime.db.transaction() as session:
        first = await session.scalar(select(func.max(Crl.number)))
    await office.refresh_crl()  # fresh enough: nothing new
    async with world.runtime.db.transaction() as session:
        assert await session.scalar(select(func.max(Crl.number))) == first
        await session.execute(update(Crl).values(issued_at=utcnow() - timedelta(hours=1)))
    await office.refresh_crl()  # an hour old ([pki] crl_hours = 1): signed again
    async with world.runtime.db.transaction() as session:
        newest = await session.scalar(select(Crl).order_by(Crl.number.desc()).limit(1))
    assert newest.number == first + 1
    lifetime = newest.next_update - newest.issued_at  # the CRL keeps whole seconds
    assert timedelta(hours=2) - timedelta(seconds=1) < lifetime <= timedelta(hours=2)
    assert (tmp_path / "data" / "pki" / "ca.crl").read_bytes() == newest.der
    assert "verify OK" in openssl("crl", "-inform", "DER", "-in",
                                  str(tmp_path / "data" / "pki" / "ca.crl"), "-noout",
                                  "-CAfile", str(world.ca_pem()))


async def test_a_loss_report_after_renewal_holds_both_certificates_on_the_ukey(
        world: World, tmp_path: Path) -> None:
    number, token, pin = await issue(world)
    replaced = (await world.order(number)).certificate_serial
    await world.verify()
    colleague = Account("qq", "424242")
    await bind_verified(world.runtime, colleague, world.uscc, world.company_name)
    await world.verify(colleague)
    await world.agent(hall=False, token_pin=pin)
    current = (await world.order(await world.renew())).certificate_serial
    assert current != replaced

    [filed] = await loss_form(world, "挂失", token.serial, current)
    assert "这个 UKEY 上的 2 张证书" in filed
    text = (await crl_text(world, tmp_path)).upper()  # the CRL as served, checked by openssl
    assert replaced.upper() in text
    assert current.upper() in text
    assert text.count("CERTIFICATE HOLD") == 2
    told = world.told(colleague)[-1]
    assert "账号 qq:31337" in told
    assert "已立即暂停使用" in told
    assert replaced in told

    [filed] = await loss_form(world, "解挂", token.serial, replaced)  # either serial names it
    release = re.search(r"订单号：(JG-\S+)", filed).group(1)
    [approved] = await world.staff(f"通过 {release}")
    assert "已解挂" in approved
    assert replaced in approved
    assert current in approved
    text = (await crl_text(world, tmp_path)).upper()
    assert replaced.upper() not in text
    assert current.upper() not in text
    async with world.runtime.db.transaction() as session:
        rows = (await session.execute(select(Certificate.serial, Certificate.status))).all()
    statuses = dict(rows)
    assert statuses == {replaced: "superseded", current: "active"}


class Killed(BaseException):
    """The bot killed at that very point (nothing in the bot catches a BaseException)."""


async def test_an_applicants_loss_report_is_on_the_crl_even_if_the_bot_dies_before_the_file(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    number, token, _ = await issue(world)
    serial = (await world.order(number)).certificate_serial
    office = world.runtime.certificates.office
    await office.publish_crl()
    before = office.crl_file.read_bytes()

    def killed(path: Path, data: bytes) -> None:
        raise Killed

    async def killed_publishing(self: object) -> bytes:
        raise Killed

    # killed after the hold's commit: whatever publishes after it (the file, a later signing)
    monkeypatch.setattr("bot.services.certificates.office._write_atomically", killed)
    monkeypatch.setattr("bot.services.certificates.office.CertificateOffice.publish_crl",
                        killed_publishing)
    with pytest.raises(Killed):
        await loss_form(world, "挂失", token.serial, serial)
    monkeypatch.undo()
    assert office.crl_file.read_bytes() == before  # killed before the file was written
    async with world.runtime.db.transaction() as session:
        held = await session.scalar(select(Certificate).where(Certificate.serial == serial))
        newest = await session.scalar(select(Crl).order_by(Crl.number.desc()).limit(1))
    assert held.status == "hold"
    path = tmp_path / "newest.crl"
    path.write_bytes(newest.der)
    text = openssl("crl", "-inform", "DER", "-in", str(path), "-noout", "-text",
                   "-CAfile", str(world.ca_pem()))
    assert "verify OK" in text
    assert serial.upper() in text.upper()
    assert "Certificate Hold" in text
    assert "Certificate Hold" in await crl_text(world, tmp_path)  # GET /pki/crl serves it

# --- the 挂失 form (issue 13) -----------------------------------------------------------------
async def test_a_company_with_one_ukey_is_not_asked_its_serials(world: World) -> None:
    number, token, _ = await issue(world)
    serial = (await world.order(number)).certificate_serial
    started = await world.say("挂失")
    assert f"只有一个可以挂失的 UKEY（卡号 {token.serial}，证书序列号 {serial}）" in started[0]
    assert "【经办人姓名】" in started[-1]
    assert "【USBKEY卡号】" not in started[-1]
    # the clerk's last order (the 新办) is offered: one reply each
    assert "沿用上次：王小明（回复 1 沿用）" in started[-1]
    for _ in range(3):
        summary = (await world.say("1"))[-1]
    assert f"1. USBKEY卡号：{token.serial}" in summary
    assert f"2. 证书序列号：{serial}" in summary
    [filed] = await world.say("确认提交")
    assert "证书已立即挂失" in filed
    assert serial in filed


async def test_my_certificates_inside_the_loss_form_lists_them_and_asks_again(
        world: World) -> None:
    """Issue 13: the prompt suggests 「我的证书」; it was saved as the USBKEY卡号."""
    number, token, _ = await issue(world)
    await second_ukey(world, (await world.order(number)).certificate_serial, "SECOND0001")
    assert "【USBKEY卡号】" in (await world.say("挂失"))[-1]  # two UKEYs: asked
    replies = await world.say("我的证书")
    assert "的证书（2 张）" in replies[0]
    assert token.serial in replies[0]
    assert "【USBKEY卡号】" in replies[-1]  # asked again, not answered
    async with world.runtime.db.transaction() as session:
        conversation = await Conversations(session).get(world.applicant.platform,
                                                        world.applicant.user_id)
    assert conversation is not None
    assert "ukey_serial" not in conversation.state["values"]
    assert "【证书序列号】" in (await world.say(token.serial))[-1]


async def test_the_ukey_number_is_compared_in_any_case_and_a_mismatch_asks_for_it(
        world: World) -> None:
    """Issue 13: 卡号 typed in another case was refused; the refusal named 【USBKEY卡号】 but
    asked 【证书序列号】 again, where 修改 1 was then refused as a serial."""
    number, token, _ = await issue(world)
    serial = (await world.order(number)).certificate_serial
    other = await second_ukey(world, serial, "SECOND0001")
    typed = token.serial.swapcase()
    assert typed != token.serial  # SoftHSM serials are hex: letters in them
    for answer in ("挂失", typed, other, "1", "1", "1"):  # the other UKEY's certificate
        replies = await world.say(answer)
    assert "请核对" in replies[-1]
    replies = await world.say("确认提交")
    assert "【USBKEY卡号】与证书" in replies[0]
    assert "请输入【USBKEY卡号】" in replies[-1]
    assert "请输入【证书序列号】" in (await world.say("修改 2"))[-1]
    assert "请输入【USBKEY卡号】" in (await world.say("修改 1"))[-1]
    await world.say(typed)  # the 卡号 was right all along, in another case
    summary = (await world.say("修改 2"))[-1]
    assert "【证书序列号】" in summary
    assert "请核对" in (await world.say(serial))[-1]
    [filed] = await world.say("确认提交")
    assert "证书已立即挂失" in filed
    assert serial in filed
