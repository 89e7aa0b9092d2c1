"""The SQL channel store on both databases: conversations, people, invites, chats, messages."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import func, insert, select

from storage.channel import SqlChannelStore
from storage.db import alembic_config, session_factory
from storage.invites import create_invite
from storage.org_file import load_org_file
from storage.rows import (
    AreaRow,
    CaseRow,
    CategoryRow,
    ChatBindingRow,
    ConversationRow,
    DepartmentRow,
    IdentityRow,
    PersonRow,
    ProcessedUpdateRow,
    RoleAssignmentRow,
)
from tests.conftest import EXAMPLE_COUNTY
from workflow.channels import ChatBinding, Conversation, InviteUse, Place, RoleGrant
from workflow.errors import ConcurrentUpdate, GuardFailed, NotFound
from workflow.model import Role

G1 = "JL-XGC-01-G1"
G2 = "JL-XGC-01-G2"
CG_G1 = "JL-CG-01-G1"


class Env:
    def __init__(self, engine, clock) -> None:
        self.sessions = session_factory(engine)
        self.clock = clock
        self.areas: dict[str, int] = {}
        self.departments: dict[str, int] = {}
        self.people: dict[str, int] = {}

    async def setup(self) -> None:
        await load_org_file(self.sessions, EXAMPLE_COUNTY)
        async with self.sessions() as session:
            self.areas = dict((await session.execute(select(AreaRow.code, AreaRow.id))).all())
            self.departments = dict(
                (await session.execute(select(DepartmentRow.code, DepartmentRow.id))).all()
            )
            self.people = dict(
                (
                    await session.execute(
                        select(PersonRow.code, PersonRow.id).where(PersonRow.code.is_not(None))
                    )
                ).all()
            )

    async def run(self, fn):
        """Call fn(store, session) in a transaction of its own and commit it."""
        async with self.sessions() as session:
            result = await fn(SqlChannelStore(session), session)
            await session.commit()
            return result

    async def invite(self, **kw) -> str:
        async def make(_store, session):
            row = await create_invite(session, now=self.clock.now(), **kw)
            return row.code

        return await self.run(make)

    async def redeem(self, code: str, user: str = "u1", chat: str = "u1") -> InviteUse:
        return await self.run(
            lambda s, _: s.redeem_invite(code, "telegram", user, "新用户", chat, self.clock.now())
        )

    async def count(self, row, *where) -> int:
        async with self.sessions() as session:
            query = select(func.count()).select_from(row).where(*where)
            return (await session.execute(query)).scalar_one()


@pytest.fixture
async def env(engine, clock):
    e = Env(engine, clock)
    await e.setup()
    return e


# Conversations ---------------------------------------------------------------------------------


async def test_conversation_round_trip_and_stale_version(env: Env):
    now = env.clock.now()
    fresh = await env.run(lambda s, _: s.conversation("telegram", "c1", "u1"))
    assert fresh == Conversation("telegram", "c1", "u1") and fresh.version == 0 and fresh.idle

    fresh.step = "describe"
    fresh.draft = {"category": "safety", "photo_ids": [1, 2], "text": "井盖"}
    await env.run(lambda s, _: s.save_conversation(fresh, now))
    assert fresh.version == 1

    loaded = await env.run(lambda s, _: s.conversation("telegram", "c1", "u1"))
    assert loaded == fresh
    stale = await env.run(lambda s, _: s.conversation("telegram", "c1", "u1"))

    loaded.step = "photos"
    loaded.draft["text"] = "井盖破损"
    await env.run(lambda s, _: s.save_conversation(loaded, now))
    assert loaded.version == 2
    again = await env.run(lambda s, _: s.conversation("telegram", "c1", "u1"))
    assert (again.step, again.draft["text"], again.version) == ("photos", "井盖破损", 2)

    stale.step = "confirm"
    with pytest.raises(ConcurrentUpdate) as info:
        await env.run(lambda s, _: s.save_conversation(stale, now))
    assert info.value.code == "conversation_changed"
    assert (await env.run(lambda s, _: s.conversation("telegram", "c1", "u1"))).step == "photos"

    # Two first saves of the same conversation: the second one is stale too.
    first, second = Conversation("telegram", "c1", "u2", "x"), Conversation("telegram", "c1", "u2")
    second.step = "y"
    await env.run(lambda s, _: s.save_conversation(first, now))
    with pytest.raises(ConcurrentUpdate):
        await env.run(lambda s, _: s.save_conversation(second, now))

    # Other users and chats are separate conversations.
    other = await env.run(lambda s, _: s.conversation("telegram", "c2", "u1"))
    assert other.version == 0 and other.draft == {}


async def test_an_idle_conversation_is_deleted(env: Env):
    now = env.clock.now()
    conv = Conversation("telegram", "c1", "u1", step="describe", draft={"a": 1})
    await env.run(lambda s, _: s.save_conversation(conv, now))
    assert await env.count(ConversationRow) == 1
    stale = Conversation("telegram", "c1", "u1", step="describe", version=1)
    conv.step, conv.draft = "", {}
    await env.run(lambda s, _: s.save_conversation(conv, now))
    assert conv.version == 0 and await env.count(ConversationRow) == 0
    back = await env.run(lambda s, _: s.conversation("telegram", "c1", "u1"))
    assert back.version == 0 and back.idle
    # Already gone: ending it again is harmless; an idle fresh conversation stores nothing.
    stale.step = ""
    await env.run(lambda s, _: s.save_conversation(stale, now))
    await env.run(lambda s, _: s.save_conversation(Conversation("telegram", "c9", "u9"), now))
    assert await env.count(ConversationRow) == 0

    # Someone saved in between: ending the stale copy is refused, the newer one stays.
    conv = Conversation("telegram", "c1", "u1", step="describe")
    await env.run(lambda s, _: s.save_conversation(conv, now))
    old = Conversation("telegram", "c1", "u1", step="describe", version=conv.version)
    conv.step = "photos"
    await env.run(lambda s, _: s.save_conversation(conv, now))
    old.step = ""
    with pytest.raises(ConcurrentUpdate):
        await env.run(lambda s, _: s.save_conversation(old, now))
    assert await env.count(ConversationRow) == 1


# People ------------------------------------------------------------------------------------------


async def test_enrol_resident_is_idempotent_and_moves_grids(env: Env):
    now = env.clock.now()
    assert await env.run(lambda s, _: s.person_for("telegram", "u1")) is None

    def enrol(grid: str):
        return env.run(
            lambda s, _: s.enrol_resident("telegram", "u1", "王小明", "en", env.areas[grid], now)
        )

    person = await enrol(G1)
    assert (person.name, person.language) == ("王小明", "en")
    assert person.roles == (RoleGrant(Role.RESIDENT, frozenset({env.areas[G1]})),)
    assert person.has(Role.RESIDENT) and not person.has(Role.GRID_WORKER)
    assert await env.run(lambda s, _: s.person_for("telegram", "u1")) == person

    again = await enrol(G1)
    assert again == person
    people = await env.count(PersonRow)
    assert await env.count(RoleAssignmentRow, RoleAssignmentRow.person_id == person.id) == 1

    moved = await enrol(CG_G1)
    assert moved.id == person.id and await env.count(PersonRow) == people
    assert moved.grant(Role.RESIDENT) == RoleGrant(Role.RESIDENT, frozenset({env.areas[CG_G1]}))
    assert await env.run(lambda s, _: s.identities_of(person.id)) == [("telegram", "u1")]
    # (The county file's own identities, the staff's WeCom accounts, are not residents'.)
    assert await env.count(IdentityRow, IdentityRow.channel == "telegram") == 1

    # Another channel is another account, hence another person.
    other = await env.run(
        lambda s, _: s.enrol_resident("wecom", "u1", "王小明", "zh_CN", env.areas[G1], now)
    )
    assert other.id != person.id

    with pytest.raises(NotFound) as info:
        await env.run(
            lambda s, _: s.enrol_resident("telegram", "u2", "x", "zh_CN", env.areas["JL-XGC"], now)
        )
    assert info.value.code == "unknown_grid"


async def test_an_account_of_a_removed_person_enrols_as_a_new_one(env: Env):
    """The org file removed the person behind the account: a /start makes a new resident and
    moves the account to it (the old person keeps nothing, and no second identity appears)."""
    now = env.clock.now()
    first = await env.run(
        lambda s, _: s.enrol_resident("telegram", "u1", "王小明", "zh_CN", env.areas[G1], now)
    )
    async with env.sessions() as session:
        person = await session.get(PersonRow, first.id)
        assert person is not None
        person.active = False
        await session.commit()
    again = await env.run(
        lambda s, _: s.enrol_resident("telegram", "u1", "王小明", "zh_CN", env.areas[G2], now)
    )
    assert again.id != first.id
    assert again.roles == (RoleGrant(Role.RESIDENT, frozenset({env.areas[G2]})),)
    assert await env.run(lambda s, _: s.person_for("telegram", "u1")) == again
    assert await env.run(lambda s, _: s.identities_of(again.id)) == [("telegram", "u1")]
    assert await env.run(lambda s, _: s.identities_of(first.id)) == []
    assert await env.count(IdentityRow, IdentityRow.channel == "telegram") == 1


async def test_person_for_groups_roles_and_ignores_inactive_people(env: Env):
    leader = env.people["P-L-01"]
    code = await env.invite(purpose="enrol", person_code="P-L-01")
    use = await env.redeem(code, user="leader")
    assert use == InviteUse("enrol", role=Role.GRID_LEADER, person_id=leader)
    person = await env.run(lambda s, _: s.person_for("telegram", "leader"))
    assert person is not None and person.id == leader and person.name == "马建国"
    grant = person.grant(Role.GRID_LEADER)
    assert grant is not None and len(grant.area_ids) == 6 and grant.department_ids == frozenset()

    async def deactivate(_store, session):
        (await session.get(PersonRow, leader)).active = False

    await env.run(deactivate)
    assert await env.run(lambda s, _: s.person_for("telegram", "leader")) is None


async def test_person_for_is_one_statement_however_many_roles(env: Env, engine):
    """Every update starts by asking who is behind the chat: one round trip, not one per table."""
    from sqlalchemy import event

    leader = env.people["P-L-01"]
    code = await env.invite(purpose="enrol", person_code="P-L-01")
    await env.redeem(code, user="leader")

    async def add_supervisor(_store, session):
        await session.execute(insert(RoleAssignmentRow).values(person_id=leader, role="supervisor"))

    await env.run(add_supervisor)
    statements: list[str] = []

    def remember(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", remember)
    try:
        person = await env.run(lambda s, _: s.person_for("telegram", "leader"))
        nobody = await env.run(lambda s, _: s.person_for("telegram", "stranger"))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", remember)
    selects = [st for st in statements if st.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2, selects  # one per call
    assert nobody is None and person is not None
    assert {g.role for g in person.roles} == {Role.GRID_LEADER, Role.SUPERVISOR}
    assert len(person.grant(Role.GRID_LEADER).area_ids) == 6


# Invites -----------------------------------------------------------------------------------------


async def test_enrol_invite_creates_a_person_once(env: Env):
    code = await env.invite(purpose="enrol", role="grid_worker", area_code=G2)
    assert len(code) == 8 and code.isupper()
    people = await env.count(PersonRow)
    use = await env.redeem(code.lower())  # codes are read case-insensitively
    grid = env.areas[G2]
    assert use.purpose == "enrol" and use.role is Role.GRID_WORKER and use.area_id == grid
    person = await env.run(lambda s, _: s.person_for("telegram", "u1"))
    assert person is not None and person.id == use.person_id and person.name == "新用户"
    assert person.roles == (RoleGrant(Role.GRID_WORKER, frozenset({grid})),)
    assert await env.count(PersonRow) == people + 1

    with pytest.raises(GuardFailed) as info:
        await env.redeem(code, user="u2")
    assert info.value.code == "invite_used"
    assert await env.run(lambda s, _: s.person_for("telegram", "u2")) is None

    with pytest.raises(NotFound) as info:
        await env.redeem("ZZZZ2222")
    assert info.value.code == "unknown_invite"

    expiring = await env.invite(purpose="enrol", role="county_dispatcher", valid_hours=1)
    env.clock.advance(hours=1)
    with pytest.raises(GuardFailed) as info:
        await env.redeem(expiring, user="u3")
    assert info.value.code == "invite_expired"
    assert await env.run(lambda s, _: s.person_for("telegram", "u3")) is None


async def test_a_refused_redemption_changes_nothing_and_leaves_the_code_usable(env: Env):
    code = await env.invite(purpose="enrol", role="department_handler", department_code="water")
    async with env.sessions() as session:  # redeemed, then the turn fails and rolls back
        await SqlChannelStore(session).redeem_invite(
            code, "telegram", "u1", "x", "u1", env.clock.now()
        )
        await session.rollback()
    use = await env.redeem(code)
    assert use.department_id == env.departments["water"]
    person = await env.run(lambda s, _: s.person_for("telegram", "u1"))
    assert person is not None
    assert person.grant(Role.DEPARTMENT_HANDLER) == RoleGrant(
        Role.DEPARTMENT_HANDLER, department_ids=frozenset({env.departments["water"]})
    )


async def test_an_account_gaining_a_role_keeps_its_person(env: Env):
    now = env.clock.now()
    resident = await env.run(
        lambda s, _: s.enrol_resident("telegram", "u1", "王小明", "zh_CN", env.areas[G1], now)
    )
    code = await env.invite(purpose="enrol", role="grid_worker", area_code=G1)
    use = await env.redeem(code)
    assert use.person_id == resident.id
    person = await env.run(lambda s, _: s.person_for("telegram", "u1"))
    assert person is not None and {g.role for g in person.roles} == {
        Role.RESIDENT,
        Role.GRID_WORKER,
    }


async def test_person_invite_links_and_moves_the_account(env: Env):
    now = env.clock.now()
    resident = await env.run(
        lambda s, _: s.enrol_resident("telegram", "u1", "张伟", "zh_CN", env.areas[G1], now)
    )
    people = await env.count(PersonRow)
    code = await env.invite(purpose="enrol", role="grid_worker", area_code=G1, person_code="P-W-01")
    use = await env.redeem(code)
    worker = env.people["P-W-01"]
    assert use == InviteUse("enrol", Role.GRID_WORKER, env.areas[G1], None, worker)
    person = await env.run(lambda s, _: s.person_for("telegram", "u1"))
    assert person is not None and person.id == worker and person.id != resident.id
    assert person.roles == (RoleGrant(Role.GRID_WORKER, frozenset({env.areas[G1]})),)
    assert await env.count(PersonRow) == people  # nobody new
    assert await env.run(lambda s, _: s.identities_of(worker)) == [("telegram", "u1")]
    assert await env.run(lambda s, _: s.identities_of(resident.id)) == []


async def test_bind_chat_invites(env: Env):
    g1, g2 = env.areas[G1], env.areas[G2]
    for grid in (G1, G2, G1):  # one group serves two grids; binding G1 twice adds nothing
        code = await env.invite(purpose="bind_chat", chat_purpose="grid", area_code=grid)
        use = await env.redeem(code, user="admin", chat="-100")
        assert use == InviteUse("bind_chat", area_id=env.areas[grid])
    code = await env.invite(purpose="bind_chat", chat_purpose="county")
    await env.redeem(code, user="admin", chat="-200")
    code = await env.invite(purpose="bind_chat", chat_purpose="county")
    await env.redeem(code, user="admin", chat="-200")  # NULL ids: still no duplicate
    code = await env.invite(purpose="bind_chat", chat_purpose="township", area_code="JL-CG")
    await env.redeem(code, user="admin", chat="-300")
    code = await env.invite(
        purpose="bind_chat", chat_purpose="department", department_code="housing"
    )
    await env.redeem(code, user="admin", chat="-400")
    assert await env.count(ChatBindingRow) == 5
    assert await env.run(lambda s, _: s.person_for("telegram", "admin")) is None

    assert await env.run(lambda s, _: s.bindings_of_chat("telegram", "-100")) == [
        ChatBinding("telegram", "-100", "grid", area_id=g1),
        ChatBinding("telegram", "-100", "grid", area_id=g2),
    ]
    assert await env.run(lambda s, _: s.bindings_of_chat("telegram", "-999")) == []
    assert await env.run(lambda s, _: s.chats_for("grid", area_id=g2)) == [
        ChatBinding("telegram", "-100", "grid", area_id=g2)
    ]
    assert await env.run(lambda s, _: s.chats_for("grid", area_id=env.areas["JL-XGC-01-G3"])) == []
    assert await env.run(lambda s, _: s.chats_for("county")) == [
        ChatBinding("telegram", "-200", "county")
    ]
    assert [
        b.chat_id
        for b in await env.run(lambda s, _: s.chats_for("township", area_id=env.areas["JL-CG"]))
    ] == ["-300"]
    housing = env.departments["housing"]
    assert await env.run(lambda s, _: s.chats_for("department", department_id=housing)) == [
        ChatBinding("telegram", "-400", "department", department_id=housing)
    ]
    assert await env.run(lambda s, _: s.chats_for("supervisors")) == []


# Messages and updates ----------------------------------------------------------------------------


async def _a_case(env: Env, number: str) -> int:
    async def add(_store, session):
        category = (
            await session.execute(select(CategoryRow.id).where(CategoryRow.code == "safety"))
        ).scalar_one()
        result = await session.execute(
            insert(CaseRow)
            .values(
                number=number, state="screening", category_id=category, deadline_class="general",
                grid_id=env.areas[G1], village_id=env.areas["JL-XGC-01"],
                township_id=env.areas["JL-XGC"], reporter_role="resident", description="井盖",
                created_at=env.clock.now(),
            )
            .returning(CaseRow.id)
        )  # fmt: skip
        return result.scalar_one()

    return await env.run(add)


async def test_message_links(env: Env):
    now = env.clock.now()
    first = await _a_case(env, "JL-20261123-0001")
    await _a_case(env, "JL-20261123-0002")
    await env.run(lambda s, _: s.link_message("telegram", "-100", "55", first, "new_case", now))
    await env.run(
        lambda s, _: s.link_message("telegram", "u1", "7", "JL-20261123-0002", "rate", now)
    )
    assert await env.run(lambda s, _: s.case_for_message("telegram", "-100", "55")) == (
        "JL-20261123-0001",
        "new_case",
    )
    assert await env.run(lambda s, _: s.case_for_message("telegram", "u1", "7")) == (
        "JL-20261123-0002",
        "rate",
    )
    assert await env.run(lambda s, _: s.case_for_message("telegram", "-100", "7")) is None
    # Linking the same message again (a resent update) keeps one link, the latest.
    await env.run(lambda s, _: s.link_message("telegram", "u1", "7", first, "progress", now))
    assert await env.run(lambda s, _: s.case_for_message("telegram", "u1", "7")) == (
        "JL-20261123-0001",
        "progress",
    )
    with pytest.raises(NotFound) as info:
        await env.run(lambda s, _: s.link_message("telegram", "u1", "8", "JL-1", "rate", now))
    assert info.value.code == "unknown_case"


async def test_mark_processed_once(env: Env):
    now = env.clock.now()
    assert await env.run(lambda s, _: s.mark_processed("telegram", "update:1", now)) is True
    assert await env.run(lambda s, _: s.mark_processed("telegram", "update:1", now)) is False
    assert await env.run(lambda s, _: s.mark_processed("wecom", "update:1", now)) is True


async def test_mark_processed_takes_long_keys_on_both_databases(env: Env):
    """PostgreSQL refused keys over 128 characters; a digest makes any key fit."""
    now = env.clock.now()
    long_key = "w:r-" + "x" * 996
    assert len(long_key) == 1000
    assert await env.run(lambda s, _: s.mark_processed("web", long_key, now)) is True
    assert await env.run(lambda s, _: s.mark_processed("web", long_key, now)) is False
    assert await env.run(lambda s, _: s.mark_processed("web", long_key[:-1] + "y", now)) is True


async def test_marks_from_before_the_digest_migration_still_count(env: Env, engine):
    """An update marked with its raw key before the upgrade is not processed again after it."""
    cfg = alembic_config()

    def migrate(connection, target, *, down=False):
        cfg.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(cfg, target)

    async with engine.begin() as conn:
        await conn.run_sync(migrate, "0004", down=True)
        await conn.execute(
            insert(ProcessedUpdateRow.__table__).values(
                channel="telegram", key="m:42:7", at=env.clock.now()
            )
        )
    async with engine.begin() as conn:
        await conn.run_sync(migrate, "head")
    now = env.clock.now()
    assert await env.run(lambda s, _: s.mark_processed("telegram", "m:42:7", now)) is False
    assert await env.run(lambda s, _: s.mark_processed("telegram", "m:42:8", now)) is True


async def test_mark_processed_under_concurrency(env: Env):
    """Two deliveries of one update at the same moment: exactly one of them goes ahead."""
    now = env.clock.now()

    first_marked = asyncio.Event()
    second_started = asyncio.Event()

    async def first() -> bool:
        async with env.sessions() as session:
            marked = await SqlChannelStore(session).mark_processed("telegram", "update:9", now)
            first_marked.set()
            await second_started.wait()  # keep the transaction open until the other one is on
            await session.commit()
            return marked

    async def second() -> bool:
        await first_marked.wait()
        async with env.sessions() as session:
            second_started.set()
            marked = await SqlChannelStore(session).mark_processed("telegram", "update:9", now)
            await session.commit()
            return marked

    results = await asyncio.gather(first(), second())
    assert sorted(results) == [False, True]


# Places ------------------------------------------------------------------------------------------


async def test_places_tree(env: Env):
    townships = await env.run(lambda s, _: s.places("township"))
    assert [(p.code, p.kind) for p in townships] == [("JL-CG", "street"), ("JL-XGC", "township")]
    xgc = townships[1]
    assert xgc == Place(env.areas["JL-XGC"], "JL-XGC", "township", "西郭城镇",
                        "Xiguocheng Town", env.areas["JL"])  # fmt: skip
    villages = await env.run(lambda s, _: s.places("village", parent_id=xgc.id))
    assert [(p.code, p.kind) for p in villages] == [
        ("JL-XGC-01", "village"),
        ("JL-XGC-02", "community"),
    ]
    grids = await env.run(lambda s, _: s.places("grid", parent_id=villages[0].id))
    assert [p.code for p in grids] == [G1, G2, "JL-XGC-01-G3"]
    assert len(await env.run(lambda s, _: s.places("grid"))) == 12
    assert await env.run(lambda s, _: s.place(grids[0].id)) == grids[0]
    assert await env.run(lambda s, _: s.place_by_code(G1)) == grids[0]
    assert await env.run(lambda s, _: s.place_by_code("NOPE")) is None
    assert await env.run(lambda s, _: s.place(10_000)) is None

    async def deactivate(_store, session):
        (await session.get(AreaRow, env.areas["JL-XGC-01-G3"])).active = False

    await env.run(deactivate)
    assert [p.code for p in await env.run(lambda s, _: s.places("grid", villages[0].id))] == [
        G1,
        G2,
    ]
    assert await env.run(lambda s, _: s.place_by_code("JL-XGC-01-G3")) is None


async def test_an_invite_works_until_it_expires(env: Env):
    code = await env.invite(purpose="bind_chat", chat_purpose="leaders", valid_hours=2)
    env.clock.advance(timedelta(hours=2) - timedelta(seconds=1))
    assert (await env.redeem(code, chat="-1")).purpose == "bind_chat"
    assert await env.run(lambda s, _: s.chats_for("leaders")) == [
        ChatBinding("telegram", "-1", "leaders")
    ]
