"""Made-up data for trying cadesk out and for its tests: never a real company or person.

USCCs and ID numbers carry valid check characters (GB 32100-2015, GB 11643-1999) computed with
python-stdnum; the scans are drawn with Pillow and stamped SAMPLE.

``python -m bot.samples [DIR] [--format png] [--seed N]`` writes four sample scans into DIR and
prints a company code and an ID number to type, so a newcomer can complete an application on
the Console (``--help`` says so).
"""

import argparse
import io
import random
import sys
from datetime import date, timedelta
from pathlib import Path

from PIL import Image, ImageDraw
from stdnum.cn import ric, uscc

REGION = "371302"  # 山东省临沂市兰山区


def fake_uscc(rng: random.Random | None = None) -> str:
    rng = rng or random.Random()
    body = "91" + REGION + "".join(rng.choice("0123456789") for _ in range(8))
    body += rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY")
    return body + uscc.calc_check_digit(body)


def fake_id_number(rng: random.Random | None = None, *, ends_with_x: bool = False) -> str:
    rng = rng or random.Random()
    while True:
        born = date(1970, 1, 1) + timedelta(days=rng.randrange(365 * 30))
        body = f"{REGION}{born:%Y%m%d}{rng.randrange(1000):03d}"
        check = ric.calc_check_digit(body + "0")  # it ignores the last character
        if (check == "X") == ends_with_x:
            return body + check


def fake_mobile(rng: random.Random | None = None) -> str:
    rng = rng or random.Random()
    return "13" + "".join(rng.choice("0123456789") for _ in range(9))


def sample_scan(label: str, fmt: str = "JPEG", size: tuple[int, int] = (1240, 1754)) -> bytes:
    """A white page with a border, the label, a red 'seal' and SAMPLE across it."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle((20, 20, w - 20, h - 20), outline="black", width=4)
    draw.text((60, 60), f"SAMPLE - {label}", fill="black", font_size=max(12, w // 25))
    draw.ellipse((w - 360, h - 360, w - 80, h - 80), outline="red", width=10)
    for y in range(200, h - 400, 60):
        draw.line((60, y, w - 60, y), fill=(180, 180, 180), width=2)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot.samples",
        description="写出四张样例扫描件（附件一至附件四），并给出可以在控制台里填写的虚构统一社会信用"
                    "代码和身份证号（校验位正确，不属于任何真实单位或个人）。")
    parser.add_argument("directory", nargs="?", type=Path, default=Path("sample-scans"),
                        help="写入样例扫描件的文件夹（没有则新建），默认 sample-scans")
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg",
                        help="扫描件格式：jpg（默认），或 png（像手机截图那样）")
    parser.add_argument("--seed", type=int, default=None,
                        help="随机数种子：给定时每次生成相同的代码和号码")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _arguments(argv)  # --help and wrong options exit here, before anything is written
    rng = random.Random(args.seed)
    target: Path = args.directory
    target.mkdir(parents=True, exist_ok=True)
    fmt = "PNG" if args.format == "png" else "JPEG"
    for i, name in enumerate(("form", "id-card", "authorisation", "licence"), 1):
        (target / f"{i}-{name}.{args.format}").write_bytes(
            sample_scan(f"attachment {i} {name}", fmt=fmt))
    sys.stdout.write(
        f"sample scans written to {target.resolve()}\n"
        f"统一社会信用代码: {fake_uscc(rng)}\n"
        f"身份证号:         {fake_id_number(rng)}\n"
        "On the Console, answer each 附件 question with the path of one of the files.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
