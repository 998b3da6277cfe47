"""Invoices the way companies need them: the applicant's 开票 asks the invoice type and the
e-mail, takes 抬头 and 税号 from the company, asks bank and address for a 专用发票; the
technician's 发票 records the number and the file, which reaches the applicant in chat and by
mail."""

import random
from pathlib import Path

from bot.domain.lifecycle import OrderType
from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_uscc, sample_scan
from bot.services.filing import file_order
from bot.services.messages import Account, Picture
from storage.repositories import Handlers
from tests.support.applicant import bind_verified, say
from tests.support.helpers import MakeRuntime, RecordingChat, ScanServer, wait_for
from tests.support.smtp_sink import SmtpSink

RNG = random.Random(1313)
APPLICANT, TECHNICIAN = Account("qq", "31301"), Account("console", "tech")
COMPANY = "临沂开票测试有限公司"
# the smallest PDF a reader opens: what an electronic invoice arrives as
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
       b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


def config(smtp_port: int | None = None) -> str:
    mail = ("" if smtp_port is None else
            f'[email]\nenabled = true\nhost = "127.0.0.1"\nport = {smtp_port}\n'
            'security = "none"\nfrom_address = "ca@centre.example"\npoll_seconds = 0.2\n')
    return f'[staff]\ntechnicians = ["{TECHNICIAN}"]\n[fees]\ncertificate = 260\n{mail}'


async def paid_order(runtime: Runtime, uscc: str) -> str:
    """A verified applicant's 新办 order with a fee (filed directly: 开票 is what is tested)."""
    await bind_verified(runtime, APPLICANT, uscc, COMPANY)
    async with runtime.db.transaction() as session:
        handler = await Handlers(session).get(APPLICANT.platform, APPLICANT.user_id)
        assert handler is not None
        order = await file_order(
            session, runtime.settings, order_type=OrderType.CERTIFICATE,
            values={"cert_type": "机构证书", "years": "1年", "region": "临沂",
                    "ukey_count": "1", "apply_kind": "新办", "company_name": COMPANY,
                    "org_id_type": "统一社会信用代码", "org_id": uscc, "handler_name": "张三",
                    "handler_id_number": fake_id_number(RNG), "mobile": "13812345678",
                    "self_pickup": "自取"},
            scans={}, company_id=handler.company_id, handler_id=handler.id,
            actor=str(APPLICANT))
        return order.number


def told(runtime: Runtime, account: Account) -> list[object]:
    chat = runtime.chat_outbox.chat
    assert isinstance(chat, RecordingChat)
    return [reply for to, reply in chat.sent if to == str(account)]


async def test_a_general_invoice_reaches_the_applicant_in_chat_and_by_mail(
        make_runtime: MakeRuntime, tmp_path: Path) -> None:
    with SmtpSink() as sink:
        runtime = await make_runtime(config(sink.port))
        uscc = fake_uscc(RNG)
        number = await paid_order(runtime, uscc)

        started = await say(runtime, APPLICANT, f"开票 {number}")
        assert f"发票抬头为【{COMPANY}】，纳税人识别号 {uscc}" in started
        assert "【发票类型】" in started
        assert "1. 普通发票" in started
        assert "（第 1/4 项）" in started  # until 普通发票 is chosen: bank and address too
        assert "【接收电子发票的邮箱】（第 2/2 项）" in await say(runtime, APPLICANT, "普票")
        assert "有效的电子邮箱" in await say(runtime, APPLICANT, "财务室")
        summary = await say(runtime, APPLICANT, "caiwu@company.example")
        assert f"发票抬头：{COMPANY}" in summary
        assert f"纳税人识别号：{uscc}" in summary
        assert "1. 发票类型：普通发票" in summary
        assert "开户银行及账号" not in summary  # a 普通发票 does not ask it
        done = await say(runtime, APPLICANT, "确认提交")
        assert f"已提交订单 {number} 的开票申请（普通发票）" in done
        assert "电子发票会发送到 caiwu@company.example" in done
        staff = [str(r) for r in told(runtime, TECHNICIAN)]
        assert any("【开票申请】" in r and number in r and "普通发票" in r for r in staff)

        pdf = tmp_path / "invoice.pdf"
        pdf.write_bytes(PDF)
        [recorded] = await runtime.desk.execute(
            TECHNICIAN, f"发票 {number} 37002612345678 {pdf}", private=True)
        assert "已登记" in str(recorded)
        assert "附发票文件" in str(recorded)
        [notice] = [str(r) for r in told(runtime, APPLICANT) if "发票已开具" in str(r)]
        assert "37002612345678" in notice
        assert "已发送到邮箱 caiwu@company.example" in notice

        await wait_for(lambda: any(m["To"] == "caiwu@company.example" for m in sink.messages))
        [mail] = [m for m in sink.messages if m["To"] == "caiwu@company.example"]
        assert "发票已开具" in mail["Subject"]
        [attached] = list(mail.iter_attachments())
        assert attached.get_filename() == f"发票-{number}.pdf"
        assert attached.get_content_type() == "application/pdf"
        assert attached.get_content() == PDF

        detail = await say(runtime, APPLICANT, f"查询 {number}")
        assert "发票信息：37002612345678" in detail
        assert "开票申请：发票抬头" in detail
        assert "发票类型：普通发票" in detail
        assert "发票已开具" in await say(runtime, APPLICANT, f"开票 {number}")  # not twice


