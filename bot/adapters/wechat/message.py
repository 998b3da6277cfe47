"""Messages of the WeChat adapter: text, and images (received by their media URL, sent as
bytes)."""

from nonebot.adapters import Message as BaseMessage
from nonebot.adapters import MessageSegment as BaseSegment
from typing_extensions import override


class MessageSegment(BaseSegment["Message"]):
    """"text" ``{"text"}``; "image" ``{"url"}`` received (the media's API URL), ``{"data"}``
    to send (PNG or JPEG bytes)."""

    @classmethod
    @override
    def get_message_class(cls) -> type["Message"]:
        return Message

    @override
    def __str__(self) -> str:
        return self.data["text"] if self.type == "text" else "[图片]"

    @override
    def is_text(self) -> bool:
        return self.type == "text"

    @staticmethod
    def text(text: str) -> "MessageSegment":
        return MessageSegment("text", {"text": text})

    @staticmethod
    def image(data: bytes) -> "MessageSegment":
        return MessageSegment("image", {"data": data})


class Message(BaseMessage[MessageSegment]):
    @classmethod
    @override
    def get_segment_class(cls) -> type[MessageSegment]:
        return MessageSegment

    @staticmethod
    @override
    def _construct(msg: str) -> list[MessageSegment]:
        return [MessageSegment.text(msg)]
