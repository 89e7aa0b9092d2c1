"""Scenario 2: grid workers report in their group chat, two at once without mixing, and rate."""

from __future__ import annotations

from storage.queries import case_view
from tests.support.chat import Bot
from tests.support.texts import said
from tests.support.world import WORKER_GROUP as GROUP
from tests.support.world import enrol_workers


async def test_two_workers_report_at_once_in_one_group(world, tmp_path):
    await enrol_workers(world)
    bot = Bot(world, tmp_path)
    a = await bot.send("8001", GROUP, text="/report 水库北侧防护网破损")
    b = await bot.send("8002", GROUP, text="/report")
    assert a[0].reply_to_message_id and b[0].reply_to_message_id  # each addressed to its worker
    own_a, own_b = a[0].buttons[0][0].data, b[0].buttons[0][0].data
    out = await bot.send("8001", GROUP, callback_data=own_b, callback_id="q1")  # not his
    assert said("stale_button") in out[0].text
    out = await bot.send("8002", GROUP, callback_data=own_b, callback_id="q2")
    assert (
        said("ask_description") in out[0].text and out[0].force_reply
    )  # worker 2 had no description yet
    out = await bot.send("8001", GROUP, callback_data=own_a, callback_id="q3")
    assert said("ask_photos", limit=9) in out[0].text  # worker 1 gave the description with /report
    out = await bot.send("8002", GROUP, text="路边乱堆建筑垃圾")
    assert said("ask_photos", limit=9) in out[0].text and out[0].reply_to_message_id


async def test_worker_reports_in_group_leader_screens_there_and_worker_rates(world, tmp_path):
    await enrol_workers(world)
    bot = Bot(world, tmp_path)
    out = await bot.send("8001", GROUP, text="/report 水库北侧防护网破损",
                         photos=())  # fmt: skip
    assert said("ask_category") in out[0].text
    out = await bot.press("8001", "cat:", chat=GROUP)
    assert said("ask_photos", limit=9) in out[0].text  # the description came with /report
    out = await bot.press("8001", "ph:", chat=GROUP)
    assert not out[0].request_location  # no location keyboard in groups
    out = await bot.send("8001", GROUP, text="北侧大坝", reply_to_message_id="m0")
    assert "核对" in out[0].text  # contact step skipped for staff
    out = await bot.press("8001", "cf:", chat=GROUP)
    number = out[0].text.split("<b>")[1].split("</b>")[0]
    # The grid group is bound: the screening card goes there, and the leader acts in it.
    await bot.press("7001", "a:sv:", chat=GROUP)
    await bot.press("7002", "a:pu:")
    await bot.press("7003", "as:housing:")
    await bot.press("7004", "a:ac:", chat="-100")
    await bot.press("7004", "a:rs:", chat="-100")
    await bot.send("7004", "-100", text="已修复")
    await bot.press("7004", "rz:", chat="-100")
    rating = (await bot.outbox("8001"))[-1]  # the worker's private chat
    assert rating.payload["purpose"] == "rating"
    await bot.press("8001", f"ra:{number}:b")
    await bot.press("8001", f"rk:{number}")
    async with world["sessions"]() as session:
        view = await case_view(session, number)
    assert view.case.state.value == "closed" and view.case.rating.value == "basically_satisfied"
    assert view.case.reporter_role.value == "grid_worker"
