"""Binding is a request someone approves: a stranger who knows a company's USCC and name is bound
pending and can see or change nothing the company has; a technician verifies the first account
from its documents, a verified colleague vouches for a later one."""

import random
from pathlib import Path

import pytest

from bot.domain.lifecycle import OrderStatus, OrderType
from bot.domain.trust import HandlerStatus
from bot.runtime import Runtime
from bot.samples import fake_uscc, sample_scan
from bot.services.filing import file_order
from bot.services.messages import Account, Reply
from storage.repositories import Companies, Handlers, Orders
from tests.support.applicant import bind, bind_verified, say, send_binding_documents
from tests.support.helpers import MakeRuntime, RecordingChat

RNG = random.Random(1111)
TECHNICIAN = Account("qq", "900001")
COMPANY = "临沂核验建设有限公司"
REFUSED = ("我的证书", "挂失", "解挂", "绑定密钥代理", "续期", "确认续期 XQ-261125-7KQ3")


@pytest.fixture
def chat() -> RecordingChat:
    return RecordingChat()


@pytest.fixture
async def runtime(make_runtime: MakeRuntime, database_url: str, chat: RecordingChat) -> Runtime:
    return await make_runtime(f'[database]\nurl = "{database_url}"\n'
                              '[staff]\ntechnicians = ["qq:900001"]\ngroup = "qq:900"\n', chat)


@pytest.fixture
def scans(tmp_path: Path) -> list[Path]:
    paths = []
    for n in range(2):
        path = tmp_path / f"doc{n}.jpg"
        path.write_bytes(sample_scan(f"{tmp_path.name} doc {n}"))
        paths.append(path)
    return paths


def told(chat: RecordingChat, account: Account | str) -> str:
    """Everything ``account`` (or a group, "group qq:900") was sent, as one text."""
    return "\n".join(str(reply) for to, reply in chat.sent if to == str(account))


async def technician(runtime: Runtime, text: str) -> str:
    replies: list[Reply] = await runtime.desk.execute(TECHNICIAN, text, private=True)
    return "\n".join(str(r) for r in replies)


async def status_of(runtime: Runtime, account: Account) -> HandlerStatus:
    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(account.platform, account.user_id)
        assert handler is not None
        return handler.status


async def an_order_of(runtime: Runtime, account: Account) -> str:
    """An unlock order the account filed (straight into the database)."""
    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(account.platform, account.user_id)
        assert handler is not None
        order = await file_order(session, runtime.settings, order_type=OrderType.UNLOCK,
                                 values={"company_name": COMPANY}, scans={},
                                 company_id=handler.company_id, handler_id=handler.id,
                                 actor=str(account))
        return order.number


