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
                if fmt == "JPEG":  # every byte is still read, at an eighth of the pixels:
                    image.draft(image.mode, (width // 8, height // 8))  # twice as fast
                image.load()  # decode fully: a truncated or corrupt file fails here
    except InvalidScan:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidScan("图片像素过多，请缩小后重新发送。") from None
    except UnidentifiedImageError:
        raise InvalidScan("无法识别这张图片，请发送 jpg、bmp 或 gif 格式的扫描件。") from None
    except (OSError, SyntaxError, ValueError):
        raise InvalidScan("图片文件已损坏或不完整，请重新扫描后发送。") from None
    if frames > 1:
        raise InvalidScan("请发送静态图片，不要发送动图。")
    if _carries_another_file(data[_image_end(data, fmt):]):
        raise InvalidScan("这张图片后面还藏着其他文件（压缩包、网页或程序），为安全起见不予接收。"
                          "请用扫描仪或手机重新拍摄，另存为 jpg 后发送。")
    short, long = sorted((width, height))
    if short < rules.min_short_side or long < rules.min_long_side:
        raise InvalidScan(f"图片分辨率太低（{width}×{height}），看不清内容。请用扫描仪或手机"
                          f"拍摄清晰的图片，至少 {rules.min_short_side}×{rules.min_long_side}。")
    return ScanInfo(hashlib.sha256(data).hexdigest(), fmt, len(data), width, height)


# --- polyglots: an image with a second file stuck behind it ---------------------------------
# Phones legitimately append data after a JPEG (Samsung's SEFH trailer, motion-photo videos),
# so trailing bytes alone are no reason to refuse; another file's signature in them is.
_OTHER_FILES = (b"PK\x03\x04", b"PK\x05\x06", b"Rar!\x1a\x07", b"7z\xbc\xaf\x27\x1c", b"%PDF-",
                b"MZ", b"\x7fELF", b"<html", b"<script", b"<?php", b"<svg", b"<iframe", b"<body",
                b"<!doctype", b"<?xml")


def _carries_another_file(trailer: bytes) -> bool:
    lowered = trailer.lower()
    return any(signature.lower() in lowered for signature in _OTHER_FILES)


def _image_end(data: bytes, fmt: str) -> int:
    """Where the image's own bytes end (the rest is a trailer); ``len(data)`` if unknown."""
    try:
        if fmt == "JPEG":
            return _jpeg_end(data)
        if fmt == "GIF":
            return _gif_end(data)
        if fmt == "BMP":
            return max(int.from_bytes(data[2:6], "little"), 54)  # bfSize, the file's own size
        if fmt == "PNG":
            return data.index(b"IEND") + 8
    except (ValueError, IndexError):
        pass
    return len(data)


def _jpeg_end(data: bytes) -> int:
    """Walk the markers: segments carry their length; entropy-coded data ends at a marker
    other than a restart (FFD0–FFD7) or a stuffed FF00; the image ends after EOI (FFD9)."""
    at = 2  # after SOI
    while True:
        at = data.index(b"\xff", at)
        while data[at] == 0xFF:  # fill bytes
            at += 1
        marker = data[at]
        at += 1
        if marker == 0xD9:
            return at
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue
        at += int.from_bytes(data[at:at + 2], "big")
        while marker == 0xDA:  # start of scan: skip the entropy-coded data
            at = data.index(b"\xff", at)
            if data[at + 1] != 0x00 and not 0xD0 <= data[at + 1] <= 0xD7:
                break
            at += 2


def _gif_end(data: bytes) -> int:
    """Header, screen descriptor, colour table, then blocks until the trailer (3B)."""
    flags = data[10]
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while True:
        block = data[at]
        if block == 0x3B:
            return at + 1
        if block == 0x21:  # extension: label, then sub-blocks
            at += 2
        elif block == 0x2C:  # image: descriptor, local colour table, LZW code size, sub-blocks
            local = data[at + 9]
            at += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1
        else:
            raise ValueError("not a GIF block")
        while data[at]:
            at += data[at] + 1
        at += 1
