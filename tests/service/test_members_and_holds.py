"""A company's accounts for technicians (成员, 解绑), holds on every certificate of a UKEY (a
technician's 挂失 by command, on SQLite and PostgreSQL), and what the company's verified
handlers are told: an agent paired, an account removed, a hold placed."""

import random
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from bot.domain.trust import HandlerStatus
from bot.key_agent.protocol import AgentKeys
from bot.runtime import Runtime
from bot.samples import fake_uscc
from bot.services.agents.registry import AgentRefused
from bot.services.filing import file_order
from bot.services.messages import Account, Incoming
from storage.models import Agent, Certificate, Crl, Handler, OutgoingMail, utcnow
from storage.repositories import Conversations, Handlers, Orders
from tests.support.applicant import bind, bind_verified
from tests.support.helpers import MakeRuntime, RecordingChat, free_port

TECHNICIAN = Account("qq", "900001")
FIRST, COLLEAGUE, NEWCOMER = Account("qq", "31337"), Account("qq", "424242"), Account("qq", "555")
COMPANY = "临沂成员测试有限公司"
CONFIG = """
[database]
url = "{url}"
[staff]
technicians = ["qq:900001"]
[agents]
enabled = true
[pki]
enabled = true
[email]
enabled = true
host = "127.0.0.1"
port = {port}
security = "none"
from_address = "ca@centre.example"
retry_seconds = 3600
"""  # nothing listens on the mail port: what was queued stays in outgoing_mail to be read


class Company:
    """A company with three accounts: two verified (the colleague with an e-mail address), one
    pending."""

    def __init__(self, runtime: Runtime, chat: RecordingChat, uscc: str) -> None:
        self.runtime, self.chat, self.uscc = runtime, chat, uscc

    async def say(self, account: Account, text: str) -> list[str]:
        return [str(r) for r in await self.runtime.dialogue.handle(account, Incoming(text=text))]

    async def staff(self, text: str, private: bool = True) -> str:
        [reply] = await self.runtime.desk.execute(TECHNICIAN, text, private=private)
        return str(reply)

    def told(self, account: Account) -> list[str]:
        return [str(reply) for to, reply in self.chat.sent if to == str(account)]

    async def handler(self, account: Account) -> Handler:
        async with self.runtime.db.transaction() as session:
            handler = await Handlers(session).get(account.platform, account.user_id)
            assert handler is not None
            return handler

    async def mails(self) -> Sequence[OutgoingMail]:
        async with self.runtime.db.transaction() as session:
            return (await session.scalars(select(OutgoingMail).order_by(OutgoingMail.id))).all()

    async def pair(self, account: Account) -> int:
        handler = await self.handler(account)
        code, _ = await self.runtime.agents.new_code(handler, str(account))
        paired = await self.runtime.agents.pair(code, **AgentKeys.generate().public())
        await self.runtime.agents.notices_sent()
        return paired.agent_id


@pytest.fixture
async def company(make_runtime: MakeRuntime, database_url: str,
                  monkeypatch: pytest.MonkeyPatch) -> Company:
    monkeypatch.setenv("CADESK_SO_MASTER", "5a" * 32)
    chat = RecordingChat()
    runtime = await make_runtime(CONFIG.format(url=database_url, port=free_port()), chat)
    made = Company(runtime, chat, fake_uscc(random.Random(database_url)))
    for account in (FIRST, COLLEAGUE):
        await bind_verified(runtime, account, made.uscc, COMPANY)
    await bind(runtime, NEWCOMER, made.uscc, COMPANY)  # a later account: pending
    async with runtime.db.transaction() as session:
        for account, email in ((FIRST, None), (COLLEAGUE, "colleague@example.test")):
            handler = await Handlers(session).get(account.platform, account.user_id)
            assert handler is not None
            handler.status, handler.verified_at = HandlerStatus.VERIFIED, utcnow()
            handler.verified_by, handler.email = str(TECHNICIAN), email
    return made


async def issue(company: Company, token: str, replaces: Certificate | None = None
                ) -> Certificate:
    """A certificate signed by the office for the company, on ``token`` (a renewal when it
    ``replaces`` one), as 制证 and 续期 leave them."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")]))
           .sign(key, hashes.SHA256()).public_bytes(Encoding.DER))
    office = company.runtime.certificates.office
    async with company.runtime.db.transaction() as session:
        handler = await Handlers(session).get(FIRST.platform, FIRST.user_id)
        order = await file_order(session, company.runtime.settings, order_type="certificate",
                                 values={"years": "1年", "apply_kind": "新办"}, scans={},
                                 company_id=handler.company_id, handler_id=handler.id,
                                 actor=str(FIRST))
        order = await Orders(session).by_number(order.number)
        if replaces is not None:
            replaces = await session.get(Certificate, replaces.id)
        cert = office.issue(session, order, csr, token, utcnow() + timedelta(days=365),
                            replaces=replaces)
    return cert


async def crl_entries(company: Company) -> dict[str, x509.ReasonFlags | None]:
    """The served CRL's entries: serial (hex) → reason, after checking its signature."""
    office = company.runtime.certificates.office
    crl = x509.load_der_x509_crl(await office.current_crl())
    assert crl.is_signature_valid(office.ca.certificate.public_key())
    entries = {}
    for entry in crl:
        reason = next((e.value.reason for e in entry.extensions
                       if isinstance(e.value, x509.CRLReason)), None)
        entries[f"{entry.serial_number:x}"] = reason
    return entries


