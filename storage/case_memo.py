"""What one transaction already knows of its cases: the case as it wrote it, and the card
built from it, so that the events of a command and the reply after it read them once; and the
role grants of the person whose turn it is, read with the turn, for the command's actor.

Kept in the session's info, so every repository of a unit of work shares it and it ends with
the transaction (commit or rollback). Any write to a table a card shows (cases, their trail
and photos, people) through the session drops all of it: a card is never older than the rows
this transaction wrote. The case repository files the case again after writing it.
"""

from __future__ import annotations

import copy
from datetime import UTC
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from workflow.cards import CaseCard
from workflow.model import Case

_CASES = "memo_cases"
_CARDS = "memo_cards"
_GRANTS = "memo_grants"
WATCHED = frozenset({"cases", "case_transitions", "case_attachments", "attachments", "people"})
# What an actor is made of: a write to any of these drops the grants read with the turn.
GRANT_TABLES = frozenset({"people", "role_assignments", "areas"})


def _forget_written(session: Session, tables: set[str | None]) -> None:
    if tables & WATCHED:
        session.info.pop(_CASES, None)
        session.info.pop(_CARDS, None)
    if tables & GRANT_TABLES:
        session.info.pop(_GRANTS, None)


def _forget_all(session: Session) -> None:
    for key in (_CASES, _CARDS, _GRANTS):
        session.info.pop(key, None)


Grant = tuple[str, int | None, int | None, str | None]  # role, area id, department id, area kind


def remember_grants(session: Any, person_id: int, grants: list[Grant]) -> None:
    """The role grants of an active person, as the turn read them: SqlOrgDirectory.actor
    builds the turn's actor from them instead of reading them again."""
    session.info.setdefault(_GRANTS, {})[person_id] = list(grants)


def known_grants(session: Any, person_id: int) -> list[Grant] | None:
    return session.info.get(_GRANTS, {}).get(person_id)


def remember_case(session: Any, case: Case) -> None:
    """The case as this transaction stored it, as case_from_row would read it back (no
    pending entries or submitted attachments, times in UTC)."""
    kept = _copy(case)
    kept.attachment_ids = ()
    for name, value in vars(kept).items():
        if hasattr(value, "tzinfo") and value.tzinfo is not None:
            setattr(kept, name, value.astimezone(UTC))
    session.info.setdefault(_CASES, {})[case.number] = kept


def known_case(session: Any, number: str) -> Case | None:
    kept = session.info.get(_CASES, {}).get(number)
    return _copy(kept) if kept is not None else None


def _copy(case: Case) -> Case:
    """A copy the caller may change: a case's fields are values (numbers, strings, times,
    enums, tuples) but for its pending entries, which a stored case has none of."""
    kept = copy.copy(case)
    kept.new_entries = []
    return kept


def remember_card(session: Any, card: CaseCard) -> None:
    session.info.setdefault(_CARDS, {})[card.number] = card


def known_card(session: Any, number: str) -> CaseCard | None:
    card = session.info.get(_CARDS, {}).get(number)
    return copy.deepcopy(card) if card is not None else None


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        _forget_written(state.session, {getattr(table, "name", None)})


@event.listens_for(Session, "after_flush")
def _on_flush(session: Session, *_: object) -> None:
    changed = (*session.new, *session.dirty, *session.deleted)
    _forget_written(session, {getattr(obj, "__tablename__", None) for obj in changed})


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget_on_end(session: Session, *_: object) -> None:
    _forget_all(session)
