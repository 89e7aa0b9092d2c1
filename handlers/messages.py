"""Channel-neutral messages: what any chat (Telegram, web chat, WeChat) brings in and takes out."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields
from typing import Any

PRIVATE = "private"
GROUP_TYPES = frozenset({"group", "supergroup"})


def storable(text: str) -> str:
    """`text` as every database takes it: without NUL (PostgreSQL refuses it in text and
    JSON, and one such row used to break the outbox's JSON queries) and with each lone
    surrogate (not encodable as UTF-8 at all) turned into U+FFFD; a proper pair is joined."""
    if text.isascii():
        return text.replace("\x00", "") if "\x00" in text else text
    if any("\ud800" <= c <= "\udfff" for c in text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.replace("\x00", "")


def _storable_fields(obj: Any) -> None:
    """Clean every text field of a frozen dataclass in place, as it is built."""
    for spec in fields(obj):
        value = getattr(obj, spec.name)
        if isinstance(value, str):
            object.__setattr__(obj, spec.name, storable(value))


@dataclass(frozen=True)
class PhotoRef:
    """A photo as the channel knows it; fetched into the media store before it is used."""

    file_id: str
    file_unique_id: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        _storable_fields(self)


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float

    @property
    def on_earth(self) -> bool:
        """A real place: finite, latitude within ±90 and longitude within ±180 degrees."""
        lat, lon = self.latitude, self.longitude
        return math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180


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

    def __post_init__(self) -> None:
        # The one boundary every channel's input crosses: whatever a user typed (text,
        # caption, button data, names, phone numbers) is stored and echoed from here on.
        _storable_fields(self)
        if self.location is not None and not self.location.on_earth:
            object.__setattr__(self, "location", None)

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
    # Edit this message (of the same chat) instead of sending a new one: its text becomes
    # `text` (empty: the text stays) and its buttons `buttons` (empty: none are left).
    edit_message_id: str | None = None
    edit_caption: bool = False  # the message edited is a photo whose caption is the text
    case_number: str | None = None  # replies to this message belong to this case
    purpose: str | None = None  # what the message is for (case_card, rating, ...)
    callback_answer: str | None = None  # a toast for the pressed button, when there was one
    # What an edit of this message will need that the case does not say, kept with the sent
    # message (message_links.context): the role its buttons are for (a supervisor's private
    # card stays theirs when a supervisors' group is bound later), a supervision card's
    # overdue stage. JSON values only.
    context: dict[str, Any] | None = None

    def payload(self) -> dict[str, Any]:
        """The outbox row's JSON: a copy (dataclasses.asdict's deep recursion cost more than the
        rest of a plain turn's Python; every field is a value or a list/dict of values)."""
        data = {name: getattr(self, name) for name in _OUTGOING_FIELDS}
        data["buttons"] = [[{"text": b.text, "data": b.data} for b in row] for row in self.buttons]
        data["photos"] = list(self.photos)
        data["keyboard"] = [list(row) for row in self.keyboard]
        data["context"] = copy.deepcopy(self.context) if self.context is not None else None
        return data


_OUTGOING_FIELDS = tuple(f.name for f in fields(Outgoing))


def outgoing_from_payload(payload: dict[str, Any]) -> Outgoing:
    values = dict(payload)
    values["buttons"] = [[Button(**b) for b in row] for row in values.get("buttons", [])]
    known = Outgoing.__dataclass_fields__
    return Outgoing(**{k: v for k, v in values.items() if k in known})
