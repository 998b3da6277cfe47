"""An unlock mail is a claim: the mailbox files it under the company of its USCC when that is on
record, and otherwise leaves it waiting as 单位未登记 without making any company; approving it
records the company, rejecting it records nothing. On SQLite and on a real PostgreSQL."""

import pytest
from sqlalchemy import select

from bot.runtime import Runtime
from bot.samples import fake_uscc
from bot.services.messages import Account
from bot.services.unlock.inbox import FILED, Filing
from storage.models import Company, Order
from storage.repositories import Companies
from tests.support import mail_corpus as corpus
from tests.support.helpers import MakeRuntime, wait_for
from tests.support.smtp_sink import SmtpSink
from tests.support.unlock_mailbox import count

TECHNICIAN = Account("qq", "900001")
FOLDER = f"{corpus.MAILBOX}/INBOX"


@pytest.fixture
async def runtime(make_runtime: MakeRuntime, database_url: str, smtp: SmtpSink) -> Runtime:
    return await make_runtime(f"""
[database]
url = "{database_url}"
[staff]
technicians = ["qq:900001"]
[email]
enabled = true
host = "127.0.0.1"
port = {smtp.port}
security = "none"
from_address = "{corpus.MAILBOX}"
poll_seconds = 0.2
""")


async def mailed(runtime: Runtime, raw: bytes, uid: int) -> Filing:
    filing = await runtime.inbox.file(FOLDER, 1, uid, raw)
    assert filing.outcome == FILED, filing
    return filing


async def desk(runtime: Runtime, text: str) -> str:
    replies = await runtime.desk.execute(TECHNICIAN, text, private=True)
    return str(replies[0])


async def order_of(runtime: Runtime, number: str | None) -> Order:
    async with runtime.db.transaction() as session:
        order = await session.scalar(select(Order).where(Order.number == number))
    assert order is not None
    return order


async def companies(runtime: Runtime) -> list[tuple[str, str]]:
    async with runtime.db.transaction() as session:
        return [(c.uscc, c.name) for c in await session.scalars(select(Company))]


async def record(runtime: Runtime, uscc: str, name: str) -> int:
    async with runtime.db.transaction() as session:
        return (await Companies(session).add(uscc, name, None)).id


async def test_an_unknown_company_waits_unregistered_and_approval_records_it(
        runtime: Runtime, smtp: SmtpSink) -> None:
    uscc = fake_uscc()
    first = await mailed(runtime, corpus.qq_mail(uscc, 1), 1)
    second = await mailed(runtime, corpus.qq_mail(uscc, 2), 2)  # the same claim, twice
    assert await count(runtime, Company) == 0  # the mailbox made no company

    order = await order_of(runtime, first.order_number)
    assert order.company_id is None
    assert (order.fields["company_name"], order.fields["uscc"]) == (corpus.COMPANY, uscc)

    queue = await desk(runtime, "待审核")
    assert f"{first.order_number} 证书解锁 {corpus.COMPANY}【单位未登记】" in queue
    assert f"{second.order_number} 证书解锁 {corpus.COMPANY}【单位未登记】" in queue
    view = await desk(runtime, f"查看 {first.order_number}")
    assert f"名称：{corpus.COMPANY}【单位未登记】" in view
    assert f"单位未登记：信用代码 {uscc} 不在单位档案中" in view
    for words in (uscc, "喆镕建设", f"待审核 {uscc}"):  # the claim is searchable
        found = await desk(runtime, f"订单 {words}")
        assert first.order_number in found
        assert "【单位未登记】" in found
    told = [str(text) for _, text in runtime.chat_outbox.chat.sent]
    assert sum(f"单位：{corpus.COMPANY}【单位未登记】" in t for t in told) == 2
    await wait_for(lambda: len(smtp.messages) == 2)  # the automatic replies
    replies = [m.get_content() for m in smtp.messages]
    # the claimed name is the mail's own text: not echoed to whoever the sender claims to be
    assert all("收到贵单位的" in r and "尚未在本中心登记" in r and corpus.COMPANY not in r
               for r in replies)

    assert "已通过订单" in await desk(runtime, f"通过 {first.order_number}")
    assert await companies(runtime) == [(uscc, corpus.COMPANY)]
    approved = await order_of(runtime, first.order_number)
    assert approved.company is not None
    assert approved.company.uscc == uscc
    history = await desk(runtime, f"历史 {first.order_number}")
    assert f"登记单位：新建单位档案【{corpus.COMPANY}】{uscc}" in history
    assert any(f"已按本订单登记新单位【{corpus.COMPANY}】" in str(text)
               for _, text in runtime.chat_outbox.chat.sent)

    # the second claim joins the company recorded meanwhile: still exactly one
    await desk(runtime, f"通过 {second.order_number}")
    assert await companies(runtime) == [(uscc, corpus.COMPANY)]
    joined = await order_of(runtime, second.order_number)
    assert joined.company_id == approved.company_id
    await wait_for(lambda: len(smtp.messages) == 4)  # the decisions, back to the sender
    assert all("已审核通过" in m.get_content() for m in smtp.messages[2:])
    assert "登记单位：并入已登记的单位" in await desk(runtime, f"历史 {second.order_number}")

    # from now on the USCC is on record: a new mail files under the company at once
    third = await mailed(runtime, corpus.qq_mail(uscc, 3), 3)
    assert (await order_of(runtime, third.order_number)).company_id == approved.company_id
    assert "单位未登记" not in await desk(runtime, f"查看 {third.order_number}")


