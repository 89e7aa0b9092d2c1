"""What one case's dashboard page shows beyond its card: contacts, and which photos are its own."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.rows import AttachmentRow, CaseAttachmentRow, CaseRow, PersonRow, TransitionRow


@dataclass(frozen=True)
class CaseContacts:
    """Who the case page names: the reporter (unless anonymous) and the unit's handler."""

    reporter_name: str | None
    reporter_phone: str | None
    handler_name: str | None
    handler_phone: str | None
    # Trail entries an anonymous reporter made (report, rating): shown without their name.
    anonymous_seqs: frozenset[int] = frozenset()


async def case_contacts(session: AsyncSession, number: str) -> CaseContacts:
    """The reporter's contact (hidden when anonymous) and the handler who accepted or resolved."""
    case = (
        await session.execute(select(CaseRow).where(CaseRow.number == number.strip().upper()))
    ).scalar_one()
    reporter = await session.get(PersonRow, case.reporter_id) if case.reporter_id else None
    handler_id = (
        await session.execute(
            select(TransitionRow.actor_id)
            .where(
                TransitionRow.case_id == case.id,
                TransitionRow.action.in_(("accept", "handle_locally", "resolve", "note")),
                TransitionRow.actor_id.is_not(None),
            )
            .order_by(TransitionRow.seq.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    handler = await session.get(PersonRow, handler_id) if handler_id else None
    hidden = case.anonymous
    masked: frozenset[int] = frozenset()
    if hidden and case.reporter_id is not None:
        seqs = await session.execute(
            select(TransitionRow.seq).where(
                TransitionRow.case_id == case.id, TransitionRow.actor_id == case.reporter_id
            )
        )
        masked = frozenset(seqs.scalars())
    return CaseContacts(
        reporter_name=None if hidden or reporter is None else reporter.name,
        reporter_phone=None if hidden else _reporter_phone(case, reporter),
        handler_name=handler.name if handler else None,
        handler_phone=handler.phone if handler else None,
        anonymous_seqs=masked,
    )


async def case_photo_mime(session: AsyncSession, number: str, sha256: str) -> str | None:
    """The MIME type of a photo of this case (by its public copy's hash), None if not its own."""
    return (
        await session.execute(
            select(AttachmentRow.mime_type)
            .join(CaseAttachmentRow, CaseAttachmentRow.attachment_id == AttachmentRow.id)
            .join(CaseRow, CaseRow.id == CaseAttachmentRow.case_id)
            .where(CaseRow.number == number.strip().upper(), AttachmentRow.public_sha256 == sha256)
            .limit(1)
        )
    ).scalar_one_or_none()


def _reporter_phone(case: CaseRow, reporter: PersonRow | None) -> str | None:
    """The number given with the report, else the one the reporter is known by."""
    return case.contact_phone or (reporter.phone if reporter else None)
