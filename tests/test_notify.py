"""Domain events become case cards and news in the right chats, in the same transaction."""

from __future__ import annotations

from sqlalchemy import select

from storage.rows import OutboxRow
from workflow.commands import (
    AcceptCase,
    ActorRef,
    AssignCase,
    PassUp,
    ResolveCase,
    SubmitCase,
    ValidateCase,
)
from workflow.model import Role


async def outbox(world) -> list[OutboxRow]:
    async with world["sessions"]() as session:
        rows = (await session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars().all()
    return list(rows)


def buttons(row: OutboxRow) -> list[str]:
    return [b["data"] for line in row.payload["buttons"] for b in line]


async def test_each_holder_gets_the_card_and_the_reporter_the_news(world):
    wf, uow, p = world["wf"], world["uow"], world["people"]
    n = await wf.submit(uow(), SubmitCase(
        actor=ActorRef(world["resident"], Role.RESIDENT), grid_code="JL-XGC-01-G1",
        category_code="safety", description="井盖 <坏了>"))  # fmt: skip
    rows = await outbox(world)
    assert [r.chat_id for r in rows] == ["7001"]  # the grid leader, no group bound for the grid
    assert buttons(rows[0])[:2] == [f"a:sv:{n}", f"a:si:{n}"]
    assert "井盖 &lt;坏了&gt;" in rows[0].payload["text"]
    steps = [
        (ValidateCase(case_number=n, actor=ActorRef(p["P-L-01"], Role.GRID_LEADER)),
         {"5001", "7002"}),
        (PassUp(case_number=n, actor=ActorRef(p["P-T-01"], Role.TOWNSHIP_OPERATOR)),
         {"5001", "7003"}),
        (AssignCase(case_number=n, actor=ActorRef(p["P-C-01"], Role.COUNTY_DISPATCHER),
                    department_code="housing"), {"5001", "-100"}),
        (AcceptCase(case_number=n, actor=ActorRef(p["P-H-02"], Role.DEPARTMENT_HANDLER)),
         {"5001", "-100"}),
        (ResolveCase(case_number=n, actor=ActorRef(p["P-H-02"], Role.DEPARTMENT_HANDLER),
                     text="已更换"), {"5001"}),
    ]  # fmt: skip
    for cmd, chats in steps:
        seen = len(await outbox(world))
        await wf.handle(uow(), cmd)
        new = (await outbox(world))[seen:]
        assert {r.chat_id for r in new} == chats, cmd
        if isinstance(cmd, PassUp):
            card = next(r for r in new if r.chat_id == "7003")
            assert buttons(card)[0] == f"as:housing:{n}"  # responsibility list first
        if isinstance(cmd, AssignCase):
            card = next(r for r in new if r.chat_id == "-100")
            assert buttons(card) == [f"a:ac:{n}", f"a:rn:{n}"]
    rating = new[0]
    assert buttons(rating) == [f"ra:{n}:s", f"ra:{n}:b", f"ra:{n}:d"]
    assert "已更换" in rating.payload["text"] and rating.payload["purpose"] == "rating"
    assert all(len(b.encode()) <= 64 for r in await outbox(world) for b in buttons(r))
