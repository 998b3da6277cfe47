"""End to end on QQ's official bot platform: the real bot process, the platform's stand-in
(tests/support/qq_platform.py) signing webhook events and taking the OpenAPI calls."""

import hashlib
import json
import random
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bot.samples import fake_id_number, fake_uscc, sample_scan
from tests.support.helpers import PENDING_BINDING
from tests.support.qq_platform import QqPlatform, make_qq_instance, platform_key

USER, TECHNICIAN = "E7A1C0FFEE0000000000000000000001", "7EC40000000000000000000000000002"
STAFF = f"""
[staff]
technicians = ["qqbot:{TECHNICIAN}"]
"""


@pytest.fixture
async def qq():
    async with QqPlatform() as platform:
        yield platform


def log_of(tmp_path: Path) -> str:
    return (tmp_path / "bot.log").read_text(errors="replace")


def table(tmp_path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(tmp_path / "live-data" / "cadesk.db") as db:
        return db.execute(sql).fetchall()


async def test_a_reply_names_the_users_message_and_the_dialogue_fits_one_message(
        tmp_path: Path, qq: QqPlatform) -> None:
    bot = make_qq_instance(tmp_path, qq, log_level="DEBUG")
    await bot.start()
    try:
        msg_id = await qq.say(USER, "你好")
        [answer] = await qq.replies_until("【统一社会信用代码】")
        second = await qq.say(USER, fake_uscc(random.Random(1)))
        [question] = await qq.replies_until("【单位名称】")
        assert await qq.deliver_again() == 200  # the platform's retry: acknowledged, ...
        forms = await qq.say(USER, "模板")  # ... and not taken as the 单位名称
        pages = await qq.replies_until("您有一份未完成的【绑定单位】")
        await qq.say(TECHNICIAN, "待审核")  # not yet in [staff]: how they learn their account
        await qq.replies_until("技术人员")
    finally:
        await bot.stop()
    # the welcome and the first question: two replies of the dialogue, one message on QQ
    assert "欢迎使用" in answer.content
    assert (answer.openid, answer.msg_id) == (USER, msg_id)
    assert question.msg_id == second
    assert qq.refused == []
    assert qq.token_requests == 1  # one token, kept for its lifetime
    # 模板: its text captions the first page, each page goes as the platform's rich media
    assert [p.msg_id for p in pages] == [forms] * 4
    assert len({p.msg_seq for p in pages}) == 4
    assert [p.picture[:4] for p in pages[:3]] == [b"\x89PNG"] * 3
    assert pages[0].content.startswith("需要打印的表格共 3 份")
    assert "[ERROR]" not in log_of(tmp_path)
    assert f"refused: qqbot:{TECHNICIAN} is not a technician" in log_of(tmp_path)
    assert qq.secret not in log_of(tmp_path)  # nonebot logs its options at DEBUG


async def test_forged_or_unsigned_events_are_refused_and_reach_no_conversation(
        tmp_path: Path, qq: QqPlatform) -> None:
    bot = make_qq_instance(tmp_path, qq)
    await bot.start()
    try:
        _, payload = qq.event(USER, "你好")
        body = json.dumps(payload, ensure_ascii=False).encode()
        unsigned = {k: v for k, v in qq.signed(body).items() if not k.startswith("X-Signature")}
        forged = qq.signed(body, secret="a-forger-guesses-the-secret-0000")
        tampered = body.replace("你好".encode(), "新办证书".encode())
        statuses = [(await qq.post(body, unsigned))[0], (await qq.post(body, forged))[0],
                    (await qq.post(tampered, qq.signed(body)))[0]]

        # the callback validation signs what it is sent: a forged event smuggled in as its
        # token would come back signed; the bot signs only a token of the platform's shape
        smuggled = json.dumps({"op": 13, "d": {"plain_token": body.decode(),
                                               "event_ts": "1700000000"}}).encode()
        oracle, _ = await qq.post(smuggled, {"X-Bot-Appid": qq.app_id,
                                             "Content-Type": "application/json"})
        status, answer = await qq.validate_callback("Arq0D5A61EgUu4OxUvOp", "1725442341")
    finally:
        await bot.stop()
    assert statuses == [401, 401, 401]
    assert oracle == 400
    assert status == 200
    signed = json.loads(answer)
    public: Ed25519PublicKey = platform_key(qq.secret).public_key()
    public.verify(bytes.fromhex(signed["signature"]), b"1725442341Arq0D5A61EgUu4OxUvOp")
    assert signed["plain_token"] == "Arq0D5A61EgUu4OxUvOp"
    assert qq.sent == []
    assert table(tmp_path, "SELECT count(*) FROM conversations") == [(0,)]
    assert table(tmp_path, "SELECT count(*) FROM handlers") == [(0,)]


def talker(qq: QqPlatform):
    """``say(text, until, who=, attachments=)``: a user's message, and the bot's messages up
    to one containing ``until``, as one text (a picture as [图片])."""

    async def say(text: str, until: str, *, who: str = USER,
                  attachments: list[dict] | None = None) -> str:
        await qq.say(who, text, attachments)
        return "\n".join(s.text() for s in await qq.replies_until(until))

    return say


async def bind_until_first_scan(say, uscc: str, id_number: str) -> None:
    """A company's first account binds; its binding documents form waits for 附件一."""
    await say("你好", "【统一社会信用代码】")
    await say(uscc, "【单位名称】")
    await say("临沂官方机器人测试有限公司", "【注册协议】")
    await say("同意", "【申报人】")
    await say(*PENDING_BINDING[0])
    await say(*PENDING_BINDING[1])  # the documents form opens
    await say("施工单位", "【经办人身份证号】")
    await say(id_number, "【附件一")


async def test_a_photo_on_a_private_address_is_not_fetched_unless_its_host_is_trusted(
        tmp_path: Path, qq: QqPlatform) -> None:
    rng = random.Random(17)
    photo = qq.add_photo("letter", sample_scan("qq letter"))
    bot = make_qq_instance(tmp_path, qq, trust_media=False)  # media_hosts = []
    await bot.start()
    try:
        say = talker(qq)
        await bind_until_first_scan(say, fake_uscc(rng), fake_id_number(rng))
        refused = await say("", "图片地址不安全", attachments=[photo])
    finally:
        await bot.stop()
    assert "【附件二" not in refused
    assert qq.downloads == []  # the loopback address was refused before any connection


async def test_a_whole_application_with_scans_on_qq_official(
        tmp_path: Path, qq: QqPlatform) -> None:
    """Bind, the binding verified by a technician on QQ official, 新办 with the four scans
    sent as attachments, 确认提交: the order is filed with the scans' very bytes; the
    technician reviews it (查看, 通过) from QQ official and the payment QR code reaches the
    applicant as a picture."""
    rng = random.Random(16)
    uscc, id_number = fake_uscc(rng), fake_id_number(rng, ends_with_x=True)
    binding = [qq.add_photo(f"binding-{n}", sample_scan(f"qq binding {n}")) for n in range(2)]
    scans = [sample_scan(f"qq scan {n}") for n in range(4)]
    photos = [qq.add_photo(f"scan-{n}", data) for n, data in enumerate(scans)]
    bot = make_qq_instance(tmp_path, qq, STAFF)
    await bot.start()
    try:
        say = talker(qq)
        await bind_until_first_scan(say, uscc, fake_id_number(rng))
        await say("", "【附件二", attachments=[binding[0]])
        await say("", "确认提交", attachments=[binding[1]])
        done = await say("确认提交", "绑定申请已提交")
        request = done.split("编号 ", 1)[1].split("。", 1)[0]
        await say(f"通过 {request}", "已通过绑定申请", who=TECHNICIAN)
        await qq.received(USER, "绑定已核验")

        await say("新办证书", "【证书年限】")
        for answer, until in [("1", "【项目所属地区】"), ("临沂", "【办理Ukey数量】"),
                              ("1", "【经办人姓名】"), ("张三", "【经办人身份证号】"),
                              (id_number, "【手机号】"), ("13812345678", "【是否自取】"),
                              ("2", "【地级市】"), ("山东省临沂市兰山区", "【邮寄地址】"),
                              ("金雀山路 1 号", "【附件一 信息印章采集表】")]:
            await say(answer, until)
        for photo, until in zip(photos, ["【附件二", "【附件三", "【附件四", "确认提交"],
                                strict=True):
            summary = await say("", until, attachments=[photo])
        assert "138****5678" in summary
        assert id_number not in summary
        done = await say("确认提交", "订单号：")
        number = done.split("订单号：")[1].split()[0]
        shown = await say(f"查看 {number}", "机构营业执照\n[图片]", who=TECHNICIAN)
        assert shown.count("[图片]") == 4
        await say(f"通过 {number}", f"已通过订单 {number}", who=TECHNICIAN)
        await qq.received(USER, "审核通过")  # the approval's notice, through the outbox ...
        qr = await qq.received(USER, "支付二维码")  # ... and its QR code as rich media
    finally:
        await bot.stop()

    [(order_id, status, fields)] = table(
        tmp_path, f"SELECT id, status, fields FROM orders WHERE number = '{number}'")
    assert status == "approved"
    assert id_number in fields
    by_slot = dict(table(tmp_path, f"SELECT slot, sha256 FROM attachments "
                                   f"WHERE order_id = {order_id}"))
    assert by_slot == dict(zip(["scan_form", "scan_id_card", "scan_authorisation", "scan_licence"],
                               (hashlib.sha256(d).hexdigest() for d in scans), strict=True))
    # the technician's 查看 went as replies to their message: text and four scans, within
    # the five a message allows
    pictures = [s for s in qq.sent if s.openid == TECHNICIAN and s.picture is not None]
    assert {hashlib.sha256(s.picture).hexdigest() for s in pictures[-4:]} == set(by_slot.values())
    assert qr.picture is not None
    assert qr.picture.startswith(b"\x89PNG")
    [told] = [s for s in qq.sent
              if s.openid == TECHNICIAN and f"{number} 新订单待审核" in s.content]
    # a notice nobody asked for, inside the technician's reply window (they wrote within the
    # hour): a reply to their last message, so none of the month's 4 proactive messages is used
    assert told.msg_id is not None
    assert qq.refused == []
    log = log_of(tmp_path)
    assert "[ERROR]" not in log
    assert id_number not in log
    assert "13812345678" not in log


async def test_a_mention_in_a_group_is_shown_the_way_to_a_private_chat(
        tmp_path: Path, qq: QqPlatform) -> None:
    group, member, other = "G0C0FFEE0000000000000000000000001", "M1" + "0" * 30, "M2" + "0" * 30
    id_number = fake_id_number(random.Random(3))
    bot = make_qq_instance(tmp_path, qq, STAFF)
    await bot.start()
    try:
        first = await qq.say_in_group(group, member, f"我要新办证书，身份证 {id_number}")
        [told] = await qq.replies_until("私聊我")
        await qq.say_in_group(group, member, "在吗")  # the way was just shown: quiet
        quiet = await qq.replies_for(1.0)
        await qq.say_in_group(group, member, "手机 13812345678")  # a number: told to recall
        [recall] = await qq.replies_until("撤回")
        await qq.say_in_group(group, other, "新办")
        [other_told] = await qq.replies_until("私聊我")
    finally:
        await bot.stop()
    # in the group, as a reply to the mention; the number is not repeated
    assert (told.group, told.openid, told.msg_id) == (True, group, first)
    assert "请尽快撤回" in told.content
    assert "点我的头像，选「发消息」私聊我" in told.content
    assert id_number not in told.content
    assert quiet == []
    assert "私聊我" not in recall.content
    assert "13812345678" not in recall.content
    assert "撤回" not in other_told.content
    assert qq.refused == []
    # nothing of theirs was kept: a group is no place for a form
    assert table(tmp_path, "select count(*) from conversations") == [(0,)]
    assert id_number not in log_of(tmp_path)
    assert "[ERROR]" not in log_of(tmp_path)
