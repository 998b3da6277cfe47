"""Retention on SQLite and PostgreSQL, on a clock moved forward: a finished order's scans leave
the disk and the database after [retention] scan_days, its ID numbers and mobiles are masked
after mask_days, idle forms are dropped, each step is an event on the order, and an open order
(or a file an open order shares) is never touched. 删除我的资料 runs the same purge once a
technician confirms."""

import hashlib
import random
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.domain.lifecycle import Event, OrderStatus, OrderType
from bot.domain.masking import mask_id_number, mask_mobile
from bot.domain.scans import ScanInfo
from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_uscc, sample_scan
from bot.services.filing import file_order, move_order
from bot.services.messages import Account, Reply
from storage.models import OutgoingChat, utcnow
from storage.repositories import ChatReaches, Conversations, Handlers, Orders
from tests.support.applicant import bind, bind_verified, say
from tests.support.helpers import MakeRuntime, RecordingChat, wait_for

RNG = random.Random(1414)
TECHNICIAN = Account("qq", "900001")
COMPANY = "临沂保存期限测试有限公司"
MOBILE = "13912345678"
ID_NUMBER = fake_id_number(RNG)


@pytest.fixture
def chat() -> RecordingChat:
    return RecordingChat()


@pytest.fixture
async def runtime(make_runtime: MakeRuntime, database_url: str, chat: RecordingChat) -> Runtime:
    # the worker stays off: the test runs each pass itself, at the time it chooses
    return await make_runtime(f'[database]\nurl = "{database_url}"\n'
                              '[staff]\ntechnicians = ["qq:900001"]\ngroup = "qq:900"\n'
                              '[retention]\nenabled = false\n', chat)


def told(chat: RecordingChat, account: Account | str) -> str:
    return "\n".join(str(reply) for to, reply in chat.sent if to == str(account))


async def technician(runtime: Runtime, text: str) -> str:
    replies: list[Reply] = await runtime.desk.execute(TECHNICIAN, text, private=True)
    return "\n".join(str(r) for r in replies)


def a_scan(runtime: Runtime, label: str) -> ScanInfo:
    """A scan in the store, as an accepted upload leaves it."""
    data = sample_scan(label)
    sha256 = hashlib.sha256(data).hexdigest()
    runtime.scans.save(sha256, data)
    return ScanInfo(sha256, "JPEG", len(data), 1240, 1754)


async def an_unlock(runtime: Runtime, account: Account, scans: dict[str, ScanInfo],
                    *moves: Event) -> str:
    """An unlock order the account filed with these scans, moved by ``moves``; its number."""
    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(account.platform, account.user_id)
        assert handler is not None
        order = await file_order(
            session, runtime.settings, order_type=OrderType.UNLOCK,
            values={"company_name": COMPANY, "handler_name": "张三", "mobile": MOBILE,
                    "handler_id_number": ID_NUMBER, "company_address": "临沂市兰山区测试路 1 号",
                    "company_phone": "0539-8123456"},
            scans=scans, company_id=handler.company_id, handler_id=handler.id,
            actor=str(account))
        for event in moves:
            move_order(session, order, "qq:900001", event)
        return order.number


async def state_of(runtime: Runtime, number: str):
    async with runtime.db.transaction() as session:
        order = await Orders(session).by_number(number)
        assert order is not None
        events = await Orders(session).events(order.id)
        return order, list(order.attachments), events


def on_disk(runtime: Runtime, scan: ScanInfo) -> bool:
    return runtime.scans.path(scan.sha256).exists()


