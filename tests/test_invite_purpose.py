"""An invite code works only for what it was made for: enrol codes by /start in a private
chat, chat codes by /bind in a group; the wrong use is refused and the code stays unused."""

from __future__ import annotations

from sqlalchemy import select

from storage.invites import create_invite
from storage.rows import ChatBindingRow, IdentityRow, InviteRow
from tests.support.chat import Bot
from tests.support.texts import refusal, said


async def invites(world) -> tuple[str, str]:
    now = world["uow"].clock.now()
    async with world["sessions"]() as session:
        enrol = await create_invite(session, purpose="enrol", role="supervisor", now=now)
        group = await create_invite(session, purpose="bind_chat", chat_purpose="county", now=now)
        await session.commit()
    return enrol.code, group.code


async def state(world, *codes: str) -> tuple[list, int, int]:
    async with world["sessions"]() as session:
        wanted = select(InviteRow.used_at).where(InviteRow.code.in_(codes))
        used = (await session.execute(wanted)).scalars().all()
        bindings = len((await session.execute(
            select(ChatBindingRow.id).where(ChatBindingRow.chat_id.in_(["6001", "-600"]))
        )).all())  # fmt: skip
        accounts = len((await session.execute(
            select(IdentityRow.id).where(IdentityRow.external_id == "6001"))).all())  # fmt: skip
    return list(used), bindings, accounts


async def test_a_chat_code_does_not_enrol_and_an_enrol_code_does_not_bind(world, tmp_path):
    bot = Bot(world, tmp_path)
    enrol, group = await invites(world)
    out = await bot.send("6001", text=f"/start {group}")
    assert out[0].text == refusal("invite_wrong_use", invite=group, purpose="bind_chat")
    out = await bot.send("6001", "-600", text=f"/bind {enrol}")
    assert out[0].text == refusal("invite_wrong_use", invite=enrol, purpose="enrol")
    assert await state(world, enrol, group) == ([None, None], 0, 0)
    # Each still works for its own purpose afterwards.
    out = await bot.send("6001", text=f"/start {enrol}")
    assert "登记" in out[0].text
    out = await bot.send("6001", "-600", text=f"/bind {group}")
    assert out[0].text == said("bound", purpose="grid")
    used, bindings, accounts = await state(world, enrol, group)
    assert all(used) and bindings == 1 and accounts == 1


async def test_the_refusal_is_localized(world, tmp_path):
    bot = Bot(world, tmp_path)
    enrol, group = await invites(world)
    out = await bot.send("6001", text=f"/start {group}", language="en")
    assert "binds a group chat" in out[0].text and f"/bind {group}" in out[0].text
    out = await bot.send("6001", "-600", text=f"/bind {enrol}", language="en")
    assert "enrols a person" in out[0].text and f"/start {enrol}" in out[0].text
