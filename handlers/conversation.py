"""The conversation engine: one incoming message -> workflow calls -> outgoing messages.

Everything a turn does (draft, case, outbox rows, "update processed" mark) commits in one
transaction, so a crash or a repeated update never creates a second case or loses a draft.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from handlers.messages import Button, Incoming, Outgoing, PhotoRef
from handlers.ports import Conversation, Person, UnitOfWork
from handlers.render import DEFAULT_LOCALE, LOCALES, Renderer
from workflow.errors import ConcurrentUpdate, NotFound, WorkflowError
from workflow.ports import OutgoingMessage
from workflow.services import Workflow

log = logging.getLogger(__name__)


class PhotoSaver(Protocol):
    """Fetches a channel's photo into the media store; the adapter knows how to download."""

    async def save(self, uow: UnitOfWork, channel: str, ref: PhotoRef) -> int: ...


@runtime_checkable
class PhotoFetcher(PhotoSaver, Protocol):
    """A saver that can do the slow part (download, decode, write the files) before the
    turn's transaction opens, leaving only the row for inside it."""

    async def fetch(self, channel: str, ref: PhotoRef) -> Any: ...

    async def save_fetched(self, uow: UnitOfWork, fetched: Any) -> int: ...


class _FetchedAhead:
    """The turn's PhotoSaver when its photos were fetched before the transaction: save() only
    adds the row (or raises what fetching raised: a refused photo is answered as before)."""

    def __init__(self, fetcher: PhotoFetcher, fetched: dict[str, Any]) -> None:
        self.fetcher = fetcher
        self.fetched = fetched

    async def save(self, uow: UnitOfWork, channel: str, ref: PhotoRef) -> int:
        if ref.file_id not in self.fetched:
            return await self.fetcher.save(uow, channel, ref)
        result = self.fetched[ref.file_id]
        if isinstance(result, BaseException):
            raise result
        return await self.fetcher.save_fetched(uow, result)


async def _fetch_ahead(fetcher: PhotoFetcher, msg: Incoming) -> _FetchedAhead:
    fetched: dict[str, Any] = {}
    for ref in msg.photos:
        try:
            fetched[ref.file_id] = await fetcher.fetch(msg.channel, ref)
        except Exception as exc:  # raised again where the turn saves the photo
            fetched[ref.file_id] = exc
    return _FetchedAhead(fetcher, fetched)


@dataclass
class Turn:
    """Everything one handler call needs, and what it wants to send."""

    msg: Incoming
    uow: UnitOfWork
    conv: Conversation
    person: Person | None
    r: Renderer
    workflow: Workflow
    photos: PhotoSaver
    out: list[Outgoing] = field(default_factory=list)

    def text(self, macro: str, /, **params: Any) -> str:
        return self.r.macro("chat.html.j2", macro, **params)

    def reply(
        self, macro: str, /, *, buttons: list[list[Button]] | None = None, **kw: Any
    ) -> Outgoing:
        """Answer in the chat the message came from (addressed to the user in groups)."""
        params = {k: v for k, v in kw.items() if k not in _OUT_FIELDS}
        extra = {k: v for k, v in kw.items() if k in _OUT_FIELDS}
        message = Outgoing(
            chat_id=self.msg.chat_id,
            text=self.text(macro, **params),
            buttons=buttons or [],
            **extra,
        )
        if not self.msg.is_private and self.msg.message_id and "reply_to_message_id" not in extra:
            message.reply_to_message_id = self.msg.message_id
        self.out.append(message)
        return message

    def button(self, macro: str, data: str, /, **params: Any) -> Button:
        return Button(self.text(macro, **params), data)

    def new_draft(self, step: str, **draft: Any) -> None:
        self.conv.step = step
        self.conv.draft = {"id": secrets.token_hex(3), **draft}

    def clear(self) -> None:
        self.conv.step = ""
        self.conv.draft = {}

    @property
    def enrolled_person(self) -> Person:
        """The person writing, in steps only enrolled people reach (their drafts and buttons).
        A stranger there (an account unlinked mid-dialogue, a forged button) is refused."""
        if self.person is None:
            raise NotFound(
                "unknown_person", "an unknown account reached a step for enrolled people"
            )
        return self.person

    @property
    def draft_id(self) -> str:
        return str(self.conv.draft.get("id", ""))


_OUT_FIELDS = set(Outgoing.__dataclass_fields__) - {"chat_id", "text", "buttons"}

Route = Callable[[Turn], Awaitable[bool]]
# Stores the incoming message in the turn's own transaction (the web chat's history row) and
# returns its message id: a crash then loses both the record and the turn, or neither.
Record = Callable[[UnitOfWork], Awaitable[str | None]]


