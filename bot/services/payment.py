"""The payment QR code sent with an approval: a PNG of the configured payment URL."""

import io
from urllib.parse import quote

import segno


def payment_url(template: str, number: str, cents: int) -> str:
    return template.format(number=quote(number), amount=f"{cents / 100:.2f}")


def qr_png(text: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buffer, kind="png", scale=8, border=4)
    return buffer.getvalue()