async def test_a_stranger_with_public_facts_is_pending_and_sees_nothing_of_the_company(
        runtime: Runtime, chat: RecordingChat) -> None:
    owner, stranger = Account("qq", "7001"), Account("qq", "7002")
    uscc = fake_uscc(RNG)
    await bind_verified(runtime, owner, uscc, COMPANY)
    owners_order = await an_order_of(runtime, owner)

    reply = await bind(runtime, stranger, uscc, COMPANY, "李四", "13900001111")
    assert "待核验" in reply
    assert "绑定申请已提交，编号 BD-" in reply
    number = reply.split("编号 ", 1)[1].split("。", 1)[0]
    assert await status_of(runtime, stranger) is HandlerStatus.PENDING
    # the real handler is asked, with the stranger's name and mobile masked
    asked = told(chat, owner)
    assert f"申请代表【{COMPANY}】办理业务" in asked
    assert "申报人 李*，手机 139****1111，账号 qq:7002" in asked
    assert f"同意请回复「同意绑定 {number}」，不认识请回复「拒绝绑定 {number}」" in asked
    assert number in told(chat, "group qq:900")  # and the technicians

    for text in REFUSED:
        refusal = await say(runtime, stranger, text)
        assert f"尚未核验，暂不能办理「{text.split()[0]}」" in refusal
        assert "申请核验" in refusal
        assert "单位授权书" in refusal
    orders = await say(runtime, stranger, "我的订单")
    assert owners_order not in orders
    assert number in orders  # its own request
    assert "没有找到本单位的订单" in await say(runtime, stranger, f"查询 {owners_order}")
    assert "没有找到本单位的订单" in await say(runtime, stranger, f"解锁状态 {owners_order}")
    assert "没有找到本单位的订单" in await say(runtime, stranger, f"修改 {owners_order}")
    assert number in await say(runtime, stranger, f"查询 {number}")
    menu = await say(runtime, stranger, "帮助")
    assert "【待核验】" in menu
    assert "新办证书" in menu
    assert "解锁" in menu
    listed = [line for line in menu.splitlines() if line.startswith("·")]
    assert not [line for line in listed if "我的证书" in line or "绑定密钥代理" in line]
    assert "认证进度" in menu
    assert "待核验" in await say(runtime, stranger, "认证进度")
    # the stranger cannot vouch for itself, nor can another company's handler
    assert "尚未核验" in await say(runtime, stranger, f"同意绑定 {number}")
    other = Account("qq", "7003")
    await bind_verified(runtime, other, fake_uscc(RNG), "临沂别家有限公司")
    assert "没有找到本单位的绑定申请" in await say(runtime, other, f"同意绑定 {number}")
    assert await status_of(runtime, stranger) is HandlerStatus.PENDING
    # the owner's menu has no verification commands
    assert "申请核验" not in await say(runtime, owner, "帮助")


async def test_a_technician_verifies_the_first_account_then_it_vouches_for_a_second(
        runtime: Runtime, chat: RecordingChat, scans: list[Path]) -> None:
    first, second = Account("qq", "7101"), Account("qq", "7102")
    uscc = fake_uscc(RNG)
    reply = await bind(runtime, first, uscc, COMPANY)
    assert "请选择【用户类型】" in reply
    assert "非金融机构" in reply
    number = await send_binding_documents(runtime, first, scans)
    assert number.startswith("BD-")
    assert f"【单位绑定】{number} 新订单待审核" in told(chat, "group qq:900")
    assert number in await technician(runtime, "待审核")
    view = await technician(runtime, f"查看 {number}")
    assert "附件一 单位授权书：已上传" in view
    assert "用户类型：施工单位" in view
    assert "已通过绑定申请" in await technician(runtime, f"通过 {number}")
    assert await status_of(runtime, first) is HandlerStatus.VERIFIED
    assert "绑定已核验" in told(chat, first)
    assert "· 绑定密钥代理" in told(chat, first)  # the full menu came with it
    assert COMPANY in await say(runtime, first, "我的订单")
    assert "已完成" in await say(runtime, first, f"查询 {number}")
    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(first.platform, first.user_id)
        assert handler is not None
        assert handler.verified_by == str(TECHNICIAN)
        assert handler.verified_at is not None

    reply = await bind(runtime, second, uscc, COMPANY, "赵六", "13700002222")
    second_number = reply.split("编号 ", 1)[1].split("。", 1)[0]
    assert f"同意绑定 {second_number}" in told(chat, first)
    assert "尚未核验" in await say(runtime, second, "我的订单") or (
        number not in await say(runtime, second, "我的订单"))
    answer = await say(runtime, first, f"同意绑定 {second_number}")
    assert f"现在是【{COMPANY}】已核验的经办人" in answer
    assert await status_of(runtime, second) is HandlerStatus.VERIFIED
    assert "绑定已核验" in told(chat, second)
    assert number in await say(runtime, second, "我的订单")  # now the company's orders
    assert "已办结" in await say(runtime, first, f"同意绑定 {second_number}") or (
        "无需再处理" in await say(runtime, first, f"同意绑定 {second_number}"))