class Conversations:
    """Runs the flows in order; the first that takes the message handles it."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        workflow: Workflow,
        photos: PhotoSaver,
        routes: list[Route],
        default_locale: str = "zh_CN",
    ) -> None:
        self.uow_factory = uow_factory
        self.workflow = workflow
        self.photos = photos
        self.routes = routes
        self.default_locale = default_locale

    async def handle(self, msg: Incoming, record: Record | None = None) -> list[Outgoing]:
        """Process one update exactly once; returns what was queued (for logs and tests).
        `record`, when given, runs in the turn's transaction right after the processed mark."""
        error: WorkflowError
        photos: PhotoSaver = self.photos
        if msg.photos and isinstance(self.photos, PhotoFetcher):
            # Downloads and Pillow happen here, before the transaction: on SQLite nobody waits
            # for the writer while a photo travels (a repeated update fetches it again in vain:
            # files are content-addressed, the processed mark still stops the turn).
            photos = await _fetch_ahead(self.photos, msg)
        for attempt in range(3):
            try:
                return await self._run(msg, record, photos)
            except ConcurrentUpdate as exc:
                # Someone changed the same case or draft first: run the turn again on fresh data.
                error = exc
                log.info("update %s raced another one (attempt %s)", msg.update_key, attempt + 1)
            except WorkflowError as exc:
                error = exc
                break
            except Exception:
                log.exception("update %s failed", msg.update_key)
                error = WorkflowError("internal_error", "unexpected error")
                break
        return await self._answer_error(msg, error, record)

    async def _run(
        self, msg: Incoming, record: Record | None, photos: PhotoSaver
    ) -> list[Outgoing]:
        async with self.uow_factory() as uow:
            turn = await self._turn(uow, msg, record, photos)
            if turn is None:
                return []
            for route in self.routes:
                if await route(turn):
                    break
            await self._finish(uow, turn)
            await uow.commit()
            return turn.out

    async def _answer_error(
        self, msg: Incoming, error: WorkflowError, record: Record | None
    ) -> list[Outgoing]:
        """Nothing of the failed turn was written; say why in a fresh transaction."""
        async with self.uow_factory() as uow:
            turn = await self._turn(uow, msg, record)
            if turn is None:
                return []
            text = turn.r.error(error)
            turn.out.append(
                Outgoing(
                    chat_id=msg.chat_id,
                    text=text,
                    reply_to_message_id=None if msg.is_private else msg.message_id,
                    callback_answer=text if msg.callback_id else None,
                )
            )
            await self._finish(uow, turn, keep_conversation=True)
            await uow.commit()
            return turn.out

    async def _turn(
        self,
        uow: UnitOfWork,
        msg: Incoming,
        record: Record | None = None,
        photos: PhotoSaver | None = None,
    ) -> Turn | None:
        now = uow.clock.now()
        channels = uow.channels
        # First: a turn of this chat in another process (an album's next photo) waits here
        # until ours commits, and then reads our draft instead of racing it.
        if not await channels.begin_turn(msg.channel, msg.chat_id, msg.update_key or None, now):
            log.info("update %s already processed; ignored", msg.update_key)
            return None
        if record is not None and (message_id := await record(uow)) is not None:
            msg = replace(msg, message_id=message_id)
        person, conv = await uow.channels.turn_state(msg.channel, msg.chat_id, msg.user_id)
        locale = person.language if person else _locale_of(msg.language, self.default_locale)
        return Turn(
            msg=msg,
            uow=uow,
            conv=conv,
            person=person,
            r=Renderer(locale),
            workflow=self.workflow,
            photos=photos or self.photos,
        )

    async def _finish(self, uow: UnitOfWork, turn: Turn, keep_conversation: bool = False) -> None:
        if not keep_conversation:
            await uow.channels.save_conversation(turn.conv, uow.clock.now())
        answered = False
        for message in turn.out:
            if turn.msg.callback_id and not answered:
                message.callback_answer = message.callback_answer or ""
                answered = True
            await uow.outbox.add(
                OutgoingMessage(
                    channel=turn.msg.channel,
                    chat_id=message.chat_id,
                    payload={**message.payload(), "callback_id": turn.msg.callback_id},
                    case_number=message.case_number,
                    answer=message.chat_id == turn.msg.chat_id,  # not a card to another chat
                )
            )


def _locale_of(language_code: str | None, default: str) -> str:
    """Telegram's language_code (zh-hans, en-US, ...) to one of our locales."""
    if not language_code:
        return default
    language = language_code.lower().replace("-", "_").split("_")[0]
    matching = (code for code in LOCALES if code.lower().split("_")[0] == language)
    return next(matching, DEFAULT_LOCALE)
