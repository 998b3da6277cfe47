"""Checking a scanned image: what the bytes really are, not what the file is called.

``inspect_scan`` returns the image's facts or raises ``InvalidScan``, nothing else: whatever
Pillow or the structure walks below throw on damaged input ends as a refusal in Chinese.
``accept_scan`` is what the chat and the unlock mailbox keep: the bytes as received, except a
phone's PNG or HEIC, which passes every check as it came and is then kept as a faithful JPEG
(the format SPEC.md's forms take; see ``_faithful_jpeg``)."""

import hashlib
import io
import re
import struct
import threading
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

from loguru import logger
from PIL import Image, ImageOps, UnidentifiedImageError

try:  # HEIC (iPhone photos): Pillow reads it through pillow-heif's libheif
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - a dependency; without it HEIC is refused as unknown
    HEIF_READABLE = False
else:
    register_heif_opener()
    HEIF_READABLE = True

# format → what we call it to the applicant
FORMAT_NAMES = {"JPEG": "jpg", "BMP": "bmp", "GIF": "gif", "PNG": "png", "HEIF": "heic",
                "PDF": "pdf"}
# SPEC.md's .jpg .jpeg .bmp .gif, and what phones and QQ screenshots give (kept as JPEG)
REENCODED = frozenset({"PNG", "HEIF"} if HEIF_READABLE else {"PNG"})
CHAT_FORMATS = frozenset({"JPEG", "BMP", "GIF"}) | REENCODED
MAIL_FORMATS = CHAT_FORMATS | {"PDF"}  # mailed scans: scanners send PDF too

DAMAGED = "图片已损坏或不完整，请重新拍照或扫描后发送。"
UNREADABLE = "图片无法读取，请重新拍照或扫描后发送（建议另存为 jpg）。"
ANIMATED = "不支持动图，请发送静态图片（一张扫描件或照片）。"
CARRIES_A_FILE = ("图片中夹带了其他文件（压缩包、网页、脚本或程序），为安全起见不予接收。"
                  "请用扫描仪或手机重新拍摄，另存为 jpg 后发送。")


@dataclass(frozen=True)
class ScanRules:
    max_bytes: int = 10 * 1024 * 1024
    min_short_side: int = 600  # pixels; an A4 page at ~75 dpi
    min_long_side: int = 800
    max_pixels: int = 60_000_000  # decompression-bomb guard: refuse before decoding
    formats: frozenset[str] = CHAT_FORMATS


@dataclass(frozen=True)
class ScanInfo:
    sha256: str
    format: str  # JPEG, BMP or GIF (PNG, HEIF as inspected: kept as JPEG); PDF from mail
    size: int  # bytes
    width: int
    height: int

    def describe(self) -> str:
        if self.format == "PDF":
            return f"pdf，{_size(self.size)}"
        return f"{FORMAT_NAMES[self.format]} {self.width}×{self.height}，{_size(self.size)}"


class InvalidScan(ValueError):
    """``str(error)`` tells the applicant what is wrong with the image and what to send."""


class UnreadableScan(InvalidScan):
    """The check failed in a way no rule foresaw (a decoder bug, a parser slip): still a
    refusal to the applicant, and logged so it can become a rule."""


@dataclass(frozen=True)
class AcceptedScan:
    """A scan that passed: its facts and the bytes to keep (they hash to ``info.sha256``)."""

    info: ScanInfo
    data: bytes


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{max(1, round(n / 1024))} KB"


def inspect_scan(data: bytes, rules: ScanRules = ScanRules()) -> ScanInfo:
    try:
        return _inspect(data, rules)
    except InvalidScan:
        raise
    except Exception as error:  # whatever it is, the applicant gets an answer
        # type and place only: a traceback with locals could show what the image holds
        where = traceback.extract_tb(error.__traceback__)[-1]
        logger.warning(f"scan check failed unexpectedly ({len(data)} bytes, starting "
                       f"{bytes(data[:4]).hex()}): {type(error).__name__} at "
                       f"{Path(where.filename).name}:{where.lineno}")
        raise UnreadableScan(UNREADABLE) from None


