"""Checking a scanned image: what the bytes really are, not what the file is called."""

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# format → what we call it to the applicant
FORMAT_NAMES = {"JPEG": "jpg", "BMP": "bmp", "GIF": "gif", "PNG": "png", "PDF": "pdf"}
CHAT_FORMATS = frozenset({"JPEG", "BMP", "GIF"})  # SPEC.md: .jpg .jpeg .bmp .gif only
MAIL_FORMATS = CHAT_FORMATS | {"PNG", "PDF"}  # mailed scans: phones send PNG, scanners PDF


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
    format: str  # JPEG, BMP or GIF
    size: int  # bytes
    width: int
    height: int

    def describe(self) -> str:
        if self.format == "PDF":
            return f"pdf，{_size(self.size)}"
        return f"{FORMAT_NAMES[self.format]} {self.width}×{self.height}，{_size(self.size)}"


class InvalidScan(ValueError):
    """``str(error)`` tells the applicant what is wrong with the image and what to send."""


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{max(1, round(n / 1024))} KB"


def inspect_scan(data: bytes, rules: ScanRules = ScanRules()) -> ScanInfo:
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data": the decode decides
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                fmt = image.format or ""
                if width * height > rules.max_pixels:
                    raise InvalidScan(f"图片像素过多（{width}×{height}），请缩小后重新发送。")
                if fmt not in rules.formats:
                    raise InvalidScan(f"只接受 {allowed} 格式的图片，您发送的是 "
                                      f"{fmt or '无法识别的'} 格式，请另存为 jpg 后重新发送。")
                frames = getattr(image, "n_frames", 1)
                image.load()  # decode fully: a truncated or corrupt file fails here
    except InvalidScan:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidScan("无法识别这张图片，请发送 jpg、bmp 或 gif 格式的扫描件。") from None
    except (OSError, SyntaxError, ValueError):
        raise InvalidScan("图片文件已损坏或不完整，请重新扫描后发送。") from None
    if frames > 1:
        raise InvalidScan("请发送静态图片，不要发送动图。")
    short, long = sorted((width, height))
    if short < rules.min_short_side or long < rules.min_long_side:
        raise InvalidScan(f"图片分辨率太低（{width}×{height}），看不清内容。请用扫描仪或手机"
                          f"拍摄清晰的图片，至少 {rules.min_short_side}×{rules.min_long_side}。")
    return ScanInfo(hashlib.sha256(data).hexdigest(), fmt, len(data), width, height)