async def test_a_technicians_hold_takes_every_valid_certificate_on_the_ukey(
        company: Company) -> None:
    first = await issue(company, "UKEY-1")
    renewed = await issue(company, "UKEY-1", replaces=first)  # first is now superseded
    elsewhere = await issue(company, "UKEY-2")

    assert "挂失理由" in await company.staff(f"挂失 {first.serial}")
    assert "没有找到序列号为 ffff 的证书" in await company.staff("挂失 ffff 单位来电")
    reply = await company.staff(f"挂失 {first.serial} 单位来电：UKEY 丢失")
    assert "UKEY UKEY-1 上的 2 张证书" in reply
    assert "已通知该单位 2 位已核验经办人" in reply

    entries = await crl_entries(company)
    assert entries == {first.serial: x509.ReasonFlags.certificate_hold,
                       renewed.serial: x509.ReasonFlags.certificate_hold}
    office = company.runtime.certificates.office
    [event] = await office.events(first)
    assert (event.actor, event.from_status, event.to_status, event.reason, event.order_id) == (
        "qq:900001", "superseded", "hold", "单位来电：UKEY 丢失", None)
    for account in (FIRST, COLLEAGUE):
        assert any("技术人员于" in t and "理由：单位来电：UKEY 丢失" in t and renewed.serial in t
                   for t in company.told(account))
    assert not any("挂失" in t for t in company.told(NEWCOMER))  # pending: not told
    [mail] = [m for m in await company.mails() if "挂失" in m.subject]
    assert mail.to_address == "colleague@example.test"
    assert first.serial in mail.body

    assert "已挂失（暂停使用），不能挂失" in await company.staff(f"挂失 {renewed.serial} 又来电")
    await company.staff(f"吊销 {elsewhere.serial} 停止使用")
    assert "已吊销，不能再变更" in await company.staff(f"挂失 {elsewhere.serial} 来电")

    async with office.transaction() as session:  # 解挂: each back to what it was
        held = await session.get(Certificate, renewed.id)
        released = await office.release_ukey(session, held, order=None, actor="qq:900001")
        assert {c.serial: c.status for c in released} == {first.serial: "superseded",
                                                          renewed.serial: "active"}
    assert set(await crl_entries(company)) == {elsewhere.serial}  # signed in that commit


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_members_lists_accounts_and_unbind_removes_one(company: Company) -> None:
    paired = await company.pair(FIRST)
    for account in (FIRST, COLLEAGUE):
        assert any(f"绑定了新的密钥代理（编号 {paired}），绑定码由账号 qq:31337 申请" in t
                   for t in company.told(account))
    assert not any("密钥代理" in t for t in company.told(NEWCOMER))
    assert [m.subject for m in await company.mails()] == [f"【{COMPANY}】绑定了新的密钥代理"]
    other = await company.pair(COLLEAGUE)
    unused, _ = await company.runtime.agents.new_code(await company.handler(FIRST), str(FIRST))
    cut: list[int] = []
    async with company.runtime.db.transaction() as session:
        agent = await session.get(Agent, paired)

    async def close() -> None:
        cut.append(paired)

    async def send(message: dict) -> None: ...

    await company.runtime.hub.connected(agent, send, close)
    await company.say(FIRST, "新办证书")  # a form in progress

    pending = await company.staff("成员")
    assert f"{COMPANY}（{company.uscc}）待核验 1 个" in pending
    listing = await company.staff(f"成员 {company.uscc}")
    assert "qq:31337 已核验（" in listing
    assert "由 qq:900001 核验）" in listing
    assert f"绑定的密钥代理：{paired}" in listing
    assert f"绑定的密钥代理：{other}" in listing
    assert "qq:555 待核验" in listing
    assert "邮箱已设置" in listing
    in_group = await company.staff("成员 成员测试", private=False)
    assert "qq:31*37 已核验" in in_group
    assert "qq:31337" not in in_group

    assert "用法：解绑 账号" in await company.staff("解绑 31337")
    assert "没有绑定任何单位" in await company.staff("解绑 qq:999")
    reply = await company.staff("解绑 qq:31337")
    assert f"吊销了它绑定的密钥代理 {paired}（已断开）" in reply
    assert "已通知该账号和本单位 1 位已核验经办人" in reply

    removed = await company.handler(FIRST)
    assert removed.status is HandlerStatus.REMOVED
    assert removed.removed_by == "qq:900001"
    assert cut == [paired]
    agents = {a.id: a for a in await company.runtime.agents.of_company()}
    assert agents[paired].revoked_by == "qq:900001"
    assert agents[other].revoked_at is None  # the colleague's agent stays
    with pytest.raises(AgentRefused):
        await company.runtime.agents.pair(unused, **AgentKeys.generate().public())
    async with company.runtime.db.transaction() as session:
        assert await Conversations(session).get(FIRST.platform, FIRST.user_id) is None
    assert "您的账号与【临沂成员测试有限公司】的绑定" in company.told(FIRST)[-1]
    assert "解除账号 qq:31337 与【" in company.told(COLLEAGUE)[-1]
    assert not any("解除" in t for t in company.told(NEWCOMER))
    assert f"【{COMPANY}】的账号 qq:31337 已解绑" in [m.subject for m in await company.mails()]

    assert "无需再解绑" in await company.staff("解绑 qq:31337")
    listing = await company.staff(f"成员 {COMPANY}")
    assert "qq:31337 已解绑（" in listing
    assert "由 qq:900001 解绑）" in listing
    assert f"绑定的密钥代理：{paired}（已吊销）" in listing


