import hashlib
import io
import random
import struct
import zlib

import pytest
from loguru import logger
from PIL import Image, ImageChops, ImageStat
from PIL.PngImagePlugin import PngInfo

from bot.domain import scans
from bot.domain.scans import (
    MAIL_FORMATS,
    InvalidScan,
    ScanRules,
    UnreadableScan,
    accept_scan,
    inspect_scan,
)
from bot.samples import sample_scan
from tests.support.poison_images import (
    SCAN_SIZE,
    SCRIPT,
    XMP,
    adobe_cmyk_jpeg,
    bmp,
    damaged_gif,
    gif,
    jpeg,
    mpf_jpeg,
    page,
    phone_jpeg,
    poison_images,
    with_gif_extension,
    with_segment,
    zip_of,
)


@pytest.mark.parametrize("fmt", ["JPEG", "BMP", "GIF"])
def test_allowed_formats_pass_with_their_facts(fmt: str) -> None:
    data = sample_scan("x", fmt=fmt)
    info = inspect_scan(data)
    assert (info.format, info.width, info.height, info.size) == (fmt, 1240, 1754, len(data))
    assert len(info.sha256) == 64


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        image.load()
        return image


def difference(a: Image.Image, b: Image.Image) -> float:
    """The mean difference per channel, 0–255."""
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def test_a_png_passes_the_checks_and_is_kept_as_a_faithful_jpeg() -> None:
    png = sample_scan("phone screenshot", fmt="PNG")
    assert inspect_scan(png).format == "PNG"  # the checks see the bytes as they came
    accepted = accept_scan(png)
    stored = decoded(accepted.data)
    assert (accepted.info.format, accepted.info.width, accepted.info.height) == (
        "JPEG", 1240, 1754)
    assert stored.size == (1240, 1754)  # never resized
    assert accepted.info.size == len(accepted.data)
    assert accepted.info.sha256 == hashlib.sha256(accepted.data).hexdigest()
    with Image.open(io.BytesIO(png)) as original:
        assert difference(original, stored) < 1.5
    jpeg_as_sent = sample_scan("x")  # anything else is kept byte for byte
    assert accept_scan(jpeg_as_sent).data == jpeg_as_sent


def test_a_transparent_png_is_flattened_on_white_and_turned_upright() -> None:
    image = Image.new("RGBA", (1754, 1240), (0, 0, 0, 0))  # transparent, lying on its side
    image.paste((0, 0, 0, 255), (0, 0, 200, 100))  # a black mark top left as saved
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90° clockwise to show
    out = io.BytesIO()
    image.save(out, "PNG", exif=exif)
    stored = decoded(accept_scan(out.getvalue()).data).convert("RGB")
    assert stored.size == (1240, 1754)  # upright
    assert stored.getpixel((620, 877)) >= (250, 250, 250)  # transparent became white
    assert max(stored.getpixel((1240 - 50, 50))) < 10  # the mark, turned top right


@pytest.mark.parametrize("mode", ["L", "I;16", "P", "LA", "1"])
def test_pngs_of_every_mode_are_kept_as_jpeg(mode: str) -> None:
    image = Image.open(io.BytesIO(sample_scan("modes", fmt="PNG"))).convert(
        "L" if mode == "I;16" else mode)
    if mode == "I;16":
        image = image.point(lambda v: v * 256, "I").convert("I;16")
    out = io.BytesIO()
    image.save(out, "PNG")
    stored = decoded(accept_scan(out.getvalue()).data)
    assert stored.size == (1240, 1754)
    assert difference(image.convert("L") if mode != "I;16" else
                      Image.open(io.BytesIO(sample_scan("modes", fmt="PNG"))), stored) < 3


@pytest.mark.skipif(not scans.HEIF_READABLE, reason="pillow-heif is not installed")
def test_a_heic_photo_is_kept_as_jpeg() -> None:
    out = io.BytesIO()
    original = Image.open(io.BytesIO(sample_scan("iphone", size=(1240, 1754))))
    original.save(out, "HEIF", quality=90)
    assert inspect_scan(out.getvalue()).format == "HEIF"
    accepted = accept_scan(out.getvalue())
    assert accepted.info.format == "JPEG"
    assert difference(original, decoded(accepted.data)) < 3


