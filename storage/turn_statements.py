"""The statements every conversation turn runs, built once at import (Core tables, bind
parameters): the turn read, the conversation's writes and the processed marks. Used by
channel.py's SqlChannelStore."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BindParameter,
    Insert,
    Select,
    Update,
    bindparam,
    delete,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from storage.chat_locks import LOCKED
from storage.org_cache import generation_column
from storage.rows import (
    AreaRow,
    ConversationRow,
    IdentityRow,
    PersonRow,
    ProcessedUpdateRow,
    RoleAssignmentRow,
)
from storage.sql import per_dialect, table_of


def _turn_state_statement() -> Select[Any]:
    """Who writes and where they stand, in one round trip: the conversation and the linked
    active person with one row per role grant, left-joined to a one-row base so that a
    stranger without a draft still gets a row. Core tables, built once: every update runs it."""
    one = select(literal(1).label("one")).subquery("one")
    channel: BindParameter[str] = bindparam("channel")
    chat_id: BindParameter[str] = bindparam("chat_id")
    user_id: BindParameter[str] = bindparam("user_id")
    conv, identity = table_of(ConversationRow).c, table_of(IdentityRow).c
    person, role = table_of(PersonRow).c, table_of(RoleAssignmentRow).c
    area = table_of(AreaRow).c
    return (
        select(
            conv.step, conv.draft, conv.version, person.id, person.name, person.language,
            role.role, role.area_id, role.department_id, area.kind, generation_column(),
        )
        .select_from(one)
        .outerjoin(
            table_of(ConversationRow),
            (conv.channel == channel) & (conv.chat_id == chat_id) & (conv.user_id == user_id),
        )
        .outerjoin(
            table_of(IdentityRow),
            (identity.channel == channel) & (identity.external_id == user_id),
        )
        .outerjoin(
            table_of(PersonRow), (person.id == identity.person_id) & person.active.is_(True)
        )
        .outerjoin(table_of(RoleAssignmentRow), role.person_id == person.id)
        .outerjoin(table_of(AreaRow), area.id == role.area_id)
    )  # fmt: skip


def _conversation_update() -> Update:
    table = table_of(ConversationRow)
    conv = table.c
    return (
        update(table)
        .where(
            conv.channel == bindparam("k_channel"),
            conv.chat_id == bindparam("k_chat_id"),
            conv.user_id == bindparam("k_user_id"),
            conv.version == bindparam("k_version"),
        )
        .values(
            step=bindparam("step"),
            draft=bindparam("draft"),
            version=bindparam("version"),
            updated_at=bindparam("updated_at"),
        )
    )


def _conversation_delete() -> Any:
    conv = table_of(ConversationRow).c
    return delete(table_of(ConversationRow)).where(
        conv.channel == bindparam("k_channel"),
        conv.chat_id == bindparam("k_chat_id"),
        conv.user_id == bindparam("k_user_id"),
        conv.version == bindparam("k_version"),
    )


def _processed_marks() -> dict[str, Any]:
    """The processed-mark insert per dialect: a repeat inserts nothing."""
    table = table_of(ProcessedUpdateRow)
    keys = [table.c.channel, table.c.key]
    return per_dialect(lambda insert_: insert_(table).on_conflict_do_nothing(index_elements=keys))


def _locked_mark() -> Insert:
    """PostgreSQL: the processed mark that first waits for, then takes, the chat's turn lock
    (storage/chat_locks.py `LOCKED`): one statement for both."""
    table = table_of(ProcessedUpdateRow)
    c = table.c
    row = select(
        bindparam("channel", type_=c.channel.type),
        bindparam("key", type_=c.key.type),
        bindparam("at", type_=c.at.type),
    ).where(LOCKED)
    return (
        pg_insert(table)
        .from_select([c.channel, c.key, c.at], row)
        .on_conflict_do_nothing(index_elements=[c.channel, c.key])
    )


TURN_STATE = _turn_state_statement()
CONVERSATION_UPDATE = _conversation_update()
CONVERSATION_DELETE = _conversation_delete()
CONVERSATION_INSERT = per_dialect(
    lambda insert_: insert_(table_of(ConversationRow)).on_conflict_do_nothing()
)
PROCESSED_MARK = _processed_marks()
LOCKED_MARK = _locked_mark()