async def test_members_of_an_unknown_or_ambiguous_company(make_runtime: MakeRuntime,
                                                          tmp_path: Path) -> None:
    runtime = await make_runtime('[staff]\ntechnicians = ["qq:900001"]\n')
    rng = random.Random(5)
    for user, name in (("1", "临沂甲建设有限公司"), ("2", "临沂乙建设有限公司")):
        await bind(runtime, Account("qq", user), fake_uscc(rng), name)

    async def staff(text: str) -> str:
        return str((await runtime.desk.execute(TECHNICIAN, text, private=True))[0])

    assert "没有找到单位「丙」" in await staff("成员 丙")
    ambiguous = await staff("成员 建设")
    assert "对应多个单位" in ambiguous
    assert "临沂乙建设有限公司" in ambiguous
    assert "qq:1 待核验" in await staff("成员 临沂甲建设有限公司")


class Killed(BaseException):
    """The bot killed at that very point (nothing in the bot catches a BaseException)."""


def listed(der: bytes, office) -> dict[str, x509.ReasonFlags | None]:
    """A CRL's entries, serial (hex) → reason, after checking its signature."""
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(office.ca.certificate.public_key())
    return {f"{e.serial_number:x}": next((x.value.reason for x in e.extensions
                                          if isinstance(x.value, x509.CRLReason)), None)
            for e in crl}


async def newest_crl(runtime: Runtime) -> Crl:
    async with runtime.db.transaction() as session:
        return await session.scalar(select(Crl).order_by(Crl.number.desc()).limit(1))