async def test_a_refused_colleague_stays_pending_and_may_ask_again(
        runtime: Runtime, chat: RecordingChat) -> None:
    owner, asker = Account("qq", "7201"), Account("qq", "7202")
    uscc = fake_uscc(RNG)
    await bind_verified(runtime, owner, uscc, COMPANY)
    reply = await bind(runtime, asker, uscc, COMPANY)
    number = reply.split("编号 ", 1)[1].split("。", 1)[0]
    assert "已拒绝绑定申请" in await say(runtime, owner, f"拒绝绑定 {number}")
    assert "未获本单位已核验的经办人确认" in told(chat, asker)
    assert "申请核验" in told(chat, asker)
    assert await status_of(runtime, asker) is HandlerStatus.PENDING
    assert "无需再处理" in await say(runtime, owner, f"同意绑定 {number}")
    assert "没有可修改的材料" in await say(runtime, asker, f"修改 {number}")

    assert "请输入【申报人】" in await say(runtime, asker, "申请核验")
    await say(runtime, asker, "王小明")
    again = await say(runtime, asker, "13812345678")
    new_number = again.split("编号 ", 1)[1].split("。", 1)[0]
    assert new_number != number
    async with runtime.db.transaction() as session:
        old = await Orders(session).by_number(number)
        assert old is not None
        assert old.status is OrderStatus.CANCELLED
    assert f"同意绑定 {new_number}" in told(chat, owner)
    assert "已通过绑定申请" in await technician(runtime, f"通过 {new_number}")
    assert await status_of(runtime, asker) is HandlerStatus.VERIFIED


async def test_a_rejected_first_request_is_corrected_and_names_the_company(
        runtime: Runtime, chat: RecordingChat, scans: list[Path], tmp_path: Path) -> None:
    """A company nobody verified: another typed name is no refusal; the technician's approval
    of the licence decides the company's name."""
    earlier, first = Account("qq", "7301"), Account("qq", "7302")
    uscc = fake_uscc(RNG)
    await bind(runtime, earlier, uscc, "临沂旧名称有限公司")  # pending, sends nothing
    assert "请选择【用户类型】" in await bind(runtime, first, uscc, COMPANY)
    number = await send_binding_documents(runtime, first, scans)
    assert "已驳回" in await technician(runtime, f"驳回 {number} 附件一没有盖章")
    assert "未通过核验" in told(chat, first)
    assert f"修改 {number}" in told(chat, first)
    assert await status_of(runtime, first) is HandlerStatus.PENDING
    assert "附件一" in await say(runtime, first, f"修改 {number}")
    stamped = tmp_path / "stamped.jpg"
    stamped.write_bytes(sample_scan("stamped letter"))
    await say(runtime, first, "", stamped)
    assert "已重新提交" in await say(runtime, first, "确认提交")
    assert "已通过" in await technician(runtime, f"通过 {number}")
    async with runtime.db.transaction() as session:
        company = await Companies(session).by_uscc(uscc)
        assert company is not None
        assert company.name == COMPANY
    assert await status_of(runtime, earlier) is HandlerStatus.PENDING


async def test_a_removed_account_binds_anew_as_a_new_request(
        runtime: Runtime, chat: RecordingChat) -> None:
    owner, gone = Account("qq", "7401"), Account("qq", "7402")
    uscc = fake_uscc(RNG)
    await bind_verified(runtime, owner, uscc, COMPANY)
    await bind_verified(runtime, gone, uscc, COMPANY)
    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(gone.platform, gone.user_id)
        assert handler is not None
        handler.status = HandlerStatus.REMOVED
    assert "统一社会信用代码" in await say(runtime, gone, "我的订单")  # asked to bind again
    for text in (uscc, COMPANY, "同意", "王小明"):
        await say(runtime, gone, text)
    assert "绑定申请已提交" in await say(runtime, gone, "13812345678")
    assert await status_of(runtime, gone) is HandlerStatus.PENDING
    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(gone.platform, gone.user_id)
        assert handler is not None
        latest = await Orders(session).latest_of_handler(handler.id, OrderType.BINDING)
        assert latest is not None
        assert latest.status is OrderStatus.SUBMITTED
