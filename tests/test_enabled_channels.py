"""Messages go only to the channels this deployment delivers (bot/app.py `enabled_channels`).
The example county gives three staff a WeCom UserID; on a deployment without WeCom their cards
go to their other chats, or to their staff workspace when WeCom was their only account, and no
'wecom' outbox row waits for a sender that is not there. Both databases (the `world` fixture)."""

from __future__ import annotations

from sqlalchemy import select

from bot.app import enabled_channels
from bot.config import load_settings
from bot.web.dashboard.users import add_user
from handlers.notify import Notifier
from storage.channel import SqlChannelStore
from storage.invites import create_invite
from storage.rows import OutboxRow
from tests.support.wecom import SETTINGS as GOOD
from workflow.commands import ActorRef, SubmitCase, ValidateCase
from workflow.model import Role
from workflow.policy import WorkflowPolicy
from workflow.services import Workflow

NO_WECOM = frozenset({"telegram", "web"})
NO_WECHAT = frozenset({"telegram", "wecom", "web"})
GRID = "JL-CG-01-G1"  # its grid leader P-L-02 (胡春梅) is WeCom member HuChunMei
WORKSPACE = ("web", "p-P-L-02")


async def sent(world) -> list[tuple[str, str]]:
    async with world["sessions"]() as session:
        rows = (await session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars()
        return [(r.channel, r.chat_id) for r in rows]


async def submit(world, enabled: frozenset[str] | None = None, reporter: int | None = None) -> str:
    notifier = Notifier() if enabled is None else Notifier(enabled=enabled)
    wf = Workflow(WorkflowPolicy(), on_events=notifier)
    actor = ActorRef(reporter or world["resident"], Role.RESIDENT)
    return await wf.submit(
        world["uow"](),
        SubmitCase(actor=actor, grid_code=GRID, category_code="safety", description="井盖松动"),
    )


async def enrol(world, code: str, channel: str, user: str) -> None:
    async with world["sessions"]() as session:
        now = world["uow"].clock.now()
        invite = await create_invite(session, purpose="enrol", person_code=code, now=now)
        await SqlChannelStore(session).redeem_invite(invite.code, channel, user, code, user, now)
        await session.commit()


async def workspace(world, code: str) -> None:
    """A dashboard account for the person: their staff web workspace (web chat "p-<code>")."""
    async with world["uow"]() as uow:
        await add_user(uow.accounts, code.lower(), "a-long-password-1",
                       now=world["uow"].clock.now(), person_code=code)  # fmt: skip
        await uow.commit()


async def test_without_wecom_a_card_for_someone_also_in_telegram_goes_to_telegram_only(world):
    await enrol(world, "P-L-02", "telegram", "7010")
    await submit(world, NO_WECOM)
    assert await sent(world) == [("telegram", "7010")]


async def test_without_wecom_someone_only_in_wecom_gets_the_card_in_their_workspace(world):
    await workspace(world, "P-L-02")
    await submit(world)  # all channels (the default): WeCom is her chat account
    assert await sent(world) == [("wecom", "HuChunMei")]
    await submit(world, NO_WECOM)
    # Her WeCom account reaches nobody here, so it is no "other chat account".
    assert (await sent(world))[1:] == [WORKSPACE]


async def test_without_wecom_a_group_still_reaches_the_workspace_of_one_only_in_wecom(world):
    await workspace(world, "P-L-02")
    async with world["sessions"]() as session:
        store = SqlChannelStore(session)
        group = await create_invite(session, purpose="bind_chat", chat_purpose="grid",
                                    area_code=GRID, now=world["uow"].clock.now())  # fmt: skip
        await store.redeem_invite(group.code, "telegram", "7099", "someone", "-300",
                                  world["uow"].clock.now())  # fmt: skip
        grid = (await store.place_by_code(GRID)).id
        role = Role.GRID_LEADER
        assert await store.desk_chats_with_role(role, area_id=grid) == []
        desk = await store.desk_chats_with_role(role, area_id=grid, channels=NO_WECOM)
        assert [(c, e) for c, e, _ in desk] == [WORKSPACE]
        await session.commit()
    await submit(world, NO_WECOM)
    assert await sent(world) == [("telegram", "-300"), WORKSPACE]


async def test_without_wechat_a_resident_there_gets_no_news_on_it(world):
    await enrol(world, "P-L-02", "telegram", "7010")
    async with world["sessions"]() as session:
        store = SqlChannelStore(session)
        grid = (await store.place_by_code(GRID)).id
        now = world["uow"].clock.now()
        resident = await store.enrol_resident("wechat", "o-1", "王芳", "zh_CN", grid, now)
        await session.commit()
    number = await submit(world, NO_WECHAT, reporter=resident.id)
    wf = Workflow(WorkflowPolicy(), on_events=Notifier(enabled=NO_WECHAT))
    leader = ActorRef(world["people"]["P-L-02"], Role.GRID_LEADER)
    await wf.handle(world["uow"](), ValidateCase(case_number=number, actor=leader))
    assert [row for row in await sent(world) if row[0] == "wechat"] == []
    assert ("telegram", "7010") in await sent(world)


def test_the_settings_say_which_channels_are_delivered():
    assert enabled_channels(load_settings()) == {"web"}
    assert enabled_channels(load_settings(telegram={"token": "1:x"}, wecom=GOOD)) == {
        "telegram",
        "wecom",
        "web",
    }
