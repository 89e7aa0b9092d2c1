"""Service functions: load, fire, save, commit, in one unit of work per command."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from workflow.clock import SHANGHAI
from workflow.commands import (
    ActorRef,
    AssignCase,
    CaseCommand,
    MarkDuplicate,
    ReclassifyCase,
    SubmitCase,
)
from workflow.errors import GuardFailed, NotFound
from workflow.events import CaseEvent
from workflow.machine import fire, may_see, schedule
from workflow.model import Action, Actor, Case, Role, State, TrailEntry
from workflow.policy import WorkflowPolicy
from workflow.ports import UnitOfWork

EventHook = Callable[[UnitOfWork, list[CaseEvent]], Awaitable[None]]


@dataclass
class Workflow:
    """The entry point every channel, job and page uses to change a case."""

    policy: WorkflowPolicy
    on_events: EventHook | None = None

    async def submit(self, uow: UnitOfWork, cmd: SubmitCase) -> str:
        """Create a case and route it to the first level; returns its number."""
        async with uow:
            number = await self.submit_in(uow, cmd)
            await uow.commit()
            return number

    async def submit_in(self, uow: UnitOfWork, cmd: SubmitCase) -> str:
        """Like submit, inside a unit of work the caller opened and will commit."""
        actor = await _actor(uow, cmd.actor)
        place = await uow.org.grid_place(cmd.grid_code)
        category = await uow.org.category(cmd.category_code)
        calendar = await uow.calendar.load()
        now = uow.clock.now()
        prefix = await uow.org.case_prefix()
        number = await uow.cases.next_number(prefix, now.astimezone(SHANGHAI).date())
        description = cmd.description.strip()
        if not description and not cmd.attachment_ids:
            raise GuardFailed("description_required", "a report needs a description or photo")
        case = Case(
            number=number,
            state=State.NEW,
            category_id=category.id,
            deadline_class=category.deadline_class,
            grid_id=place.grid_id,
            village_id=place.village_id,
            township_id=place.township_id,
            reporter_id=actor.person_id,
            reporter_role=actor.role,
            description=description,
            created_at=now,
            location_text=cmd.location_text,
            latitude=cmd.latitude,
            longitude=cmd.longitude,
            anonymous=cmd.anonymous,
            contact_phone=None if cmd.anonymous else cmd.contact_phone,
            attachment_ids=tuple(cmd.attachment_ids),
        )
        kwargs: dict[str, Any] = {"policy": self.policy, "calendar": calendar, "now": now}
        params = {"attachment_ids": cmd.attachment_ids, "category": category.code}
        events = [fire(case, Action.SUBMIT, actor, params, **kwargs)]
        events.append(fire(case, Action.ROUTE, Actor.system(), {}, **kwargs))
        await uow.cases.add(case)
        await self._publish(uow, events)
        return number

    async def handle(self, uow: UnitOfWork, cmd: CaseCommand) -> list[CaseEvent]:
        """Fire one event on an existing case; all or nothing."""
        async with uow:
            events = await self.handle_in(uow, cmd)
            await uow.commit()
            return events

    async def handle_in(self, uow: UnitOfWork, cmd: CaseCommand) -> list[CaseEvent]:
        """Like handle, inside a unit of work the caller opened and will commit."""
        actor = await _actor(uow, cmd.actor)
        case = await uow.cases.get(cmd.case_number)
        params = await _params(uow, cmd, case, actor)
        calendar = await uow.calendar.load()
        now = uow.clock.now()
        event = fire(
            case, cmd.action, actor, params, policy=self.policy, calendar=calendar, now=now
        )
        if isinstance(cmd, MarkDuplicate):
            await _link_original(uow, case, params["duplicate_of"], actor, now)
        await uow.cases.save(case)
        await self._publish(uow, [event])
        return [event]

    async def case_for(
        self, uow: UnitOfWork, number: str, person_id: int, roles: Sequence[Role]
    ) -> Case:
        """The case, when one of the person's roles may see it (`may_see`); for anyone else
        exactly the NotFound an unknown number gets, so no refusal tells them its state."""
        case = await uow.cases.get(number)
        actors = [await uow.org.actor(person_id, role) for role in roles]
        if any(may_see(actor, case) for actor in actors):
            return case
        history = await uow.cases.history(number)
        if any(may_see(actor, case, history) for actor in actors):
            return case
        raise NotFound("unknown_case", f"no case numbered {number}", case=number)

    async def recompute_deadlines(self, uow: UnitOfWork) -> int:
        """After a new official calendar: move the deadlines of every open case."""
        async with uow:
            calendar = await uow.calendar.load()
            changed = 0
            for case in await uow.cases.open_cases():
                before = _timing(case)
                schedule(case, self.policy, calendar)
                after = _timing(case)
                if after != before:
                    await uow.cases.save(case)
                    changed += 1
            await uow.commit()
            return changed

    async def _publish(self, uow: UnitOfWork, events: list[CaseEvent]) -> None:
        if self.on_events is not None:
            await self.on_events(uow, events)


def _timing(case: Case) -> tuple[Any, ...]:
    return (
        case.due_at,
        case.original_due_at,
        case.stage_due_at,
        case.due_provisional,
        case.next_reminder_at,
    )


async def _actor(uow: UnitOfWork, ref: ActorRef) -> Actor:
    if ref.role is Role.SYSTEM:
        return Actor.system()
    if ref.person_id is None:
        raise NotFound("unknown_person", "no person given")
    return await uow.org.actor(ref.person_id, ref.role)


async def _params(uow: UnitOfWork, cmd: CaseCommand, case: Case, actor: Actor) -> dict[str, Any]:
    """Resolve codes in the command to the ids the table's guards check."""
    params = cmd.params()
    if isinstance(cmd, AssignCase):
        department = await uow.org.department(cmd.department_code)
        params.update(department_id=department.id, department=department.code)
        if cmd.comment:
            params["comment"] = cmd.comment
    elif isinstance(cmd, ReclassifyCase):
        category = await uow.org.category(cmd.category_code)
        params.update(
            category_id=category.id, category=category.code, deadline_class=category.deadline_class
        )
    elif isinstance(cmd, MarkDuplicate) and params["duplicate_of"] != case.number:
        try:
            original = await uow.cases.get(params["duplicate_of"])
            if not may_see(actor, original, await uow.cases.history(original.number)):
                raise NotFound("unknown_case", "out of the actor's view")
        except NotFound:
            raise GuardFailed(
                "duplicate_target_unknown",
                f"no case numbered {params['duplicate_of']}",
                case=params["duplicate_of"],
            ) from None
        if original.state in (State.DUPLICATE, State.REJECTED):
            raise GuardFailed(
                "duplicate_target_invalid",
                f"case {original.number} is itself {original.state.value}",
                case=original.number,
                state=original.state.value,
            )
    return params


async def _link_original(
    uow: UnitOfWork, duplicate: Case, original_number: str, actor: Actor, now: Any
) -> None:
    """Record on the original that a duplicate was merged into it, so the link runs both ways."""
    original = await uow.cases.get(original_number)
    original.new_entries.append(
        TrailEntry(
            action=Action.MARK_DUPLICATE,
            from_state=original.state,
            to_state=original.state,
            actor_id=actor.person_id,
            actor_role=actor.role,
            at=now,
            data={"duplicate": duplicate.number},
        )
    )
    await uow.cases.save(original)
