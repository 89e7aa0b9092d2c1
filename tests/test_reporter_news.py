"""The reporter hears of every step the receipt promises (progress notes with their photos,
passing up), and an outdated rating button is refused before anything is asked."""

from __future__ import annotations

from handlers.messages import PhotoRef
from storage.channel import SqlChannelStore
from storage.queries import case_view
from tests.support.chat import Bot
from tests.support.texts import refusal


async def _in_progress(bot: Bot, world) -> str:
    """A resident's report, screened, passed up, assigned and accepted by the housing bureau;
    the department's card is linked as Telegram message 777 of its group chat."""
    await bot.report("5001", "水库北侧防护网破损")
    number = (await bot.button("7001", "a:sv:")).split(":")[2]
    await bot.press("7001", "a:sv:")
    await bot.press("7002", "a:pu:")
    await bot.press("7003", "as:housing:")
    await bot.press("7004", "a:ac:", chat="-100")
    async with world["sessions"]() as session:
        await SqlChannelStore(session).link_message("telegram", "-100", "777", number, "case_card",
                                                    world["uow"].clock.now())  # fmt: skip
        await session.commit()
    return number


async def test_passing_up_is_news_to_the_reporter(world, tmp_path):
    bot = Bot(world, tmp_path)
    await bot.report("5001", "路灯不亮")
    await bot.press("7001", "a:sv:")
    before = len(await bot.outbox("5001"))
    await bot.press("7002", "a:pu:")
    news = (await bot.outbox("5001"))[before:]
    assert [row.payload["purpose"] for row in news] == ["news"]
    assert "县级中心" in news[0].payload["text"]


async def test_a_progress_note_reaches_the_reporter_with_its_photo(world, tmp_path):
    bot = Bot(world, tmp_path)
    number = await _in_progress(bot, world)
    before = len(await bot.outbox("5001"))
    await bot.send("7004", "-100", text="明天上午施工", photos=(PhotoRef("red", size=9),),
                   reply_to_message_id="777")  # fmt: skip
    news = (await bot.outbox("5001"))[before:]
    assert len(news) == 1 and news[0].payload["purpose"] == "news"
    assert number in news[0].payload["text"] and "明天上午施工" in news[0].payload["text"]
    async with world["sessions"]() as session:
        view = await case_view(session, number)
    note = view.timeline[-1]
    assert note.action == "note" and len(note.photos) == 1
    assert news[0].payload["photos"] == note.photos  # the public copy of the note's photo


async def test_a_stale_rating_button_is_refused_before_a_comment_is_asked(world, tmp_path):
    bot = Bot(world, tmp_path)
    number = await _in_progress(bot, world)
    await bot.press("7004", "a:rs:", chat="-100")
    await bot.send("7004", "-100", text="已修复防护网")
    await bot.press("7004", "rz:", chat="-100")
    await bot.send("5001", callback_data=f"ra:{number}:s", callback_id="r1")
    await bot.send("5001", text="修得很快")
    # The old rating message's 不满意, pressed after the case closed: refused at once.
    out = await bot.send("5001", callback_data=f"ra:{number}:d", callback_id="r2")
    assert [m.text for m in out] == [refusal("illegal_transition", state="closed", action="rate")]
    out = await bot.send("5001", text="还是不行")  # not taken as a comment to a rating
    async with world["sessions"]() as session:
        view = await case_view(session, number)
    assert view.case.state.value == "closed" and view.case.rating.value == "satisfied"
    assert view.case.rating_comment == "修得很快"
