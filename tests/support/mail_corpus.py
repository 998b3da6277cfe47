"""Unlock-mailbox mails the way real clients write them, built byte by byte.

Every mail is made here (no real mail is kept): the header encodings follow what each client
is known to send — QQ Mail: UTF-8 base64 words and quoted encoded-word file names; Foxmail:
GBK and RFC 2231 file names split across continuations (mid-character); Outlook: GB2312 labels
carrying GBK-only characters, full-width ＋; phone clients: raw UTF-8, inline IMG_0001.JPG.
"""

import base64
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import quote_from_bytes

from bot.samples import sample_scan

MAILBOX = "unlock@example.test"
COMPANY = "临沂市喆镕建设工程有限公司"  # 喆 and 镕 are GBK, not GB2312


def word(text: str, charset: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


def b64(data: bytes) -> str:
    encoded = base64.b64encode(data).decode()
    return "\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))


def rfc2231(name: str, charset: str) -> str:
    """filename*0*=…; filename*1*=… split in the middle of a character's bytes."""
    quoted = quote_from_bytes(name.encode(charset), safe="")
    cut = 6 * (len(quoted) // 12) + 3  # a whole %XX token in, half of a two-byte character
    parts = [quoted[:cut], quoted[cut:]]
    return (f"filename*0*={charset}''{parts[0]};\r\n filename*1*={parts[1]}")


def part(content_type: str, data: bytes, disposition: str) -> bytes:
    return (f"Content-Type: {content_type}\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{b64(data)}\r\n").encode()


def mail(headers: dict[str, str], parts: list[bytes] | None = None, body: str = "",
         charset: str = "utf-8", raw_headers: bytes = b"") -> bytes:
    boundary = "----=_Part_cadesk_test"
    head = {"Date": format_datetime(datetime(2026, 11, 25, 9, 30, tzinfo=UTC)),
            "To": MAILBOX, "MIME-Version": "1.0", **headers}
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode() + raw_headers
    text = (f"Content-Type: text/plain; charset={charset}\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{b64(body.encode(charset))}\r\n").encode()
    if not parts:
        return lines + text.replace(b"\r\n\r\n", b"\r\n\r\n", 1)
    out = lines + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()
    for chunk in [text, *parts]:
        out += f"--{boundary}\r\n".encode() + chunk
    return out + f"--{boundary}--\r\n".encode()


def scans(prefix: str = "") -> list[bytes]:
    return [sample_scan(f"{prefix} mail {n}") for n in range(3)]


def qq_mail(uscc: str, n: int = 1) -> bytes:
    names = ["CA数字证书密码重置申请表.jpg", "营业执照.jpg", "经办人身份证.jpg"]
    files = [part(f'image/jpeg; name="{word(name, "utf-8")}"', data,
                  f'attachment; filename="{word(name, "utf-8")}"')
             for name, data in zip(names, scans(f"qq{n}"), strict=True)]
    return mail({"From": f'"{word("张三", "utf-8")}" <zhangsan@qq.test>',
                 "Subject": word(f"CA解锁+{COMPANY}", "utf-8"),
                 "Message-ID": f"<qq-{n}@qq.test>", "X-QQ-MIME": "TCMime 1.0 by Tencent"},
                files, body=f"您好，我单位UKEY密码忘记，申请解锁。统一社会信用代码：{uscc}")


def foxmail(uscc: str) -> bytes:
    names = ["密码重置申请表.jpg", "营业执照副本.jpg", "身份证复印件.jpg"]
    files = [part("image/jpeg", data, "attachment;\r\n " + rfc2231(name, "gbk"))
             for name, data in zip(names, scans("fox"), strict=True)]
    return mail({"From": f"{word('李四', 'gbk')} <lisi@foxmail.test>",
                 "Subject": word(f"CA解锁 + {COMPANY}", "gbk"),
                 "Message-ID": "<202611250930.foxmail@foxmail.test>", "X-Mailer": "Foxmail 7.2"},
                files, body=f"信用代码 {uscc}", charset="gbk")


def outlook(uscc: str) -> bytes:
    names = ["申请表.bmp", "执照.jpg", "身份证.jpg"]
    kinds = [("image/bmp", sample_scan("ol 0", fmt="BMP")), ("image/jpeg", sample_scan("ol 1")),
             ("image/jpeg", sample_scan("ol 2"))]
    files = [part(f'{ctype}; name="{word_gbk(name)}"', data,
                  f'attachment; filename="{word_gbk(name)}"')
             for name, (ctype, data) in zip(names, kinds, strict=True)]
    return mail({"From": f"{word_gbk('王五')} <wangwu@outlook.test>",
                 "Subject": word_gbk(f"CA解锁＋{COMPANY}"),
                 "Message-ID": "<DM6PR01MB0001@outlook.test>", "Thread-Index": "AQHZ"},
                files, body=f"统一社会信用代码：{uscc}", charset="gbk")


def word_gbk(text: str) -> str:
    """Outlook labels GBK bytes as gb2312."""
    return f"=?gb2312?B?{base64.b64encode(text.encode('gbk')).decode()}?="


def phone(uscc: str) -> bytes:
    files = [part("image/jpeg", data, f'inline; filename="IMG_000{n}.JPG"')
             for n, data in enumerate(scans("phone"), 1)]
    raw_subject = f"Subject: 回复: CA解锁 {COMPANY}\r\n".encode()
    return mail({"From": "赵六 <zhaoliu@phone.test>".encode().decode(),
                 "Message-ID": "<phone-1@phone.test>"}, files,
                body=f"{uscc}\r\n\r\n发自我的iPhone", raw_headers=raw_subject)


def forwarded(uscc: str) -> bytes:
    files = [part("application/pdf", b"%PDF-1.4\n" + b"0" * 4000 + b"\n%%EOF\n",
                  f'attachment; filename="{word("重置申请表.pdf", "utf-8")}"'),
             *[part("image/jpeg", data, f'attachment; filename="scan{n}.jpg"')
               for n, data in enumerate(scans("fw")[:2])]]
    return mail({"From": "admin@company.test", "Subject": word(f"转发: Fw: CA解锁-{COMPANY}",
                                                              "utf-8"),
                 "Message-ID": "<fw-1@company.test>", "References": "<orig@company.test>"},
                files, body=f"---- 转发邮件 ----\n单位代码：{uscc}")


def gb18030(uscc: str) -> bytes:
    files = [part("image/jpeg", data, f'attachment; filename="{n}.jpg"')
             for n, data in enumerate(scans("gb18030"))]
    return mail({"From": "gb@client.test", "Subject": word(f"CA解锁+{COMPANY}", "gb18030"),
                 "Message-ID": "<gb18030@client.test>"}, files, body=uscc)


def no_attachments() -> bytes:
    return mail({"From": "nobody@company.test", "Subject": word(f"CA解锁+{COMPANY}", "utf-8"),
                 "Message-ID": "<bare@company.test>"}, body="附件稍后补发")


def bounce() -> bytes:
    boundary = "bounce"
    return (f"From: MAILER-DAEMON@mx.example.test\r\nTo: {MAILBOX}\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce-1@mx.test>\r\n"
            f"Return-Path: <>\r\nContent-Type: multipart/report; report-type=delivery-status;"
            f' boundary="{boundary}"\r\n\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\n'
            f"delivery failed\r\n--{boundary}--\r\n").encode()


def auto_reply() -> bytes:
    return mail({"From": "zhangsan@qq.test", "Auto-Submitted": "auto-replied",
                 "Subject": word(f"自动回复: CA解锁+{COMPANY}", "utf-8"),
                 "Message-ID": "<auto-1@qq.test>"}, body="我正在休假")


def mailing_list() -> bytes:
    return mail({"From": "news@list.test", "List-Id": "<news.list.test>",
                 "Subject": word("CA解锁+某公司", "utf-8"), "Message-ID": "<list-1@list.test>"},
                body="newsletter")


def not_unlock() -> bytes:
    return mail({"From": "ask@company.test", "Subject": word("咨询：发票怎么开？", "utf-8"),
                 "Message-ID": "<ask-1@company.test>"}, body="请问发票")


def no_message_id(uscc: str) -> bytes:
    files = [part("image/jpeg", data, f'attachment; filename="{n}.jpg"')
             for n, data in enumerate(scans("noid"))]
    return mail({"From": "old@client.test", "Subject": f"CA解锁+{COMPANY}".encode().decode()},
                files, body=uscc)


# --- poison: mails that once stopped the mailbox (issue 12) --------------------------------
# Found by mutating a 30×20 GIF (seeded); Pillow 13 raises struct.error and IndexError on them
# inside the scan check, not the OSError a damaged image usually raises.
DAMAGED_GIFS = (bytes.fromhex(
    "4749463839611e00140080000000000000000021fe02686900210604001e0000002c000000001e00e100"
    "4008000001081c48b0a0c18308132a5cc8b0a1c38710234a9c48b1a2c58b18336adcc8b1a3c78f20438a"
    "2c1810003b"), bytes.fromhex(
    "4749463839611e00140081000005050500000000000000000021fe0a78787878787878787878002c0000"
    "00001e00140040082a0001081c48b0a0c18308132a5cc8b0a1c38710234a9c48b1a2c58b18336adcc8b1"
    "a3c78f60438a2c18100021"))


def separator_jpeg() -> bytes:
    """An 800×4 JPEG, the separator line a mail signature carries: Pillow's draft() scales its
    height to 0, and the scan check divided by it (ZeroDivisionError)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (800, 4), "white").save(out, "JPEG")
    return out.getvalue()


def with_attachment(uscc: str, tag: str, extra: bytes, name: str, ctype: str) -> bytes:
    """An unlock request with its three scans and one more file (a signature image, …)."""
    names = ["申请表.jpg", "营业执照.jpg", "身份证.jpg"]
    files = [part("image/jpeg", data, f'attachment; filename="{n}"')
             for n, data in zip(names, scans(tag), strict=True)]
    files.append(part(ctype, extra, f'inline; filename="{name}"'))
    return mail({"From": f"{tag}@client.test", "Subject": word(f"CA解锁+{COMPANY}", "utf-8"),
                 "Message-ID": f"<{tag}@client.test>"}, files, body=f"信用代码 {uscc}")


def long_subject(uscc: str) -> bytes:
    """An unlock request whose subject runs to 242 characters (the reply's subject column held
    200 and PostgreSQL refused it)."""
    subject = f"CA解锁+{COMPANY}（{'急' * (242 - len(COMPANY) - 7)}）"
    assert len(subject) == 242
    return mail({"From": "long@client.test", "Subject": word(subject, "utf-8"),
                 "Message-ID": "<long-subject@client.test>"},
                [part("image/jpeg", d, f'attachment; filename="{n}.jpg"')
                 for n, d in enumerate(scans("long-subject"))], body=uscc)


def long_sender(uscc: str) -> bytes:
    """An unlock request from an address of 300 characters (a column holds 254)."""
    return mail({"From": f"{'a' * 280}@{'b' * 16}.test",
                 "Subject": word(f"CA解锁+{COMPANY}", "utf-8"),
                 "Message-ID": "<long-from@client.test>"},
                [part("image/jpeg", d, f'attachment; filename="{n}.jpg"')
                 for n, d in enumerate(scans("long-from"))], body=uscc)


def control_characters(uscc: str) -> bytes:
    """NUL and other control characters, RFC 2047-encoded, in the subject, the sender's name
    and a file name (PostgreSQL refuses NUL in text)."""
    odd = "\x00\x01\x1b[31m\x7f\u202e"
    files = [part("image/jpeg", data,
                  f'attachment; filename="{word(f"申请表{odd}{n}.jpg", "utf-8")}"')
             for n, data in enumerate(scans("nul"))]
    return mail({"From": f'"{word(f"张{odd}三", "utf-8")}" <nul@client.test>',
                 "Subject": word(f"CA解锁+{COMPANY}{odd}", "utf-8"),
                 "Message-ID": "<nul@client.test>"}, files, body=f"{odd}信用代码 {uscc}{odd}")
