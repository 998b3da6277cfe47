"""What goes in and out of a chat, independent of the platform."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Account:
    platform: str  # qq, console, ...
    user_id: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.user_id}"

    @classmethod
    def parse(cls, text: str) -> "Account":
        platform, _, user_id = text.partition(":")
        return cls(platform, user_id)


@dataclass(frozen=True)
class ImageSource:
    """Where an image is: a URL from the chat platform, or (Console only) a local file."""

    url: str | None = None
    path: Path | None = None
    # the platform's media host is not one the centre trusts: the URL must lead to a public
    # address, checked as a redirect target is (bot/adapters/fetch.py)
    public_only: bool = False


@dataclass(frozen=True)
class Incoming:
    text: str = ""
    images: tuple[ImageSource, ...] = ()
    local_files: bool = False  # Console: a typed file path or URL counts as an image
    # the platform's id of this message (QQ msg_id, WeChat MsgId): a reply quotes it where the
    # platform ties replies to the user's message (bot/services/channels.py)
    ref: str | None = None


@dataclass(frozen=True)
class Picture:
    """An image to send (PNG or JPEG bytes); ``alt`` is said where pictures cannot be shown."""

    data: bytes
    alt: str


Reply = str | Picture


@dataclass(frozen=True)
class MailAttachment:
    """A file a mail carries, kept in the scan store by its SHA-256 (an invoice PDF)."""

    sha256: str
    filename: str
    content_type: str  # e.g. application/pdf

    def to_json(self) -> dict[str, str]:
        return {"sha256": self.sha256, "filename": self.filename,
                "content_type": self.content_type}
