"""The chat identities a county file gives its people: today the WeCom UserID (`wecom_userid`),
with which case cards reach them in the WeCom app (channel "wecom")."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.org_file.spec import OrgSpec
from storage.rows import IdentityRow

WECOM = "wecom"


async def sync_wecom_ids(
    session: AsyncSession, spec: OrgSpec, people: dict[str, int], now: datetime
) -> None:
    """Each person whose entry names a wecom_userid is that WeCom member (the identity moves
    to them if another person had it) and no other; `wecom_userid: null` removes theirs. An
    entry without the key leaves the person's WeCom identity as it is."""
    for p in spec.people:
        if not p.wecom_given:
            continue
        person_id = people[p.code]
        keep = p.wecom_userid
        stale = delete(IdentityRow).where(
            IdentityRow.channel == WECOM, IdentityRow.person_id == person_id
        )
        if keep is not None:
            stale = stale.where(IdentityRow.external_id != keep)
        await session.execute(stale)
        if keep is None:
            continue
        current = (
            await session.execute(
                select(IdentityRow.person_id).where(
                    IdentityRow.channel == WECOM, IdentityRow.external_id == keep
                )
            )
        ).scalar_one_or_none()
        if current is None:
            await session.execute(
                insert(IdentityRow).values(
                    channel=WECOM, external_id=keep, person_id=person_id, created_at=now
                )
            )
        elif current != person_id:
            await session.execute(
                update(IdentityRow)
                .where(IdentityRow.channel == WECOM, IdentityRow.external_id == keep)
                .values(person_id=person_id)
            )
