"""What one transaction already knows of its cases: the case as it wrote it, and the card
built from it, so that the events of a command and the reply after it read them once.

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
WATCHED = frozenset({"cases", "case_transitions", "case_attachments", "attachments", "people"})


def _forget_all(session: Session) -> None:
    session.info.pop(_CASES, None)
    session.info.pop(_CARDS, None)


def remember_case(session: Any, case: Case) -> None:
    """The case as this transaction stored it, as case_from_row would read it back (no
    pending entries or submitted attachments, times in UTC)."""
    kept = copy.deepcopy(case)
    kept.new_entries = []
    kept.attachment_ids = ()
    for name, value in vars(kept).items():
        if hasattr(value, "tzinfo") and value.tzinfo is not None:
            setattr(kept, name, value.astimezone(UTC))
    session.info.setdefault(_CASES, {})[case.number] = kept


def known_case(session: Any, number: str) -> Case | None:
    kept = session.info.get(_CASES, {}).get(number)
    return copy.deepcopy(kept) if kept is not None else None


def remember_card(session: Any, card: CaseCard) -> None:
    session.info.setdefault(_CARDS, {})[card.number] = card


def known_card(session: Any, number: str) -> CaseCard | None:
    card = session.info.get(_CARDS, {}).get(number)
    return copy.deepcopy(card) if card is not None else None


def _writes_watched(statement: Any) -> bool:
    table = getattr(statement, "table", None)
    return getattr(table, "name", None) in WATCHED


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if (state.is_insert or state.is_update or state.is_delete) and _writes_watched(state.statement):
        _forget_all(state.session)


@event.listens_for(Session, "after_flush")
def _on_flush(session: Session, *_: object) -> None:
    changed = (*session.new, *session.dirty, *session.deleted)
    if any(getattr(obj, "__tablename__", None) in WATCHED for obj in changed):
        _forget_all(session)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, *_: object) -> None:
    _forget_all(session)