async def test_a_hold_is_on_the_crl_in_its_own_commit_and_the_file_follows_at_start(
        company: Company, make_runtime: MakeRuntime, database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cert = await issue(company, "UKEY-7")
    office = company.runtime.certificates.office
    await office.publish_crl()
    before = office.crl_file.read_bytes()
    assert listed(before, office) == {}

    def killed(path: Path, data: bytes) -> None:
        raise Killed  # the bot dies after the commit, before ca.crl is written

    async def killed_publishing(self: object) -> bytes:
        raise Killed

    # killed after the hold's commit: whatever publishes after it (the file, a later signing)
    monkeypatch.setattr("bot.services.certificates.office._write_atomically", killed)
    monkeypatch.setattr("bot.services.certificates.office.CertificateOffice.publish_crl",
                        killed_publishing)
    with pytest.raises(Killed):
        await company.staff(f"挂失 {cert.serial} 单位来电：UKEY 丢失")
    newest = await newest_crl(company.runtime)
    assert listed(newest.der, office) == {cert.serial: x509.ReasonFlags.certificate_hold}
    assert listed(await office.current_crl(), office) == {  # what GET /pki/crl serves
        cert.serial: x509.ReasonFlags.certificate_hold}
    assert office.crl_file.read_bytes() == before  # the file is behind: the kill

    monkeypatch.undo()
    restarted = await make_runtime(CONFIG.format(url=database_url, port=free_port()))
    again = restarted.certificates.office
    assert again.crl_file.read_bytes() == newest.der  # written again at start
    assert listed(again.crl_file.read_bytes(), again) == {
        cert.serial: x509.ReasonFlags.certificate_hold}
    assert (await newest_crl(restarted)).number == newest.number  # nothing to sign anew


async def test_a_change_newer_than_the_newest_crl_is_published_at_start(
        company: Company, make_runtime: MakeRuntime, database_url: str) -> None:
    cert = await issue(company, "UKEY-8")
    office = company.runtime.certificates.office
    await office.publish_crl()
    first = await newest_crl(company.runtime)
    async with company.runtime.db.transaction() as session:  # held, and killed before the CRL
        row = await session.get(Certificate, cert.id)  # (as before the CRL was signed with it)
        row.status, row.revocation_reason = "hold", "certificate_hold"
        row.status_changed_at = utcnow()
    assert listed(office.crl_file.read_bytes(), office) == {}

    restarted = await make_runtime(CONFIG.format(url=database_url, port=free_port()))
    again = restarted.certificates.office
    newest = await newest_crl(restarted)
    assert newest.number == first.number + 1
    assert listed(again.crl_file.read_bytes(), again) == {
        cert.serial: x509.ReasonFlags.certificate_hold}
    assert listed(await again.current_crl(), again) == {
        cert.serial: x509.ReasonFlags.certificate_hold}
    assert again.crl_file.read_bytes() == newest.der


async def file_release(company: Company, cert: Certificate, kind: str = "解挂") -> str:
    """A 解挂 (or 挂失) order for ``cert`` as the form files it (the form has its own tests)."""
    async with company.runtime.db.transaction() as session:
        handler = await Handlers(session).get(FIRST.platform, FIRST.user_id)
        order = await file_order(session, company.runtime.settings, order_type="loss",
                                 values={"apply_kind": kind, "ukey_serial": cert.token_serial,
                                         "cert_serial": cert.serial}, scans={},
                                 company_id=handler.company_id, handler_id=handler.id,
                                 actor=str(FIRST))
        return order.number


async def order_state(company: Company, number: str) -> tuple[str, list[tuple[str, str | None]]]:
    async with company.runtime.db.transaction() as session:
        order = await Orders(session).by_number(number)
        events = await Orders(session).events(order.id)
        return order.status, [(e.event, e.reason) for e in events]


async def test_a_release_whose_certificate_was_revoked_meanwhile_is_refused_with_the_reason(
        company: Company) -> None:
    cert = await issue(company, "UKEY-9")
    await company.staff(f"挂失 {cert.serial} 单位来电：UKEY 丢失")
    number = await file_release(company, cert)
    await company.staff(f"吊销 {cert.serial} 密钥泄露")  # while the 解挂 waited for review
    told_before = len(company.told(FIRST))

    answer = await company.staff(f"通过 {number}")
    assert f"订单 {number} 未能解挂：证书 {cert.serial} 已吊销，无法解挂" in answer
    assert "已取消" in answer
    status, events = await order_state(company, number)
    assert status == "cancelled"
    assert events[-1] == ("cancel", f"证书 {cert.serial} 已吊销，无法解挂")
    assert "approve" not in [e for e, _ in events]  # never 审核通过, not even for a moment
    [told] = company.told(FIRST)[told_before:]
    assert f"证书 {cert.serial} 已吊销，无法解挂" in told
    assert "订单已关闭" in told
    assert "审核通过" not in told
    assert "已办结" not in told
    office = company.runtime.certificates.office
    assert listed(await office.current_crl(), office) == {
        cert.serial: x509.ReasonFlags.key_compromise}  # still revoked, for good
    assert "该订单已取消" in await company.staff(f"通过 {number}")


async def test_a_loss_report_whose_certificate_was_revoked_meanwhile_says_so(
        company: Company) -> None:
    cert = await issue(company, "UKEY-11")
    number = await file_release(company, cert, "挂失")
    await company.staff(f"挂失 {cert.serial} 单位来电：UKEY 丢失")
    await company.staff(f"吊销 {cert.serial} 停止使用")
    answer = await company.staff(f"通过 {number}")
    assert f"证书 {cert.serial} 已吊销，永久停止使用，挂失办结" in answer
    assert (await order_state(company, number))[0] == "completed"


async def test_a_release_that_cannot_be_done_leaves_the_order_untouched(
        company: Company) -> None:
    cert = await issue(company, "UKEY-10")
    number = await file_release(company, cert)  # filed, but the certificate is not held
    told_before = len(company.told(FIRST))
    answer = await company.staff(f"通过 {number}")
    assert "目前有效，不需要解挂" in answer
    status, events = await order_state(company, number)
    assert status == "submitted"
    assert [e for e, _ in events] == ["submit"]
    assert company.told(FIRST)[told_before:] == []
