"""Invite codes: which combinations an administrator may create, and `shuoshi invite`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.cli.main import main
from storage.db import session_factory
from storage.invites import CODE_ALPHABET, CODE_LENGTH, create_invite
from storage.org_file import load_org_file
from storage.rows import AreaRow, DepartmentRow, InviteRow, PersonRow
from tests.conftest import EXAMPLE_COUNTY

G1 = "JL-XGC-01-G1"


@pytest.fixture
async def sessions(engine):
    factory = session_factory(engine)
    await load_org_file(factory, EXAMPLE_COUNTY)
    return factory


async def _create(sessions, clock, **kw) -> InviteRow:
    async with sessions() as session:
        row = await create_invite(session, now=clock.now(), **kw)
        await session.commit()
        return row


async def _id(sessions, row, code: str) -> int:
    async with sessions() as session:
        return (await session.execute(select(row.id).where(row.code == code))).scalar_one()


async def test_valid_combinations_are_stored(sessions, clock):
    enrol = await _create(sessions, clock, purpose="enrol", role="grid_worker", area_code=G1)
    assert len(enrol.code) == CODE_LENGTH and set(enrol.code) <= set(CODE_ALPHABET)
    assert (enrol.purpose, enrol.role, enrol.area_id) == (
        "enrol",
        "grid_worker",
        await _id(sessions, AreaRow, G1),
    )
    assert enrol.expires_at - enrol.created_at == timedelta(hours=72)
    assert enrol.used_at is None and enrol.person_id is None and enrol.chat_purpose is None

    township = await _create(
        sessions, clock, purpose="enrol", role="township_operator", area_code="JL-CG",
        valid_hours=5,
    )  # fmt: skip
    assert township.area_id == await _id(sessions, AreaRow, "JL-CG")
    assert township.expires_at == clock.now() + timedelta(hours=5)
    handler = await _create(
        sessions, clock, purpose="enrol", role="department_handler", department_code="water"
    )
    assert handler.department_id == await _id(sessions, DepartmentRow, "water")
    for role in ("county_dispatcher", "supervisor", "admin"):
        row = await _create(sessions, clock, purpose="enrol", role=role)
        assert row.area_id is None and row.department_id is None
    person = await _create(
        sessions, clock, purpose="enrol", role="grid_worker", area_code=G1, person_code="P-W-01"
    )
    assert person.person_id == await _id(sessions, PersonRow, "P-W-01")
    only_person = await _create(sessions, clock, purpose="enrol", person_code="P-C-01")
    assert only_person.role is None and only_person.person_id is not None

    grid_chat = await _create(sessions, clock, purpose="bind_chat", chat_purpose="grid",
                              area_code=G1)  # fmt: skip
    assert (grid_chat.role, grid_chat.chat_purpose) == (None, "grid")
    assert grid_chat.area_id == await _id(sessions, AreaRow, G1)
    await _create(sessions, clock, purpose="bind_chat", chat_purpose="township", area_code="JL-XGC")
    await _create(
        sessions, clock, purpose="bind_chat", chat_purpose="department", department_code="health"
    )
    for chat_purpose in ("county", "supervisors", "leaders"):
        await _create(sessions, clock, purpose="bind_chat", chat_purpose=chat_purpose)

    async with sessions() as session:
        codes = (await session.execute(select(InviteRow.code))).scalars().all()
    assert len(codes) == len(set(codes)) == 14


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"purpose": "join"}, "unknown invite purpose"),
        ({"purpose": "enrol"}, "needs a role"),
        ({"purpose": "enrol", "role": "mayor"}, "unknown role 'mayor'"),
        ({"purpose": "enrol", "role": "system"}, "nobody can be enrolled as system"),
        ({"purpose": "enrol", "role": "grid_worker"}, "needs a grid code"),
        ({"purpose": "enrol", "role": "resident", "area_code": "JL-XGC"}, "not a grid"),
        ({"purpose": "enrol", "role": "grid_leader", "area_code": "JL-NOPE"}, "no area"),
        ({"purpose": "enrol", "role": "township_operator", "area_code": G1}, "township or street"),
        ({"purpose": "enrol", "role": "department_handler"}, "needs a department code"),
        ({"purpose": "enrol", "role": "department_handler", "department_code": "x"},
         "no department with code x"),
        ({"purpose": "enrol", "role": "admin", "area_code": G1}, "takes no area"),
        ({"purpose": "enrol", "role": "supervisor", "department_code": "water"},
         "takes no department"),
        ({"purpose": "enrol", "role": "grid_worker", "area_code": G1,
          "department_code": "water"}, "takes no department"),
        ({"purpose": "enrol", "role": "grid_worker", "area_code": G1, "chat_purpose": "grid"},
         "no chat purpose"),
        ({"purpose": "enrol", "area_code": G1, "person_code": "P-W-01"}, "give the role"),
        ({"purpose": "enrol", "person_code": "P-NOPE"}, "no person with code P-NOPE"),
        ({"purpose": "enrol", "role": "grid_worker", "area_code": "JL-XGC-01-G2",
          "person_code": "P-W-01"}, "does not hold the role grid_worker"),
        ({"purpose": "bind_chat"}, "needs a purpose"),
        ({"purpose": "bind_chat", "chat_purpose": "party"}, "not 'party'"),
        ({"purpose": "bind_chat", "chat_purpose": "grid"}, "needs a grid code"),
        ({"purpose": "bind_chat", "chat_purpose": "grid", "area_code": "JL-CG"}, "not a grid"),
        ({"purpose": "bind_chat", "chat_purpose": "township"}, "needs a township code"),
        ({"purpose": "bind_chat", "chat_purpose": "department"}, "needs a department code"),
        ({"purpose": "bind_chat", "chat_purpose": "county", "area_code": G1}, "takes no area"),
        ({"purpose": "bind_chat", "chat_purpose": "leaders", "department_code": "water"},
         "takes no department"),
        ({"purpose": "bind_chat", "chat_purpose": "grid", "area_code": G1, "role": "resident"},
         "no role and no person"),
        ({"purpose": "enrol", "role": "admin", "valid_hours": 0}, "at least 1 hour"),
    ],
)  # fmt: skip
async def test_bad_combinations_are_refused(sessions, clock, kw, reason):
    with pytest.raises(ValueError, match=reason):
        await _create(sessions, clock, **kw)
    async with sessions() as session:
        assert (await session.execute(select(InviteRow))).first() is None


def test_invite_command(workdir, capsys, monkeypatch):
    assert main(["init"]) == 0
    capsys.readouterr()

    assert main(["invite", "enrol", "--role", "grid_worker", "--area", G1,
                 "--person", "P-W-01", "--hours", "24"]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert err == "" and "张伟(P-W-01)" in out and "网格员" in out and "西郭城村第一网格" in out
    code = out.split("邀请码：")[1].split()[0]
    assert len(code) == CODE_LENGTH and f"/start {code}" in out and "北京时间" in out

    monkeypatch.setenv("SHUOSHI_LOCALE", "en")
    assert main(["invite", "chat", "--purpose", "grid", "--area", G1]) == 0
    out, err = capsys.readouterr()
    assert "grid group, Xiguocheng Grid 1 (JL-XGC-01-G1)" in out and "(Asia/Shanghai)" in out
    code = out.split("Invite code: ")[1].split()[0]
    assert f"/bind {code}" in out

    assert main(["invite", "chat", "--purpose", "county", "--area", G1]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "error: a county invite takes no area (--area)\n"
    assert main(["invite", "enrol", "--role", "grid_worker"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "grid code" in err and "Traceback" not in err
