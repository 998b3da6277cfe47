"""Hostile scans through the real applicant dialogue, fetched over HTTP as QQ's media server
would hand them out: each is refused with its reason in Chinese, the same 附件 is asked again,
and nothing is kept — no file in the scan store, no row, nothing in the saved form.

Every file is made here (Pillow, a few bytes patched); test_scans.py checks the rules one by
one at the domain level, this corpus checks them end to end, plus polyglots and bombs of other
formats."""

import io
import struct
import zipfile
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat
from sqlalchemy import func, select

from bot.runtime import Runtime
from bot.samples import fake_id_number, fake_uscc, sample_scan
from bot.services.messages import Account, ImageSource, Incoming
from bot.services.unlock.inbox import FILED
from storage.models import Attachment
from storage.repositories import Conversations
from tests.support import mail_corpus as corpus
from tests.support.helpers import MakeRuntime, ScanServer, wait_for
from tests.support.poison_images import poison_images
from tests.support.smtp_sink import SmtpSink


def jpeg(label: str = "hostile") -> bytes:
    return sample_scan(label)


def image_as(fmt: str, size: tuple[int, int] = (1240, 1754)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "white").save(out, fmt)
    return out.getvalue()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims another size: a decompression bomb."""
    data = bytearray(image_as("JPEG", (64, 64)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    data = bytearray(image_as("BMP", (8, 8)))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header (IHDR, its CRC made right) claims another size."""
    data = bytearray(image_as("PNG", (64, 64)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(data[12:29]))
    return bytes(data)


def animated_gif() -> bytes:
    frames = [Image.new("P", (1240, 1754), n) for n in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


def zip_of(name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, content)
    return out.getvalue()


HTML = (b"<!DOCTYPE html><html><body><script>fetch('/steal?c='+document.cookie)</script>"
        b"</body></html>")
SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="1240" height="1754">'
       b"<script>alert(1)</script></svg>")

# name (as the file is called when sent) → bytes, what the refusal must say
CORPUS: dict[str, tuple[Callable[[], bytes], str]] = {
    "renamed-pdf.jpg": (lambda: b"%PDF-1.7\n" + b"1 0 obj <<>> endobj\n" * 500 + b"%%EOF\n",
                        "您发送的是 PDF 文件"),
    "truncated.jpg": (lambda: jpeg()[: len(jpeg()) * 3 // 5], "损坏或不完整"),
    "bomb-jpeg.jpg": (lambda: jpeg_claiming(30000, 30000), "像素过多"),
    "bomb-bmp.bmp": (lambda: bmp_claiming(20000, 20000), "像素过多"),
    "oversized.bmp": (lambda: sample_scan("big", fmt="BMP", size=(1400, 2000)), "超过 2 MB"),
    "animated.gif": (animated_gif, "动图"),
    "zip-appended.jpg": (lambda: jpeg() + zip_of("payload.exe", b"MZ" + b"\0" * 200),
                         "夹带了其他文件"),
    "html-appended.jpg": (lambda: jpeg() + HTML, "夹带了其他文件"),
    "html-prepended.jpg": (lambda: HTML + jpeg(), "无法识别"),
    "zip-prepended.jpg": (lambda: zip_of("a.txt", b"hello") + jpeg(), "无法识别"),
    "svg-with-script.jpg": (lambda: SVG, "无法识别"),
    # a phone's PNG is taken (kept as JPEG), a hostile one is not, whatever it is called
    "zip-appended-png.jpg": (lambda: image_as("PNG") + zip_of("payload.exe", b"MZ" + b"\0" * 200),
                             "夹带了其他文件"),
    "bomb-png.png": (lambda: png_claiming(30000, 30000), "像素过多"),
    "truncated.png": (lambda: (png := sample_scan("cut", fmt="PNG"))[: len(png) // 2],
                      "损坏或不完整"),
    "thumbnail.png": (lambda: image_as("PNG", (120, 160)), "分辨率太低"),
    "webp-renamed.jpg": (lambda: image_as("WEBP"), "您发送的是 WEBP 格式"),
    "tiff-renamed.jpg": (lambda: image_as("TIFF", (600, 800)), "您发送的是 TIFF 格式"),
    "thumbnail.jpg": (lambda: image_as("JPEG", (120, 160)), "分辨率太低"),
    "empty.jpg": (lambda: b"", "是空的"),
    # what crashed the check (the applicant heard nothing) or went through it: tiny and
    # damaged images, files inside JPEG segments and GIF comments
    **{name: (lambda data=data: data, reason)
       for name, (data, reason) in poison_images().items()},
}


@pytest.fixture
async def runtime(make_runtime: MakeRuntime) -> Runtime:
    return await make_runtime("[scans]\nmax_megabytes = 2\n[fees]\ncertificate = 100\n")


def stored_files(runtime: Runtime) -> list[Path]:
    root = runtime.scans.root
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


Say = Callable[[Incoming], Awaitable[str]]


async def at_the_first_scan(runtime: Runtime, user_id: str) -> Say:
    """An applicant bound and through the certificate form's questions, asked for 附件一."""
    account = Account("qq", user_id)

    async def say(incoming: Incoming) -> str:
        return "\n".join(await runtime.dialogue.handle(account, incoming))

    for answer in ("你好", fake_uscc(), "临沂恶意文件测试有限公司", "同意", "王小明", "13812345678",
                   "取消", "是", "新办证书", "1",
                   "临沂", "1", "张三", fake_id_number(), "13812345678", "自取"):
        await say(Incoming(text=answer))
    return say


async def test_hostile_scans_are_refused_with_a_reason_and_nothing_is_kept(
        runtime: Runtime, scan_server: ScanServer) -> None:
    say = await at_the_first_scan(runtime, "66601")
    for name, (make, reason) in CORPUS.items():
        url = scan_server.add(f"hostile-{name}", make())
        if name == "oversized.bmp":  # streamed without a length: the cap holds while reading
            scan_server.chunked.add(f"hostile-{name}")
        reply = await say(Incoming(images=(ImageSource(url=url),)))
        assert "【附件一 信息印章采集表】未通过检查" in reply, (name, reply)
        assert reason in reply, (name, reply)
        assert "请发送【附件一 信息印章采集表】的图片" in reply, (name, reply)
        assert stored_files(runtime) == [], name
    async with runtime.db.transaction() as session:
        state = (await Conversations(session).get("qq", "66601")).state
        assert await session.scalar(select(func.count()).select_from(Attachment)) == 0
    assert state["scans"] == {}
    assert state["position"] == "scan_form"

    # the applicant then sends a proper scan: taken, and it is the only file kept
    good = scan_server.add("hostile-good.jpg", jpeg("good"))
    assert "已收到【附件一" in await say(Incoming(images=(ImageSource(url=good),)))
    assert len(stored_files(runtime)) == 1


@pytest.mark.parametrize("failing", ["accept_scan", "scan store"])
async def test_an_unexpected_failure_in_the_scan_step_is_answered(
        runtime: Runtime, scan_server: ScanServer, monkeypatch: pytest.MonkeyPatch,
        failing: str) -> None:
    """A bug in the check or a full disk under the scan store: the applicant is told to send
    the picture again, not left without an answer, and nothing is kept."""
    say = await at_the_first_scan(runtime, f"666{len(failing)}")

    def broken(*_: object) -> None:
        raise (RuntimeError("a bug") if failing == "accept_scan"
               else OSError(28, "No space left on device"))

    if failing == "accept_scan":
        monkeypatch.setattr("bot.services.applications.dialogue.accept_scan", broken)
    else:
        monkeypatch.setattr(runtime.scans, "save", broken)
    url = scan_server.add(f"unexpected-{len(failing)}.jpg", jpeg("fine"))
    reply = await say(Incoming(images=(ImageSource(url=url),)))
    assert "【附件一 信息印章采集表】这张图片无法处理，请重新拍照后发送。" in reply
    assert "请发送【附件一 信息印章采集表】的图片" in reply
    assert stored_files(runtime) == []
    monkeypatch.undo()
    assert "已收到【附件一" in await say(Incoming(images=(ImageSource(url=url),)))


async def test_an_unlock_mail_with_poison_images_is_filed_and_each_is_named(
        make_runtime: MakeRuntime, smtp: SmtpSink) -> None:
    """The issue's mail: the three proper scans and, beside them, a separator line, a damaged
    GIF, a JPEG with a ZIP in its comment… The mail is filed, the reply names each image that
    could not be used (by its place: the reply echoes nothing the sender wrote) and why; none of
    them is kept."""
    runtime = await make_runtime(f"""
[email]
enabled = true
host = "127.0.0.1"
port = {smtp.port}
security = "none"
from_address = "{corpus.MAILBOX}"
""")
    names = ["CA数字证书密码重置申请表.jpg", "营业执照.jpg", "经办人身份证.jpg"]
    files = [(name, data) for name, data in zip(names, corpus.scans("poison"), strict=True)]
    poison = poison_images()
    files += [(name, data) for name, (data, _) in poison.items()]
    raw = corpus.mail({"From": "zhangsan@qq.test", "Subject": f"CA解锁+{corpus.COMPANY}",
                       "Message-ID": "<poison@qq.test>"},
                      [corpus.part(f'image/jpeg; name="{name}"', data,
                                   f'attachment; filename="{name}"') for name, data in files],
                      body=f"申请解锁。统一社会信用代码：{fake_uscc()}")
    filing = await runtime.inbox.file(f"{corpus.MAILBOX}/INBOX", 1, 1, raw)
    assert filing.outcome == FILED, filing
    await wait_for(lambda: len(smtp.messages) == 1)
    reply = smtp.messages[0].get_content()
    assert "以下附件未能使用" in reply
    # named by position (the fourth attachment on), never by the name the sender gave it
    for n, (name, (_, reason)) in enumerate(poison.items(), start=len(names) + 1):
        assert f"- 第 {n} 个附件：{reason}" in reply, (name, reply)
        assert name not in reply
    assert len(stored_files(runtime)) == 3  # the proper scans only


def stored_jpeg(runtime: Runtime) -> Image.Image:
    [path] = stored_files(runtime)
    with Image.open(path) as image:
        assert image.format == "JPEG"
        image.load()
        return image


def close_to(png: bytes, stored: Image.Image) -> bool:
    with Image.open(io.BytesIO(png)) as original:
        diff = ImageChops.difference(original.convert("RGB"), stored.convert("RGB"))
        return original.size == stored.size and max(ImageStat.Stat(diff).mean) < 2


async def test_a_phone_png_is_taken_and_kept_as_a_jpeg(
        runtime: Runtime, scan_server: ScanServer) -> None:
    """What phones and QQ screenshots give: the checks pass on the PNG as sent; the scan store
    and the order keep a JPEG of the same size and pixels."""
    say = await at_the_first_scan(runtime, "66610")
    png = sample_scan("phone", fmt="PNG")
    url = scan_server.add("phone-screenshot.png", png)
    reply = await say(Incoming(images=(ImageSource(url=url),)))
    assert "已收到【附件一 信息印章采集表】" in reply, reply
    assert close_to(png, stored_jpeg(runtime))
    async with runtime.db.transaction() as session:
        state = (await Conversations(session).get("qq", "66610")).state
    assert state["scans"]["scan_form"]["format"] == "JPEG"


async def test_an_unlock_mail_with_png_scans_keeps_them_as_jpeg(
        make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime()
    png = sample_scan("mailed", fmt="PNG")
    names = ["CA数字证书密码重置申请表.png", "营业执照.jpg", "经办人身份证.jpg"]
    datas = [png, *corpus.scans("png")[1:]]
    raw = corpus.mail({"From": "lisi@qq.test", "Subject": f"CA解锁+{corpus.COMPANY}",
                       "Message-ID": "<png@qq.test>"},
                      [corpus.part(f'image/png; name="{name}"', data,
                                   f'attachment; filename="{name}"')
                       for name, data in zip(names, datas, strict=True)],
                      body=f"申请解锁。统一社会信用代码：{fake_uscc()}")
    filing = await runtime.inbox.file(f"{corpus.MAILBOX}/INBOX", 1, 1, raw)
    assert filing.outcome == FILED, filing
    async with runtime.db.transaction() as session:
        rows = (await session.scalars(select(Attachment))).all()
    assert {row.format for row in rows} == {"JPEG"}
    form = next(row for row in rows if row.slot == "scan_reset_form")
    with Image.open(runtime.scans.path(form.sha256)) as stored:
        assert stored.format == "JPEG"
        stored.load()
        assert close_to(png, stored)