async def test_a_rejected_claim_records_no_company(runtime: Runtime, smtp: SmtpSink) -> None:
    filing = await mailed(runtime, corpus.qq_mail(fake_uscc()), 1)
    assert "已驳回" in await desk(runtime, f"驳回 {filing.order_number} 营业执照不清晰")
    assert await count(runtime, Company) == 0
    assert (await order_of(runtime, filing.order_number)).company_id is None
    assert "【单位未登记】" in await desk(runtime, f"查看 {filing.order_number}")
    await wait_for(lambda: len(smtp.messages) == 2)
    assert "未通过审核" in smtp.messages[1].get_content()


async def test_a_known_uscc_under_another_name_files_under_the_record_and_flags_it(
        runtime: Runtime, smtp: SmtpSink) -> None:
    uscc = fake_uscc()
    company_id = await record(runtime, uscc, "临沂登记名称测试有限公司")
    filing = await mailed(runtime, corpus.qq_mail(uscc), 1)

    order = await order_of(runtime, filing.order_number)
    assert order.company_id == company_id
    assert order.fields["company_name"] == corpus.COMPANY  # the claim, kept as it came
    assert await companies(runtime) == [(uscc, "临沂登记名称测试有限公司")]  # not renamed
    view = await desk(runtime, f"查看 {filing.order_number}")
    assert "名称：临沂登记名称测试有限公司" in view
    assert (f"单位名称不一致：申请中写的是「{corpus.COMPANY}」，信用代码 {uscc} "
            "登记的是「临沂登记名称测试有限公司」") in view
    assert "单位未登记" not in view
    assert "临沂登记名称测试有限公司" in await desk(runtime, "待审核")

    await desk(runtime, f"通过 {filing.order_number}")
    assert await companies(runtime) == [(uscc, "临沂登记名称测试有限公司")]
    await wait_for(lambda: len(smtp.messages) == 2)
    assert "【临沂登记名称测试有限公司】" in smtp.messages[0].get_content()


async def test_a_known_name_with_an_unknown_uscc_does_not_attach_to_the_named_company(
        runtime: Runtime, smtp: SmtpSink) -> None:
    recorded, claimed = fake_uscc(), fake_uscc()
    await record(runtime, recorded, corpus.COMPANY)
    filing = await mailed(runtime, corpus.qq_mail(claimed), 1)

    order = await order_of(runtime, filing.order_number)
    assert order.company_id is None
    assert order.fields["uscc"] == claimed
    assert await companies(runtime) == [(recorded, corpus.COMPANY)]
    assert f"{corpus.COMPANY}【单位未登记】" in await desk(runtime, "待审核")
    found = await desk(runtime, f"订单 {recorded}")  # the record's USCC finds nothing of it
    assert filing.order_number not in found
    await wait_for(lambda: len(smtp.messages) == 1)


async def test_a_mail_with_neither_a_known_uscc_nor_a_name_is_not_filed(
        runtime: Runtime, smtp: SmtpSink) -> None:
    uscc = fake_uscc()
    raw = corpus.qq_mail(uscc).replace(
        corpus.word(f"CA解锁+{corpus.COMPANY}", "utf-8").encode(),
        corpus.word("CA解锁", "utf-8").encode())
    filing = await runtime.inbox.file(FOLDER, 1, 1, raw)
    assert (filing.outcome, filing.reason) == ("incomplete", "无法确认单位")
    assert await count(runtime, Order) == 0
    assert await count(runtime, Company) == 0
    await wait_for(lambda: len(smtp.messages) == 1)
    assert "统一社会信用代码（18 位）" in smtp.messages[0].get_content()