async def test_retention_on_a_clock_moved_forward(runtime: Runtime, tmp_path: Path,
                                                  chat: RecordingChat) -> None:
    applicant, drafter = Account("qq", "7101"), Account("qq", "7102")
    await bind_verified(runtime, applicant, fake_uscc(RNG), COMPANY)
    shared, licence, card, other = (a_scan(runtime, n) for n in ("shared", "lic", "card", "o"))
    finished = await an_unlock(runtime, applicant,
                               {"scan_reset_form": shared, "scan_licence": licence},
                               Event.APPROVE, Event.COMPLETE)
    cancelled = await an_unlock(runtime, applicant, {"scan_id_card": card}, Event.CANCEL)
    still_open = await an_unlock(runtime, applicant,
                                 {"scan_reset_form": shared, "scan_licence": other})
    # a first account's binding request, approved: its 授权书 and licence go like any scans
    authorisation = a_scan(runtime, "authorisation")
    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(applicant.platform, applicant.user_id)
        assert handler is not None
        binding = await file_order(
            session, runtime.settings, order_type=OrderType.BINDING,
            values={"handler_id_number": ID_NUMBER}, scans={"scan_authorisation": authorisation},
            company_id=handler.company_id, handler_id=handler.id, actor=str(applicant))
        move_order(session, binding, "qq:900001", Event.APPROVE)
        move_order(session, binding, "qq:900001", Event.COMPLETE)
    lapsing = a_scan(runtime, "lapsing")
    uncorrected = await an_unlock(runtime, applicant, {"scan_id_card": lapsing}, Event.REJECT)
    # a first account's binding form, left half-filled with one scan
    await bind(runtime, drafter, fake_uscc(RNG), "临沂草稿测试有限公司")
    await say(runtime, drafter, "施工单位")
    await say(runtime, drafter, fake_id_number(RNG))
    draft_scan = tmp_path / "draft.jpg"
    draft_scan.write_bytes(sample_scan("draft"))
    await say(runtime, drafter, "", draft_scan)
    async with runtime.db.transaction() as session:
        draft = await Conversations(session).get(drafter.platform, drafter.user_id)
        assert draft is not None
        draft_hash = next(iter(draft.state["scans"].values()))["sha256"]
    assert runtime.scans.path(draft_hash).exists()
    now = utcnow()

    # ten days on: nothing is due yet
    early = await runtime.retention.run(now + timedelta(days=10))
    assert (early.lapsed, early.scan_orders, early.masked_orders, early.drafts) == (0, 0, 0, 0)
    assert all(on_disk(runtime, s) for s in (shared, licence, card, other))
    assert runtime.scans.path(draft_hash).exists()

    # past scan_days (180): the finished orders' scans are gone, the open order's are not
    done = await runtime.retention.run(now + timedelta(days=181))
    assert (done.lapsed, done.scan_orders, done.masked_orders, done.drafts) == (1, 3, 0, 1)
    for number in (finished, cancelled, binding.number):
        order, attachments, events = await state_of(runtime, number)
        assert attachments == []
        purged = [e for e in events if e.event is Event.SCANS_PURGED]
        assert len(purged) == 1
        assert purged[0].actor == "system"
        assert purged[0].detail["why"] == "retention"
        assert order.fields["handler_id_number"] == ID_NUMBER  # masked only at mask_days
    assert not on_disk(runtime, licence)
    assert not on_disk(runtime, card)
    assert not on_disk(runtime, authorisation)
    assert on_disk(runtime, shared)  # the open order names the same file
    assert on_disk(runtime, other)
    order, attachments, events = await state_of(runtime, still_open)
    assert order.status is OrderStatus.SUBMITTED
    assert {a.slot for a in attachments} == {"scan_reset_form", "scan_licence"}
    assert [e.event for e in events] == [Event.SUBMIT]
    # the rejected order nobody corrected in 90 days is cancelled; its scans' clock starts now
    order, attachments, events = await state_of(runtime, uncorrected)
    assert order.status is OrderStatus.CANCELLED
    assert (events[-1].actor, events[-1].reason) == ("system", "驳回后 90 天未修改，按保存期限取消")
    assert len(attachments) == 1
    assert f"{uncorrected}（证书解锁）驳回后 90 天没有修改，已按资料保存期限自动取消" in told(
        chat, applicant)
    # the idle draft is dropped with its scan
    async with runtime.db.transaction() as session:
        assert await Conversations(session).get(drafter.platform, drafter.user_id) is None
        assert await session.scalar(select(func.count()).select_from(OutgoingChat)
                                    .where(OutgoingChat.sent_at.is_not(None))) == 0
    assert not runtime.scans.path(draft_hash).exists()
    assert "请回复" in await say(runtime, drafter, "帮助")  # the menu, no form waiting

    # past mask_days (365): the numbers are kept masked only
    later = await runtime.retention.run(now + timedelta(days=366))
    assert (later.scan_orders, later.masked_orders) == (1, 3)  # the lapsed one's scans now
    _, attachments, _ = await state_of(runtime, uncorrected)
    assert attachments == []
    assert not on_disk(runtime, lapsing)
    for number in (finished, cancelled, binding.number):
        order, _, events = await state_of(runtime, number)
        assert order.fields["handler_id_number"] == mask_id_number(ID_NUMBER)
        assert [e.event for e in events].count(Event.NUMBERS_MASKED) == 1
    for number in (finished, cancelled):
        order, _, _ = await state_of(runtime, number)
        assert order.fields["mobile"] == mask_mobile(MOBILE)
        assert order.fields["handler_name"] == "张三"
    order, _, _ = await state_of(runtime, still_open)
    assert order.fields["handler_id_number"] == ID_NUMBER
    assert order.fields["mobile"] == MOBILE

    # what a technician reads afterwards, in private
    view = await technician(runtime, f"查看 {finished}")
    assert "附件已按保存期限删除" in view
    assert ID_NUMBER not in view
    assert mask_id_number(ID_NUMBER) in view
    history = await technician(runtime, f"历史 {finished}")
    assert "system 删除扫描件（2 个文件）：保存期满" in history
    assert "system 隐去身份证号和手机号：保存期满" in history

    # once done, a later pass finds nothing more to do and logs nothing twice
    again = await runtime.retention.run(now + timedelta(days=400))
    assert (again.scan_orders, again.masked_orders, again.drafts) == (0, 0, 0)
    _, _, events = await state_of(runtime, finished)
    assert [e.event for e in events].count(Event.SCANS_PURGED) == 1