def accept_scan(data: bytes, rules: ScanRules = ScanRules()) -> AcceptedScan:
    """``inspect_scan``'s checks on the bytes as received; a PNG or HEIC that passes them all
    is kept as a JPEG of the same pixels."""
    info = inspect_scan(data, rules)
    if info.format not in REENCODED:
        return AcceptedScan(info, data)
    try:
        jpeg, width, height = _faithful_jpeg(data, rules.max_bytes)
    except InvalidScan:
        raise
    except Exception as error:  # the checks passed, so this is a bug: refused all the same
        where = traceback.extract_tb(error.__traceback__)[-1]
        logger.warning(f"re-encoding a {info.format} scan failed: {type(error).__name__} at "
                       f"{Path(where.filename).name}:{where.lineno}")
        raise UnreadableScan(UNREADABLE) from None
    return AcceptedScan(
        ScanInfo(hashlib.sha256(jpeg).hexdigest(), "JPEG", len(jpeg), width, height), jpeg)


# warnings.catch_warnings swaps process-wide filters: checks run in threads, so one at a time
_PILLOW = threading.Lock()
# what Pillow raises on damaged bytes: OSError, SyntaxError and ValueError by design, and from
# its GIF, BMP and TIFF (EXIF) parsers IndexError, struct.error, EOFError on truncated fields
_DAMAGED_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


def _inspect(data: bytes, rules: ScanRules) -> ScanInfo:
    if not data:
        raise InvalidScan("收到的图片是空的，请重新发送。")
    if len(data) > rules.max_bytes:
        raise InvalidScan(f"图片太大（{_size(len(data))}），请压缩到 {_size(rules.max_bytes)} "
                          "以内后重新发送。")
    allowed = "、".join(FORMAT_NAMES[f] for f in FORMAT_NAMES if f in rules.formats)
    if data.startswith(b"%PDF-"):
        if "PDF" not in rules.formats:
            raise InvalidScan(f"只接受 {allowed} 格式的图片，您发送的是 PDF 文件。")
        if b"%%EOF" not in data[-2048:]:
            raise InvalidScan("PDF 文件不完整，请重新扫描后发送。")
        return ScanInfo(hashlib.sha256(data).hexdigest(), "PDF", len(data), 0, 0)
    try:
        with _PILLOW, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data": the decode decides
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                fmt = image.format or ""
                # MPF (Pillow's "MPO"): phones put a depth or gain map or a preview after the
                # photo; the first image is the scan, the others are not animation frames
                # (HEIC likewise: the primary image is the photo, the others its companions)
                further_images = fmt in ("MPO", "HEIF")
                fmt = "JPEG" if fmt == "MPO" else fmt
                if width * height > rules.max_pixels:
                    raise InvalidScan(f"图片像素过多（{width}×{height}），请缩小后重新发送。")
                if fmt not in rules.formats:
                    raise InvalidScan(f"只接受 {allowed} 格式的图片，您发送的是 "
                                      f"{fmt or '无法识别的'} 格式，请另存为 jpg 后重新发送。")
                if width < 1 or height < 1:
                    raise InvalidScan(DAMAGED)
                _check_resolution(width, height, rules)  # before decoding: a cheap refusal
                if not further_images and getattr(image, "n_frames", 1) > 1:
                    raise InvalidScan(ANIMATED)
                if fmt == "JPEG":  # every byte is still read, at an eighth of the pixels
                    # (twice as fast); under 8 px a side, an eighth would be 0 px
                    image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
                image.load()  # decode fully: a truncated or corrupt file fails here
    except InvalidScan:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidScan("图片像素过多，请缩小后重新发送。") from None
    except UnidentifiedImageError:
        raise InvalidScan(f"无法识别这张图片，请发送 {allowed} 格式的扫描件。") from None
    except _DAMAGED_ERRORS:
        raise InvalidScan(DAMAGED) from None
    if any(_carries_another_file(part) for part in _hiding_places(data, fmt)):
        raise InvalidScan(CARRIES_A_FILE)
    return ScanInfo(hashlib.sha256(data).hexdigest(), fmt, len(data), width, height)