def test_a_hostile_png_is_still_refused() -> None:
    png = sample_scan("x", fmt="PNG")
    with pytest.raises(InvalidScan, match="夹带了其他文件"):
        accept_scan(png + PAYLOADS["zip"])
    with pytest.raises(InvalidScan, match="分辨率太低"):
        accept_scan(sample_scan("tiny", fmt="PNG", size=(300, 400)))
    bomb = bytearray(sample_scan("x", fmt="PNG", size=(64, 64)))
    bomb[16:24] = struct.pack(">II", 30000, 30000)  # IHDR claims 900 megapixels
    bomb[29:33] = struct.pack(">I", zlib.crc32(bomb[12:29]))
    with pytest.raises(InvalidScan, match="像素过多"):
        accept_scan(bytes(bomb))
    with pytest.raises(InvalidScan, match="损坏或不完整"):
        accept_scan(png[: len(png) // 2])
    webp = io.BytesIO()
    Image.new("RGB", (1240, 1754), "white").save(webp, "WEBP")
    with pytest.raises(InvalidScan, match="您发送的是 WEBP 格式"):  # the bytes decide
        accept_scan(webp.getvalue())


def test_not_an_image() -> None:
    with pytest.raises(InvalidScan, match="无法识别"):
        inspect_scan(b"GIF89a? no, just some words")


def test_pdf_is_named_in_the_chat_and_accepted_from_mail() -> None:
    pdf = b"%PDF-1.4\n" + b"0" * 5000 + b"\n%%EOF\n"
    with pytest.raises(InvalidScan,
                       match="只接受 jpg、bmp、gif、png、heic 格式的图片，您发送的是 PDF 文件"):
        inspect_scan(pdf)
    mail = ScanRules(formats=MAIL_FORMATS)
    assert inspect_scan(pdf, mail).format == "PDF"
    with pytest.raises(InvalidScan, match="PDF 文件不完整"):
        inspect_scan(pdf[:3000], mail)
    assert inspect_scan(sample_scan("x", fmt="PNG"), mail).format == "PNG"


@pytest.mark.parametrize("kept", [0.5, 0.9, 0.99, 0.999])
def test_truncated_jpeg(kept: float) -> None:
    """The check decodes JPEGs at an eighth of the size (twice as fast), yet reads every byte:
    a file cut anywhere, even in its last thousandth, is refused."""
    data = sample_scan("x", size=(2480, 3508))
    with pytest.raises(InvalidScan, match="损坏或不完整"):
        inspect_scan(data[: int(len(data) * kept)])


def test_low_resolution_whatever_the_orientation() -> None:
    with pytest.raises(InvalidScan, match="分辨率太低"):
        inspect_scan(sample_scan("x", size=(640, 480)))
    assert inspect_scan(sample_scan("x", size=(1754, 1240))).width == 1754


def test_size_cap() -> None:
    with pytest.raises(InvalidScan, match="图片太大"):
        inspect_scan(sample_scan("x", fmt="BMP"), ScanRules(max_bytes=1024 * 1024))


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # a tiny GIF whose header claims 30000×30000 pixels
    gif = io.BytesIO()
    Image.new("P", (10, 10)).save(gif, "GIF")
    data = bytearray(gif.getvalue())
    data[6:10] = struct.pack("<HH", 30000, 30000)
    with pytest.raises(InvalidScan):
        inspect_scan(bytes(data))


def test_animated_gif_is_refused() -> None:
    frames = [Image.new("P", (1240, 1754), i) for i in range(2)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(InvalidScan, match="动图"):
        inspect_scan(buffer.getvalue())


# --- what real cameras, phones and scanners write passes ------------------------------------
def test_phone_and_scanner_metadata_passes() -> None:
    """EXIF with its JPEG thumbnail, XMP, an ICC profile and a comment; Adobe's APP14 (CMYK);
    MPF with a second image after the first, which Pillow calls MPO — all plain JPEGs to us."""
    phone, cmyk, mpf = phone_jpeg(), adobe_cmyk_jpeg(), mpf_jpeg()
    for marker in (b"Exif\0\0", b"http://ns.adobe.com/xap/1.0/\0<?xpacket", b"ICC_PROFILE\0",
                   b"\xff\xfe"):
        assert marker in phone
    assert phone.count(b"\xff\xd8\xff") == 2  # the thumbnail inside APP1
    assert b"Adobe" in cmyk
    assert b"MPF\0" in mpf
    assert mpf.count(b"\xff\xd8\xff") == 2  # and the second image behind the first one's end
    for data in (phone, cmyk, mpf):
        info = inspect_scan(data)
        assert (info.format, info.width, info.height) == ("JPEG", *SCAN_SIZE)


def test_trailing_bytes_of_phones_pass_unless_they_are_a_program() -> None:
    """A motion photo's video behind the JPEG: megabytes of binary in which "MZ" turns up by
    chance dozens of times; a real Windows program (MZ … PE) is refused."""
    video = random.Random(5).randbytes(3 * 1024 * 1024)
    assert video.count(b"MZ") > 10
    base = jpeg(SCAN_SIZE)
    assert inspect_scan(base + b"\0\0\0\x18ftypmp42" + video).format == "JPEG"
    with pytest.raises(InvalidScan, match="夹带了其他文件"):
        inspect_scan(base + PROGRAM)


# --- files hidden inside the image ---------------------------------------------------------
PROGRAM = b"MZ\x90\0" + b"\0" * 56 + struct.pack("<I", 0x80) + b"\0" * 64 + b"PE\0\0" + b"\0" * 64
PAYLOADS = {
    "zip": zip_of("invoice.exe", PROGRAM),
    "rar": b"Rar!\x1a\x07\x01\x00" + b"\0" * 40,
    "7z": b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\0" * 40,
    "pdf": b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF",
    "windows program": PROGRAM,
    "elf": b"\x7fELF\x02\x01\x01\0" + b"\0" * 56,
    "script": SCRIPT,
    "php": b"<?php system($_GET['c']); ?>",
    "html": b"<!DOCTYPE html><HTML><body>hi</body></HTML>",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
}
PLACES = {  # where in a JPEG: the segment, and what a payload is wrapped in there
    "COM": (0xFE, b""),
    "APP1 EXIF": (0xE1, b"Exif\0\0II*\0\x08\0\0\0"),
    "APP1 XMP": (0xE1, b"http://ns.adobe.com/xap/1.0/\0" + XMP[:60]),
    "APP2 ICC": (0xE2, b"ICC_PROFILE\0\x01\x01"),
    "APP13": (0xED, b"Photoshop 3.0\0"),
    "APP15": (0xEF, b""),
}


@pytest.fixture(scope="module")
def scan() -> bytes:
    return jpeg(SCAN_SIZE)


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_a_file_inside_a_jpeg_segment_is_refused(scan: bytes, place: str, payload: str) -> None:
    marker, wrapper = PLACES[place]
    with pytest.raises(InvalidScan, match="图片中夹带了其他文件") as refused:
        inspect_scan(with_segment(scan, marker, wrapper + PAYLOADS[payload]))
    assert "请用扫描仪或手机重新拍摄" in str(refused.value)


def test_gif_extensions_carry_no_file() -> None:
    base = gif(SCAN_SIZE, comment=b"scanned 2026-12-01")
    assert inspect_scan(base).format == "GIF"  # a comment, and Pillow's own blocks, pass
    # split over sub-blocks of 255 bytes, the signature straddling two of them
    hidden = b"x" * 253 + PAYLOADS["zip"]
    for label in (0xFE, 0xFF, 0x01):  # comment, application, plain text
        with pytest.raises(InvalidScan, match="夹带了其他文件"):
            inspect_scan(with_gif_extension(base, label, hidden))


def test_bmp_gap_and_tail_carry_no_file() -> None:
    base = bmp((800, 600), "P")  # a palette: the gap between the headers and the pixels
    assert inspect_scan(base).format == "BMP"
    offset = int.from_bytes(base[10:14], "little")
    gap = bytearray(base[:offset] + SCRIPT + base[offset:])
    gap[10:14] = (offset + len(SCRIPT)).to_bytes(4, "little")
    gap[2:6] = len(gap).to_bytes(4, "little")
    for data in (bytes(gap), base + PAYLOADS["zip"]):
        with pytest.raises(InvalidScan, match="夹带了其他文件"):
            inspect_scan(data)


def test_png_text_chunks_carry_no_file() -> None:
    mail = ScanRules(formats=MAIL_FORMATS)
    for text, hostile in ((XMP.decode(), False), (SCRIPT.decode(), True)):
        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", text)
        out = io.BytesIO()
        page(SCAN_SIZE).save(out, "PNG", pnginfo=info)
        if hostile:
            with pytest.raises(InvalidScan, match="夹带了其他文件"):
                inspect_scan(out.getvalue(), mail)
        else:
            assert inspect_scan(out.getvalue(), mail).format == "PNG"


# --- only ever a refusal ----------------------------------------------------------------------
def test_every_refusal_says_what_to_do() -> None:
    cases = {
        "图片太小": jpeg((800, 4)),
        "图片已损坏": damaged_gif(),
        "不支持动图": gif(SCAN_SIZE, frames=2),
        "图片中夹带了其他文件": with_segment(jpeg(SCAN_SIZE), 0xFE, PAYLOADS["zip"]),
    }
    for start, data in cases.items():
        with pytest.raises(InvalidScan) as refused:
            inspect_scan(data)
        assert str(refused.value).startswith(start), str(refused.value)
        assert "发送" in str(refused.value)


def test_an_unforeseen_failure_is_a_refusal_and_logged_without_the_image(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("decoder bug at 0xdeadbeef")

    monkeypatch.setattr(scans.Image, "open", broken)
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        with pytest.raises(UnreadableScan, match="图片无法读取"):
            inspect_scan(b"\xff\xd8\xff\xe0" + b"secret ID 110101199003070012")
    finally:
        logger.remove(sink)
    assert len(lines) == 1
    assert "RuntimeError" in lines[0]
    assert "scans.py" in lines[0]  # where, so it can become a rule
    assert "110101" not in lines[0]
    assert "deadbeef" not in lines[0]  # not even the message: it may quote the bytes


def test_each_poison_image_is_refused_for_its_reason() -> None:
    for name, (data, reason) in poison_images().items():
        with pytest.raises(InvalidScan, match=reason) as refused:
            inspect_scan(data)
        assert not isinstance(refused.value, UnreadableScan), name
