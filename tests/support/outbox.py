"""The outbox sender's surroundings: the `fake` Bot API and `media` store fixtures, and rows
queued as a handler would write them."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image
from sqlalchemy import select

from handlers.messages import Button, Outgoing
from storage.media import MediaStore
from storage.rows import CaseRow, OutboxRow
from tests.fake_telegram import FakeTelegram
from workflow.commands import ActorRef, SubmitCase
from workflow.model import Role
from workflow.ports import OutgoingMessage


async def queue(
    w, chat: str, text: str, case: str | None = None, *, channel: str = "telegram", **fields
) -> None:
    """One outgoing message committed to the outbox, as a handler would write it."""
    callback_id = fields.pop("callback_id", None)
    answer = fields.pop("answer", False)  # the reply to what the chat's user just did
    async with w["uow"]() as uow:
        message = Outgoing(chat_id=chat, text=text, buttons=[[Button("ok", "a:ac:x")]],
                           case_number=case, purpose="case_card", **fields)  # fmt: skip
        payload = {**message.payload(), "callback_id": callback_id}
        await uow.outbox.add(OutgoingMessage(channel, chat, payload, case, answer=answer))
        await uow.commit()


async def rows(w) -> list[OutboxRow]:
    async with w["sessions"]() as session:
        return list((await session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars())


async def case_row(w, number: str) -> CaseRow:
    async with w["sessions"]() as session:
        return (await session.execute(select(CaseRow).where(CaseRow.number == number))).scalar_one()


async def submit(w) -> str:
    """A resident's report: its card to the grid leader (chat 7001) is queued."""
    return await w["wf"].submit(w["uow"](), SubmitCase(
        actor=ActorRef(w["resident"], Role.RESIDENT), grid_code="JL-XGC-01-G1",
        category_code="safety", description="井盖坏了"))  # fmt: skip


def photo(media: MediaStore, color: str) -> str:
    """A JPEG in the media store's public copies; returns its sha256."""
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), color).save(buffer, "JPEG")
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    path = media.public_path(sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return sha


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
def media(tmp_path) -> MediaStore:
    return MediaStore(tmp_path / "media")