# JPEG settings, best first: 4:4:4 keeps the edges of small print and stamps sharp; a photo
# that would not fit the byte cap that way is saved a little coarser, never resized
_JPEG_STEPS = ((95, 0), (90, 0), (85, 2), (80, 2))  # (quality, subsampling: 0 = 4:4:4)


def _faithful_jpeg(data: bytes, max_bytes: int) -> tuple[bytes, int, int]:
    """The image upright (its EXIF orientation applied: the JPEG carries no EXIF, so no
    location either), transparency flattened on white, its colour profile kept."""
    with _PILLOW, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data)) as image:
            icc = image.info.get("icc_profile")
            flat = _flattened(ImageOps.exif_transpose(image))
    for quality, subsampling in _JPEG_STEPS:
        out = io.BytesIO()
        flat.save(out, "JPEG", quality=quality, subsampling=subsampling, optimize=True,
                  icc_profile=icc)
        if out.tell() <= max_bytes:
            return out.getvalue(), flat.width, flat.height
    raise InvalidScan(f"图片转换为 jpg 后太大，请压缩到 {_size(max_bytes)} 以内或另存为 jpg "
                      "后重新发送。")


def _flattened(image: Image.Image) -> Image.Image:
    """RGB or greyscale, 8 bits, no alpha: what a JPEG holds."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit greyscale PNG
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if image.mode == "1":
        image = image.convert("L")
    if "A" in image.mode or "a" in image.mode or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGB", image.size, "white")
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return image if image.mode in ("L", "RGB") else image.convert("RGB")


def _check_resolution(width: int, height: int, rules: ScanRules) -> None:
    short, long = sorted((width, height))
    if short < rules.min_short_side or long < rules.min_long_side:
        least = f"{rules.min_short_side}×{rules.min_long_side}"
        raise InvalidScan(f"图片太小（{width}×{height}），分辨率太低，看不清内容。请用扫描仪或"
                          f"手机拍摄清晰的图片（至少 {least}）后重新发送。")


# --- polyglots: another file inside the image's metadata or stuck behind it ------------------
# Only places that hold no pixels are searched: JPEG COM and APPn segments, GIF comment,
# application and text extensions, the gaps and tail of a BMP, PNG chunks other than IDAT, and
# whatever follows the image's end. Phones legitimately put EXIF (with a JPEG thumbnail), XMP,
# ICC profiles and MPF there and append data (Samsung's trailer, motion-photo videos, MPF's
# further JPEGs): those are binary, so a signature must be specific enough not to turn up by
# chance in megabytes of compressed bytes (a bare "MZ" does, dozens of times).
_SIGNATURES = re.compile(
    rb"PK\x03\x04[\x00-\x3f]\x00"  # ZIP local file header (version needed ≤ 6.3)
    rb"|PK\x05\x06\x00\x00"  # ZIP end of central directory (disk 0)
    rb"|Rar!\x1a\x07|7z\xbc\xaf\x27\x1c|%PDF-\d"
    rb"|\x7fELF[\x01\x02][\x01\x02]\x01"  # ELF: class, byte order, version 1
    rb"|(?i:<(?:script|html|svg|body|iframe|object|embed)[\s>/]|<\?php|<!doctype\s+html)")
_DOS_HEADER = re.compile(rb"MZ")  # a Windows program if its e_lfanew points at "PE\0\0"


def _carries_another_file(part: bytes | memoryview) -> bool:
    if _SIGNATURES.search(part):
        return True
    for found in _DOS_HEADER.finditer(part):
        at = found.start()
        pe = int.from_bytes(part[at + 0x3C:at + 0x40], "little")
        if 0x40 <= pe < 0x10000 and bytes(part[at + pe:at + pe + 4]) == b"PE\0\0":
            return True
    return False


def _hiding_places(data: bytes, fmt: str) -> list[bytes | memoryview]:
    """The parts of the file that hold no pixels; the whole file if its structure cannot be
    followed (the decoder was more lenient than the walk)."""
    view = memoryview(data)
    walk = {"JPEG": _jpeg_parts, "GIF": _gif_parts, "BMP": _bmp_parts, "PNG": _png_parts,
            "HEIF": _unwalked}[fmt]
    try:
        parts, end = walk(view)
    except (ValueError, IndexError):
        return [view]
    return [*parts, view[end:]]


Parts = tuple[list[bytes | memoryview], int]  # the parts holding no pixels; where the image ends


def _jpeg_parts(data: memoryview) -> Parts:
    """Walk the markers: segments carry their length; entropy-coded data ends at a marker
    other than a restart (FFD0–FFD7) or a stuffed FF00; the image ends after EOI (FFD9)."""
    raw = data.obj
    assert isinstance(raw, bytes)
    parts: list[bytes | memoryview] = []
    at = 2  # after SOI
    while True:
        at = raw.index(b"\xff", at)
        while data[at] == 0xFF:  # fill bytes
            at += 1
        marker = data[at]
        at += 1
        if marker == 0xD9:
            return parts, at
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue
        length = int.from_bytes(data[at:at + 2], "big")
        if length < 2 or at + length > len(data):
            raise ValueError("segment beyond the file")
        if marker == 0xFE or 0xE0 <= marker <= 0xEF:  # COM, APP0–APP15
            parts.append(data[at + 2:at + length])
        at += length
        while marker == 0xDA:  # start of scan: skip the entropy-coded data
            at = raw.index(b"\xff", at)
            if data[at + 1] != 0x00 and not 0xD0 <= data[at + 1] <= 0xD7:
                break
            at += 2


def _gif_parts(data: memoryview) -> Parts:
    """Header, screen descriptor, colour table, then blocks until the trailer (3B); comment,
    application and plain-text extensions are the places that hold no pixels."""
    parts: list[bytes | memoryview] = []
    flags = data[10]
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while True:
        block = data[at]
        if block == 0x3B:
            return parts, at + 1
        if block == 0x21:  # extension: label, then sub-blocks
            label = data[at + 1]
            at += 2
        elif block == 0x2C:  # image: descriptor, local colour table, LZW code size, sub-blocks
            label = None
            local = data[at + 9]
            at += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1
        else:
            raise ValueError("not a GIF block")
        blocks = []
        while data[at]:
            blocks.append(data[at + 1:at + 1 + data[at]])
            at += data[at] + 1
        at += 1
        if label in (0xFE, 0xFF, 0x01):  # joined: a signature may be split across sub-blocks
            parts.append(b"".join(blocks))


def _bmp_parts(data: memoryview) -> Parts:
    """After the headers, the palette (or colour masks) up to the pixel array's offset; the
    image ends with the pixel array, whose size uncompressed rows give exactly."""
    offset = int.from_bytes(data[10:14], "little")
    header = int.from_bytes(data[14:18], "little")
    if header == 12:  # OS/2 core header
        width, height = struct.unpack_from("<HH", data, 18)
        bits, compression, image_size = struct.unpack_from("<H", data, 24)[0], 0, 0
    else:
        width, height = struct.unpack_from("<ii", data, 18)
        bits, compression, image_size = struct.unpack_from("<HII", data, 28)
    if compression in (0, 3, 6):  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS: rows of pixels
        image_size = (abs(width) * bits + 31) // 32 * 4 * abs(height)
    end = offset + image_size
    if not 14 + header <= offset <= end <= len(data):
        raise ValueError("pixel array beyond the file")
    return [data[14 + header:offset]], end


def _unwalked(data: memoryview) -> Parts:
    """HEIC's boxes are not walked: the whole file is searched (the signatures are specific
    enough not to turn up by chance in compressed data)."""
    raise ValueError("searched whole")


def _png_parts(data: memoryview) -> Parts:
    """Chunks (length, type, data, CRC) until IEND; every chunk but the pixels' IDAT."""
    parts: list[bytes | memoryview] = []
    at = 8
    while True:
        length = int.from_bytes(data[at:at + 4], "big")
        kind = bytes(data[at + 4:at + 8])
        if at + 12 + length > len(data):
            raise ValueError("chunk beyond the file")
        if kind != b"IDAT":
            parts.append(data[at + 8:at + 8 + length])
        at += 12 + length
        if kind == b"IEND":
            return parts, at
