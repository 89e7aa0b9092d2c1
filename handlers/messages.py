"""Channel-neutral messages: what any chat (Telegram, web chat, WeChat) brings in and takes out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PRIVATE = "private"
GROUP_TYPES = frozenset({"group", "supergroup"})


@dataclass(frozen=True)
class PhotoRef:
    """A photo as the channel knows it; fetched into the media store before it is used."""

    file_id: str
    file_unique_id: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Incoming:
    """One message or button press, from any channel."""

    channel: str
    chat_id: str
    chat_type: str
    user_id: str
    user_name: str = ""
    language: str | None = None
    message_id: str | None = None
    update_key: str | None = None  # unique per update, for processing each update once
    text: str | None = None
    photos: tuple[PhotoRef, ...] = ()
    media_group_id: str | None = None
    location: Location | None = None
    contact_phone: str | None = None
    contact_is_own: bool = True
    reply_to_message_id: str | None = None
    callback_data: str | None = None
    callback_id: str | None = None
    unsupported: str | None = None  # sticker, voice, video, document, ...
    file_size: int | None = None

    @property
    def is_private(self) -> bool:
        return self.chat_type == PRIVATE

    @property
    def command(self) -> tuple[str, str] | None:
        """('/start', 'payload') for '/start payload' or '/start@bot payload'; else None."""
        text = (self.text or "").strip()
        if not text.startswith("/"):
            return None
        head, _, rest = text.partition(" ")
        return head.split("@", 1)[0].lower(), rest.strip()


@dataclass(frozen=True)
class Button:
    text: str
    data: str  # at most 64 bytes on Telegram: short ids, never whole payloads


@dataclass
class Outgoing:
    """One message to send; becomes an outbox row in the same transaction as its cause."""

    chat_id: str
    text: str
    buttons: list[list[Button]] = field(default_factory=list)
    photos: list[str] = field(default_factory=list)  # sha256 of public copies in the media store
    reply_to_message_id: str | None = None
    force_reply: bool = False
    request_contact: bool = False
    request_location: bool = False
    keyboard: list[list[str]] = field(default_factory=list)  # persistent reply keyboard
    remove_keyboard: bool = False
    edit_message_id: str | None = None  # edit this message instead of sending a new one
    case_number: str | None = None  # replies to this message belong to this case
    purpose: str | None = None  # what the message is for (case_card, rating, ...)
    callback_answer: str | None = None  # a toast for the pressed button, when there was one

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        data["buttons"] = [[asdict(b) for b in row] for row in self.buttons]
        return data


def outgoing_from_payload(payload: dict[str, Any]) -> Outgoing:
    values = dict(payload)
    values["buttons"] = [[Button(**b) for b in row] for row in values.get("buttons", [])]
    known = Outgoing.__dataclass_fields__
    return Outgoing(**{k: v for k, v in values.items() if k in known})