async def test_delete_my_data_asked_and_confirmed_by_a_technician(
        runtime: Runtime, chat: RecordingChat) -> None:
    applicant, colleague = Account("qq", "7201"), Account("qq", "7202")
    uscc = fake_uscc(RNG)
    await bind_verified(runtime, applicant, uscc, COMPANY)
    await bind_verified(runtime, colleague, uscc, COMPANY)
    mine, open_scan, theirs = (a_scan(runtime, n) for n in ("mine", "open", "theirs"))
    finished = await an_unlock(runtime, applicant, {"scan_id_card": mine},
                               Event.APPROVE, Event.COMPLETE)
    still_open = await an_unlock(runtime, applicant, {"scan_id_card": open_scan})
    colleagues = await an_unlock(runtime, colleague, {"scan_id_card": theirs},
                                 Event.APPROVE, Event.COMPLETE)

    asked = await say(runtime, applicant, "删除我的资料")
    assert f"已提交删除资料申请：订单 {finished}" in asked
    assert f"办理中的订单 {still_open}" in asked
    assert "证书及其吊销记录" in asked
    staff = told(chat, "group qq:900")
    assert f"确认删除 {applicant}" in staff
    assert finished in staff
    assert "正在等待技术人员确认" in await say(runtime, applicant, "删除我的资料")
    order, attachments, _ = await state_of(runtime, finished)
    assert len(attachments) == 1  # nothing goes before a technician confirms

    reply = await technician(runtime, f"确认删除 {applicant}")
    assert f"已删除账号 {applicant} 的资料：订单 {finished}" in reply
    order, attachments, events = await state_of(runtime, finished)
    assert attachments == []
    assert not on_disk(runtime, mine)
    assert order.fields["handler_id_number"] == mask_id_number(ID_NUMBER)
    assert [e.event for e in events][-4:] == [Event.DELETION_REQUESTED, Event.DELETION_CONFIRMED,
                                             Event.SCANS_PURGED, Event.NUMBERS_MASKED]
    assert events[-2].detail["why"] == "request"
    # the open order and the colleague's order are untouched
    for number, scan in ((still_open, open_scan), (colleagues, theirs)):
        order, attachments, _ = await state_of(runtime, number)
        assert len(attachments) == 1
        assert order.fields["handler_id_number"] == ID_NUMBER
        assert on_disk(runtime, scan)
    news = told(chat, applicant)
    assert "您申请删除的个人资料已删除" in news
    assert "CA 的档案" in news
    assert f"办理中的订单 {still_open}" in news
    assert "应申请人要求删除" in await say(runtime, applicant, f"查询 {finished}")

    assert "没有待确认的删除资料申请" in await technician(runtime, f"确认删除 {applicant}")
    assert "没有可以删除的个人资料" in await say(runtime, applicant, "删除我的资料")
    # an account that never bound is told there is nothing of it, not asked to bind
    assert "没有保存您的个人资料" in await say(runtime, Account("qq", "7209"), "删除我的资料")


