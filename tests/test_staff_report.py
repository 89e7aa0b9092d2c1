"""Staff reporting on someone's behalf (workflow/table.py lets the county center and township
centers submit): in their private chat, the place first, then the resident's dialogue with the
caller's phone typed in; the news of the case reaches them, the result without rating buttons
(the table does not let them rate). Through the conversations (both databases) and through
the web chat."""

from __future__ import annotations

from sqlalchemy import select

from bot.web.chat.render import plain_text
from storage.channel import SqlChannelStore
from storage.queries import case_view
from storage.rows import AreaRow, CaseRow, PersonRow
from tests.support.chat import Bot
from tests.support.texts import said
from tests.support.webchat import chat_text
from workflow.commands import AcceptCase, ActorRef, AssignCase, PassUp, ResolveCase, ValidateCase
from workflow.model import Role


def data(out) -> list[str]:
    return [b.data for message in out for row in message.buttons for b in row]


def labels(out) -> list[str]:
    return [b.text for message in out for row in message.buttons for b in row]


async def card_of(world, number: str):
    async with world["sessions"]() as session:
        return await SqlChannelStore(session).case_card(number)


async def file_report(bot: Bot, user: str, places: list[str]) -> list:
    """/report, the places by name, then the dialogue; returns the answer to the confirm."""
    out = await bot.send(user, text="/report")
    for name in places:
        [choice] = [b.data for m in out for row in m.buttons for b in row if b.text == name]
        out = await bot.send(user, callback_data=choice, callback_id=f"p{name}")
    [category] = [d for d in data(out) if d.endswith(":safety")]
    await bot.send(user, callback_data=category, callback_id=f"c{user}")
    out = await bot.send(user, text="村口路灯不亮，来电反映")
    await bot.send(user, callback_data=next(d for d in data(out) if d.startswith("ph:")),
                   callback_id=f"h{user}")  # fmt: skip
    out = await bot.press(user, "loc:")
    assert out[0].text == said("ask_caller_contact") and not out[0].request_contact
    out = await bot.send(user, text="139 0000 1111")  # the caller's number, as typed
    assert "139 0000 1111" in out[0].text
    return await bot.send(user, callback_data=next(d for d in data(out) if d.endswith(":ok")),
                          callback_id=f"ok{user}")  # fmt: skip


async def test_the_county_center_files_a_phone_report_and_hears_the_result_to_pass_on(
    world, tmp_path
):
    bot = Bot(world, tmp_path)
    out = await bot.send("7003", text="📝 我要说事")  # the menu key, not enrolment
    assert out[0].text == said("ask_report_place") and "西郭城镇" in labels(out)
    out = await file_report(bot, "7003", ["西郭城镇", "西郭城村", "西郭城村第一网格"])
    number = out[0].text.split("<b>")[1].split("</b>")[0]
    async with world["sessions"]() as session:
        case = (await session.execute(select(CaseRow).where(CaseRow.number == number))).scalar_one()
        grid = await session.get(AreaRow, case.grid_id)
    assert (case.reporter_role, case.reporter_id) == (
        "county_dispatcher",
        world["people"]["P-C-01"],
    )
    assert (grid.code, case.contact_phone, case.state) == ("JL-XGC-01-G1", "139 0000 1111",
                                                          "screening")  # fmt: skip
    assert (await bot.button("7001", "a:sv:")).endswith(number)  # the grid leader's card

    people, wf, uow = world["people"], world["wf"], world["uow"]
    for cmd in (
        ValidateCase(case_number=number, actor=ActorRef(people["P-L-01"], Role.GRID_LEADER)),
        PassUp(case_number=number, actor=ActorRef(people["P-T-01"], Role.TOWNSHIP_OPERATOR)),
        AssignCase(case_number=number, actor=ActorRef(people["P-C-01"], Role.COUNTY_DISPATCHER),
                   department_code="housing"),
        AcceptCase(case_number=number, actor=ActorRef(people["P-H-02"], Role.DEPARTMENT_HANDLER)),
        ResolveCase(case_number=number, actor=ActorRef(people["P-H-02"], Role.DEPARTMENT_HANDLER),
                    text="已更换灯泡"),
    ):  # fmt: skip
        await wf.handle(uow(), cmd)
    result = (await bot.outbox("7003"))[-1]
    assert "已更换灯泡" in result.payload["text"] and result.payload["buttons"] == []
    assert result.payload["purpose"] == "news"  # no rating buttons: the table refuses them
    assert result.payload["text"] == said("news_resolved", card=await card_of(world, number),
                                          event=None, rating=False)  # fmt: skip
    assert (
        said("news_resolved", card=await card_of(world, number), event=None)
        != (result.payload["text"])
    )  # not asked how satisfied they are


async def test_a_township_center_reports_only_in_its_own_township(world, tmp_path):
    bot = Bot(world, tmp_path)
    out = await bot.send("7002", text="/report")
    async with world["sessions"]() as session:
        township = (
            await session.execute(select(AreaRow).where(AreaRow.code == "JL-XGC"))
        ).scalar_one()
        villages = (
            (await session.execute(select(AreaRow).where(AreaRow.parent_id == township.id)))
            .scalars()
            .all()
        )
        elsewhere = (
            await session.execute(select(AreaRow).where(AreaRow.kind == "grid",
                                                        AreaRow.code.not_like("JL-XGC-%")))
        ).scalars().first()  # fmt: skip
    assert sorted(labels(out)) == sorted(v.name_zh for v in villages)
    # A forged button for a grid of another township is refused before anything is asked.
    draft = data(out)[0].split(":")[1]
    forged = await bot.send("7002", callback_data=f"rp:{draft}:{elsewhere.id}", callback_id="f")
    assert [m.text for m in forged] == [said("stale_button")]
    out = await file_report(bot, "7002", ["西郭城村", "西郭城村第一网格"])
    number = out[0].text.split("<b>")[1].split("</b>")[0]
    async with world["sessions"]() as session:
        view = await case_view(session, number)
    assert view.case.reporter_role.value == "township_operator"
    assert view.timeline[0].action == "submit" and view.case.state.value == "screening"


async def test_the_county_center_reports_through_the_web_chat(demo):
    b, chat, app = demo
    await b.pick("P-C-01")
    assert await b.answers(b.say("/report")) == [chat_text("ask_report_place")]
    for name in ("西郭城镇", "西郭城村", "西郭城村第一网格"):
        await b.press("rp:", label=name)
    await b.press("cat:", label="安全隐患")
    await b.say("村口路灯不亮，来电反映")
    await b.press("ph:")
    assert [plain_text(v["nodes"]) for v in await b.press("loc:")] == [
        chat_text("ask_caller_contact")
    ]
    await b.say("13900001111")
    await b.press("cf:")
    async with app.sessions() as session:
        case = (await session.execute(select(CaseRow))).scalars().one()
        code = await session.scalar(select(PersonRow.code).where(PersonRow.id == case.reporter_id))
    assert (code, case.reporter_role, case.contact_phone) == (
        "P-C-01", "county_dispatcher", "13900001111"
    )  # fmt: skip
