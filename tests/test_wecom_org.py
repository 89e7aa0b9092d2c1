"""`wecom_userid` in the county file: validated, one per person, and kept in line with the
file (the WeCom identity moves, goes with null, stays when the key is left out)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import session_factory
from storage.org_file import OrgFileError, load_org_file, parse_org_text
from storage.rows import IdentityRow, PersonRow
from tests.conftest import EXAMPLE_COUNTY


def _with(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


async def _wecom(engine: AsyncEngine) -> dict[str, str]:
    async with session_factory(engine)() as session:
        rows = await session.execute(
            select(PersonRow.code, IdentityRow.external_id)
            .join(PersonRow, PersonRow.id == IdentityRow.person_id)
            .where(IdentityRow.channel == "wecom")
        )
        return {code: userid for code, userid in rows.all()}


async def test_the_file_decides_each_persons_wecom_account(engine: AsyncEngine, tmp_path: Path):
    sessions = session_factory(engine)
    await load_org_file(sessions, EXAMPLE_COUNTY)
    example = {"P-L-02": "HuChunMei", "P-W-07": "ZhaoMin", "P-T-02": "HeXiaoYan"}
    assert await _wecom(engine) == example

    text = EXAMPLE_COUNTY.read_text(encoding="utf-8")
    text = _with(text, "wecom_userid: HuChunMei", "wecom_userid: hu.chunmei")  # changed
    text = _with(text, "wecom_userid: ZhaoMin, ", "wecom_userid: null, ")  # removed
    text = _with(text, "wecom_userid: HeXiaoYan, ", "")  # not said: kept
    text = _with(text, "{code: P-C-01, ", "{code: P-C-01, wecom_userid: GaoWenJie, ")
    path = tmp_path / "county.yaml"
    path.write_text(text, encoding="utf-8")
    await load_org_file(sessions, path)
    assert await _wecom(engine) == {"P-L-02": "hu.chunmei", "P-T-02": "HeXiaoYan",
                                    "P-C-01": "GaoWenJie"}  # fmt: skip
    await load_org_file(sessions, path)  # the same file twice changes nothing
    assert len(await _wecom(engine)) == 3

    # An account given to another person moves to them.
    moved = _with(text, "wecom_userid: GaoWenJie, ", "").replace(
        "{code: P-S-01, ", "{code: P-S-01, wecom_userid: GaoWenJie, "
    )
    path.write_text(moved, encoding="utf-8")
    await load_org_file(sessions, path)
    assert (await _wecom(engine))["P-S-01"] == "GaoWenJie" and "P-C-01" not in await _wecom(engine)


@pytest.mark.parametrize(
    ("userid", "reason"),
    [
        ("胡春梅", "must be WeCom's UserID"),
        ("-hu", "must be WeCom's UserID"),
        ("a" * 65, "longer than 64"),
        ("ZhaoMin", "is also person 'P-W-07''s"),
        ("zhaomin", "is also person 'P-W-07''s"),  # WeCom's userids ignore case
    ],
)
def test_a_bad_or_shared_userid_is_refused_with_its_line(userid: str, reason: str) -> None:
    text = _with(EXAMPLE_COUNTY.read_text(encoding="utf-8"), "wecom_userid: HuChunMei",
                 f"wecom_userid: {userid}")  # fmt: skip
    with pytest.raises(OrgFileError) as info:
        parse_org_text(text, "county.yaml")
    assert reason in info.value.reason
    line = text.splitlines()[info.value.line - 1]
    assert "wecom_userid" in line, line