async def test_a_refused_deletion_keeps_the_data_and_tells_the_reason(
        runtime: Runtime, chat: RecordingChat) -> None:
    applicant = Account("qq", "7301")
    await bind_verified(runtime, applicant, fake_uscc(RNG), COMPANY)
    scan = a_scan(runtime, "refused")
    finished = await an_unlock(runtime, applicant, {"scan_id_card": scan}, Event.CANCEL)
    await say(runtime, applicant, "删除我的资料")

    assert "请写明理由" in await technician(runtime, f"拒绝删除 {applicant}")
    reply = await technician(runtime, f"拒绝删除 {applicant} 该订单涉及争议，需保留至处理完毕")
    assert "已拒绝" in reply
    assert "理由：该订单涉及争议，需保留至处理完毕" in told(chat, applicant)
    order, attachments, events = await state_of(runtime, finished)
    assert len(attachments) == 1
    assert on_disk(runtime, scan)
    assert order.fields["handler_id_number"] == ID_NUMBER
    assert events[-1].event is Event.DELETION_REFUSED
    assert "没有待确认的删除资料申请" in await technician(runtime, f"确认删除 {applicant}")
    # the applicant may ask again
    assert "已提交删除资料申请" in await say(runtime, applicant, "删除我的资料")


async def test_the_worker_purges_at_start_what_finished_long_ago(
        make_runtime: MakeRuntime, database_url: str) -> None:
    """[retention] enabled (the default): the daily worker's first pass runs at start."""
    runtime = await make_runtime(f'[database]\nurl = "{database_url}"\n')
    applicant = Account("qq", "7401")
    await bind_verified(runtime, applicant, fake_uscc(RNG), COMPANY)
    old, recent = a_scan(runtime, "old"), a_scan(runtime, "recent")
    numbers = []
    for scan, days in ((old, 200), (recent, 20)):
        async with runtime.db.transaction() as session:
            handler = await Handlers(session).get(applicant.platform, applicant.user_id)
            assert handler is not None
            order = await file_order(
                session, runtime.settings, order_type=OrderType.UNLOCK,
                values={"company_name": COMPANY, "mobile": MOBILE}, scans={"scan_id_card": scan},
                company_id=handler.company_id, handler_id=handler.id, actor=str(applicant))
            move_order(session, order, "qq:900001", Event.CANCEL,
                       at=utcnow() - timedelta(days=days))
            numbers.append(order.number)
    await runtime.stop()
    runtime = await make_runtime(f'[database]\nurl = "{database_url}"\n')

    await wait_for(lambda: not on_disk(runtime, old))
    _, attachments, _ = await state_of(runtime, numbers[0])
    assert attachments == []
    _, attachments, _ = await state_of(runtime, numbers[1])
    assert len(attachments) == 1
    assert on_disk(runtime, recent)


async def test_a_channels_record_of_someone_long_silent_is_deleted(runtime: Runtime) -> None:
    """A WeChat account's record (openid, last message id) goes after [retention] outbox_days
    of silence, never within the month its pushes count for; a recent one stays."""
    now = utcnow()
    async with runtime.db.transaction() as session:
        reaches = ChatReaches(session)
        await reaches.message("wechat", "o-silent", now - timedelta(days=40), "m1", 1)
        await reaches.message("wechat", "o-lately", now - timedelta(days=31), "m2", 1)
        await reaches.message("wechat", "o-today", now, "m3", 1)
    await runtime.retention.run(now)
    async with runtime.db.transaction() as session:
        kept = {r.user_id for r in await ChatReaches(session).of(
            [("wechat", "o-silent"), ("wechat", "o-lately"), ("wechat", "o-today")])}
    assert kept == {"o-lately", "o-today"}
