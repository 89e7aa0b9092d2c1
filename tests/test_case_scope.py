"""A case that is not someone's business does not exist for them: every refusal they get for it
is, byte for byte, the answer an unknown case number gets (no state, not even existence)."""

from __future__ import annotations

import itertools

import pytest

from storage.channel import SqlChannelStore
from storage.invites import create_invite
from tests.support.chat import Bot
from tests.support.texts import refusal

ids = itertools.count(1)
# Another township's grid leader, a department that never held the case, another resident.
OTHER_LEADER, OTHER_DEPARTMENT, OTHER_RESIDENT = "7101", "7102", "7103"


@pytest.fixture
async def bot(world, tmp_path):
    now = world["uow"].clock.now()
    async with world["sessions"]() as session:
        store = SqlChannelStore(session)
        for code, chat in (("P-L-02", OTHER_LEADER), ("P-H-01", OTHER_DEPARTMENT)):
            invite = await create_invite(session, purpose="enrol", person_code=code, now=now)
            await store.redeem_invite(invite.code, "telegram", chat, code, chat, now)
        await session.commit()
    b = Bot(world, tmp_path)
    await b.send(OTHER_RESIDENT, text="/start JL-XGC-01-G2")
    return b


async def answer(bot: Bot, user: str, data: str) -> tuple[str, str | None]:
    out = await bot.send(user, callback_data=data, callback_id=f"s{next(ids)}")
    return out[0].text, out[0].callback_answer


async def test_out_of_scope_is_answered_like_an_unknown_number(bot: Bot):
    await bot.report("5001", "路灯不亮")
    number = next(r.case_number for r in await bot.outbox("7001") if r.case_number)
    unknown = number[:-4] + "9999"
    for user in (OTHER_RESIDENT, OTHER_LEADER, OTHER_DEPARTMENT):
        for data in ("a:sv:{}", "a:si:{}", "a:ac:{}", "as:housing:{}", "rc:safety:{}", "ra:{}:s"):
            real = await answer(bot, user, data.format(number))
            none = await answer(bot, user, data.format(unknown))
            assert none[0] == refusal("unknown_case", case=unknown), none
            assert real == tuple(t.replace(unknown, number) if t else t for t in none), (user, data)


async def test_those_the_case_concerns_still_hear_why_not(bot: Bot):
    await bot.report("5001", "路灯不亮")
    number = next(r.case_number for r in await bot.outbox("7001") if r.case_number)
    text, _ = await answer(bot, "5001", f"a:sv:{number}")  # the reporter, not a leader
    assert "群众" in text and text != refusal("unknown_case", case=number)
    text, _ = await answer(bot, "7001", f"a:ac:{number}")  # the case's own grid leader
    assert "网格长" in text and text != refusal("unknown_case", case=number)


async def test_a_duplicate_target_out_of_view_is_an_unknown_number(world):
    from workflow.commands import ActorRef, MarkDuplicate, RejectCase, SubmitCase
    from workflow.errors import GuardFailed
    from workflow.model import Role

    wf, uow, p, resident = world["wf"], world["uow"], world["people"], world["resident"]

    async def submit(grid: str) -> str:
        return await wf.submit(uow(), SubmitCase(
            actor=ActorRef(resident, Role.RESIDENT), grid_code=grid, category_code="safety",
            description="井盖"))  # fmt: skip

    elsewhere, mine = await submit("JL-XGC-01-G1"), await submit("JL-CG-01-G1")
    first_leader = ActorRef(p["P-L-01"], Role.GRID_LEADER)
    await wf.handle(uow(), RejectCase(case_number=elsewhere, actor=first_leader, reason="不属实"))
    leader = ActorRef(p["P-L-02"], Role.GRID_LEADER)  # serves JL-CG only
    refusals = []
    for target in (elsewhere, elsewhere[:-4] + "9999"):
        with pytest.raises(GuardFailed) as refused:
            await wf.handle(
                uow(), MarkDuplicate(case_number=mine, actor=leader, duplicate_of=target)
            )
        refusals.append((refused.value.code, {**refused.value.params, "case": "?"}))
    assert refusals[0] == refusals[1] and refusals[0][0] == "duplicate_target_unknown"


async def test_a_department_that_held_the_case_still_sees_it_after_returning_it(bot: Bot, world):
    from workflow.commands import AcceptCase, ActorRef, AssignCase, PassUp, ReturnCase, ValidateCase
    from workflow.model import Role

    wf, uow, p = world["wf"], world["uow"], world["people"]
    await bot.report("5001", "路灯不亮")
    number = next(r.case_number for r in await bot.outbox("7001") if r.case_number)
    housing = ActorRef(p["P-H-02"], Role.DEPARTMENT_HANDLER)
    for cmd in (
        ValidateCase(case_number=number, actor=ActorRef(p["P-L-01"], Role.GRID_LEADER)),
        PassUp(case_number=number, actor=ActorRef(p["P-T-01"], Role.TOWNSHIP_OPERATOR)),
        AssignCase(case_number=number, actor=ActorRef(p["P-C-01"], Role.COUNTY_DISPATCHER),
                   department_code="housing"),
        AcceptCase(case_number=number, actor=housing),
        ReturnCase(case_number=number, actor=housing, reason="不归我们管"),
    ):  # fmt: skip
        await wf.handle(uow(), cmd)
    text, _ = await answer(bot, "7004", f"a:ac:{number}")  # housing held it: told why not
    assert text != refusal("unknown_case", case=number)
    text, _ = await answer(bot, OTHER_DEPARTMENT, f"a:ac:{number}")  # municipal never did
    assert text == refusal("unknown_case", case=number)
