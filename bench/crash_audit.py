"""bench/crash.py's counting: what the residents were told and what the system acknowledged,
against what the database holds and what was delivered."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from bench.crash_residents import Resident
from storage.db import create_engine, session_factory
from storage.rows import (
    AttachmentRow,
    CaseAttachmentRow,
    CaseRow,
    IdentityRow,
    OutboxRow,
    ProcessedUpdateRow,
    WebMessageRow,
)


@dataclass
class Figures:
    """One (channel, database) run; every figure after `cases` should be 0."""

    channel: str
    db: str
    residents: int
    kills: int
    seconds: float
    confirmed: int = 0  # residents who saw a receipt with a case number
    cases: int = 0  # cases the residents' accounts reported
    acked: int = 0  # inputs the system acknowledged (updates, webhook posts, web posts)
    gave_up: int = 0  # residents nobody answered at some step, even after retries
    retries: int = 0  # steps done again because no answer came
    lost: int = 0  # confirmed case numbers not in the database
    duplicates: int = 0  # cases beyond one per resident
    unprocessed: int = 0  # acknowledged inputs whose turn never ran
    delivered_twice: int = 0  # deliveries beyond one per outbox row (at most once each is fine)
    over_twice: int = 0  # messages delivered more than twice
    stuck: int = 0  # outbox rows still pending after the drain, on channels the run delivers
    unserved: int = 0  # pending rows for channels the run has no sender for (e.g. WeCom)
    missing_photos: int = 0  # cases without every photo their resident sent

    notes: list[str] = field(default_factory=list)  # what the non-zero figures are about

    ZERO = ("lost", "duplicates", "unprocessed", "over_twice", "stuck", "missing_photos")

    @property
    def ok(self) -> bool:
        return all(getattr(self, name) == 0 for name in self.ZERO)


def served(channel: str) -> tuple[str, ...]:
    """The outbox channels a scenario's processes deliver: Telegram when it runs (polling or
    webhook), and the web chat, whose delivery runs in every process. The example county gives
    some staff a wecom_userid, so their cards wait for a WeCom sender the bench does not
    configure: those rows are no crash's doing, and are counted apart."""
    return ("web",) if channel == "web" else ("telegram", "web")


def processed(key: str, marks: set[str]) -> bool:
    """Marks hold the key itself, or (newer schema) its sha256 digest."""
    return key in marks or hashlib.sha256(key.encode()).hexdigest() in marks


async def audit(
    figures: Figures, db_url: str, channel: str, residents: list[Resident],
    deliveries: Counter[tuple[str, str]] | None,
) -> Figures:  # fmt: skip
    """Fill in the figures; `deliveries` counts Telegram's sends by (chat, text) (None for the
    web chat, whose deliveries are its web_messages rows)."""
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            await count_figures(session, figures, channel, residents, deliveries)
    finally:
        await engine.dispose()
    return figures


async def count_figures(
    session: Any, f: Figures, channel: str, residents: list[Resident],
    deliveries: Counter[tuple[str, str]] | None,
) -> None:  # fmt: skip
    people = dict(
        (await session.execute(
            select(IdentityRow.external_id, IdentityRow.person_id)
            .where(IdentityRow.channel == channel)
        )).all()
    )  # fmt: skip
    cases = (await session.execute(select(CaseRow.id, CaseRow.number, CaseRow.reporter_id))).all()
    by_person: dict[int, list[tuple[int, str]]] = {}
    for case_id, number, reporter in cases:
        by_person.setdefault(reporter, []).append((case_id, number))
    numbers = {number for _, number, _ in cases}
    photos: dict[int, set[str]] = {}
    for case_id, sha in await session.execute(
        select(CaseAttachmentRow.case_id, AttachmentRow.sha256).join(
            AttachmentRow, AttachmentRow.id == CaseAttachmentRow.attachment_id
        )
    ):
        photos.setdefault(case_id, set()).add(sha)
    marks = set(
        (await session.execute(
            select(ProcessedUpdateRow.key).where(ProcessedUpdateRow.channel == channel)
        )).scalars()
    )  # fmt: skip

    for r in residents:
        f.confirmed += r.number is not None
        f.gave_up += r.gave_up_at is not None
        f.retries += r.retries
        f.lost += r.number is not None and r.number not in numbers
        f.acked += len(r.acked)
        never = [key for key in r.acked if not processed(key, marks)]
        f.unprocessed += len(never)
        f.notes.extend(f"resident {r.index}: {key} acknowledged, never processed" for key in never)
        mine = by_person.get(people.get(r.chat, -1), [])
        f.cases += len(mine)
        f.duplicates += max(0, len(mine) - 1)
        for case_id, number in mine:
            missing = len(r.shas - photos.get(case_id, set()))
            f.missing_photos += missing > 0
            if missing:
                f.notes.append(f"resident {r.index}: case {number} lacks {missing} photo(s)")

    stuck = (
        await session.execute(
            select(OutboxRow).where(OutboxRow.status == "pending").order_by(OutboxRow.id)
        )
    ).scalars()
    for row in stuck:
        if row.channel not in served(f.channel):
            f.unserved += 1
            continue
        f.stuck += 1
        f.notes.append(
            f"outbox row {row.id} ({row.channel}, chat {row.chat_id}) still pending: "
            f"created {row.created_at:%H:%M:%S}, next attempt {row.next_attempt_at:%H:%M:%S}, "
            f"{row.attempts} attempt(s), error {row.error!r}, "
            f"{str(row.payload.get('text') or row.payload)[:60]!r}"
        )
    rows: Counter[tuple[str, str]] = Counter(
        (chat, str(payload.get("text") or "")[:4096])
        for chat, payload in await session.execute(
            select(OutboxRow.chat_id, OutboxRow.payload).where(OutboxRow.channel == channel)
        )
    )
    if deliveries is None:
        deliveries = Counter(
            (chat, str(payload.get("text") or "")[:4096])
            for chat, payload in await session.execute(
                select(WebMessageRow.chat_id, WebMessageRow.payload).where(
                    WebMessageRow.direction == "out"
                )
            )
        )
    for key, sent in deliveries.items():
        expected = rows.get(key, 0)
        f.delivered_twice += max(0, sent - max(expected, 1))
        f.over_twice += sent > 2 * max(expected, 1)
        if sent > 2 * max(expected, 1):
            f.notes.append(f"chat {key[0]}: {sent} deliveries of {expected} rows: {key[1][:60]!r}")


def telegram_deliveries(fake: Any) -> Counter[tuple[str, str]]:
    """Successful text-carrying sends by (chat, text): each outbox row's text goes in exactly
    one such call (a message, or a photo's caption) per delivery."""
    out: Counter[tuple[str, str]] = Counter()
    for call in fake.calls:
        method = call.method.lower()
        if call.result is None or method not in ("sendmessage", "sendphoto"):
            continue
        text = call.params.get("text") if method == "sendmessage" else call.params.get("caption")
        if text:
            out[(str(call.params.get("chat_id")), str(text))] += 1
    return out


def handed_out(fake: Any) -> list[dict[str, Any]]:
    """Every update a getUpdates call answered (long polling)."""
    return [u for call in fake.calls_of("getUpdates") if call.result for u in call.result]
