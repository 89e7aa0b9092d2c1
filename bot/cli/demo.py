"""`shuoshi demo`: one real case through every level of the loop, on the example county."""

from __future__ import annotations

from bot.app import App
from handlers.render import Renderer
from storage.demo import area, category_owner, first_assignment
from storage.queries import case_view
from storage.rows import RoleAssignmentRow
from workflow.commands import (
    AcceptCase,
    ActorRef,
    AddProgressNote,
    AssignCase,
    CaseCommand,
    PassUp,
    RateCase,
    ResolveCase,
    SubmitCase,
    ValidateCase,
)
from workflow.model import DeadlineClass, Level, Role


async def _first(app: App, role: Role, **where: int) -> RoleAssignmentRow | None:
    async with app.uow.reading() as reads:
        return await first_assignment(reads.session, role, **where)


async def play_demo(app: App, renderer: Renderer) -> int:
    """Report, screen, pass up, assign, accept, note, resolve, rate: as the example people."""
    resident = await _first(app, Role.RESIDENT)
    if resident is None or resident.area_id is None:
        print(renderer.macro("cli.j2", "demo_missing", role=Role.RESIDENT.value))
        return 1
    async with app.uow.reading() as reads:
        grid = await area(reads.session, resident.area_id)
        owner = await category_owner(reads.session, "safety")
    if grid is None or grid.township_id is None:  # the resident is not enrolled in a grid
        print(renderer.macro("cli.j2", "demo_missing", role=Role.RESIDENT.value))
        return 1
    needed = {
        Role.GRID_LEADER: await _first(app, Role.GRID_LEADER, area_id=grid.id),
        Role.TOWNSHIP_OPERATOR: await _first(app, Role.TOWNSHIP_OPERATOR, area_id=grid.township_id),
        Role.COUNTY_DISPATCHER: await _first(app, Role.COUNTY_DISPATCHER),
        Role.DEPARTMENT_HANDLER: owner
        and await _first(app, Role.DEPARTMENT_HANDLER, department_id=owner[1]),
    }
    for role, row in needed.items():
        if row is None:
            print(renderer.macro("cli.j2", "demo_missing", role=role.value))
            return 1
    if owner is None:  # then the department handler was None: refused just above
        return 1
    ref = {role: ActorRef(row.person_id, role) for role, row in needed.items() if row}
    me = ActorRef(resident.person_id, Role.RESIDENT)
    wf, uow = app.workflow, app.uow
    number = await wf.submit(
        uow(),
        SubmitCase(
            actor=me,
            grid_code=grid.code,
            category_code=owner[0],
            description="小区门口井盖破损，夜间有行人跌落危险。",
            location_text="东门路口",
            contact_phone="13800000000",
        ),
    )
    steps: list[CaseCommand] = []
    route = wf.policy.route_for(await _deadline_class(app, owner[0]))
    if Level.SCREENING in route:
        steps.append(ValidateCase(case_number=number, actor=ref[Role.GRID_LEADER]))
    if Level.TOWNSHIP in route:
        steps.append(
            PassUp(case_number=number, actor=ref[Role.TOWNSHIP_OPERATOR], comment="需县级部门处理")
        )
    handler = ref[Role.DEPARTMENT_HANDLER]
    steps += [
        AssignCase(case_number=number, actor=ref[Role.COUNTY_DISPATCHER], department_code=owner[2]),
        AcceptCase(case_number=number, actor=handler),
        AddProgressNote(case_number=number, actor=handler, text="已安排维修人员，明日更换。"),
        ResolveCase(case_number=number, actor=handler, text="已更换新井盖并加固。"),
        RateCase(case_number=number, actor=me, rating="satisfied", comment="处理及时"),
    ]
    for cmd in steps:
        await wf.handle(uow(), cmd)
    print(renderer.macro("cli.j2", "demo_intro", number=number))
    async with app.uow.reading() as reads:
        print(renderer.render("case_show.txt.j2", view=await case_view(reads.session, number)))
    return 0


async def _deadline_class(app: App, category_code: str) -> DeadlineClass:
    async with app.uow() as uow:
        return (await uow.org.category(category_code)).deadline_class