async def test_a_special_invoice_asks_bank_and_address_and_a_photo_comes_in_chat(
        make_runtime: MakeRuntime, scan_server: ScanServer) -> None:
    runtime = await make_runtime(config())  # no [email]: nothing promised by mail
    number = await paid_order(runtime, fake_uscc(RNG))
    await say(runtime, APPLICANT, f"开票 {number}")
    assert "【开户银行及账号】" in await say(runtime, APPLICANT, "增值税专用发票")
    bank = "中国银行临沂兰山支行 6217000012345678"
    assert "【地址、电话】" in await say(runtime, APPLICANT, bank)
    assert "【接收电子发票的邮箱】" in await say(runtime, APPLICANT,
                                          "临沂市兰山区测试路 1 号 0539-8123456")
    summary = await say(runtime, APPLICANT, "caiwu@company.example")
    assert "1. 发票类型：专用发票" in summary
    assert "2. 开户银行及账号：中国银行临沂兰山支行 6217000012345678" in summary
    assert "3. 地址、电话：临沂市兰山区测试路 1 号 0539-8123456" in summary
    done = await say(runtime, APPLICANT, "确认提交")
    assert "开票申请（专用发票）" in done
    assert "邮箱" not in done  # mail is off: only the chat is promised

    [view] = await runtime.desk.execute(TECHNICIAN, f"查看 {number}", private=True)
    assert "开户银行及账号：中国银行临沂兰山支行 6217000012345678" in str(view)

    photo = sample_scan("paper invoice")
    url = scan_server.add("invoice.jpg", photo)
    [recorded] = await runtime.desk.execute(TECHNICIAN, f"发票 {number} 12345678 {url}",
                                            private=True)
    assert "已登记" in str(recorded)
    replies = told(runtime, APPLICANT)
    [notice] = [str(r) for r in replies if "发票已开具" in str(r)]
    assert "发票图片见下" in notice
    assert any(isinstance(r, Picture) and r.data == photo for r in replies)


async def test_what_cannot_be_invoiced_is_refused_with_the_reason(
        make_runtime: MakeRuntime, tmp_path: Path) -> None:
    runtime = await make_runtime(config())
    number = await paid_order(runtime, fake_uscc(RNG))
    assert "请在「开票」后面写上订单号" in await say(runtime, APPLICANT, "开票")
    assert "没有找到本单位的订单 XB-261125-7KQ3" in await say(runtime, APPLICANT,
                                                         "开票 XB-261125-7KQ3")
    not_a_file = tmp_path / "invoice.txt"
    not_a_file.write_text("发票")
    [refused] = await runtime.desk.execute(
        TECHNICIAN, f"发票 {number} 12345678 {not_a_file}", private=True)
    assert "发票文件须为 PDF" in str(refused)
    assert "发票未登记" in str(refused)
    assert "发票信息：—" in await say(runtime, APPLICANT, f"查询 {number}")
