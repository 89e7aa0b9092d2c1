"""The dashboard's pages: overview, case list and page, stuck list, failed deliveries, CSV."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from bot.web.dashboard.case import case_stages
from bot.web.dashboard.context import Dashboard
from bot.web.dashboard.csv_export import BOM, COLUMNS, encode_lines, row_values
from bot.web.dashboard.filters import Chosen, FilterError, parse_filter, parse_page
from bot.web.dashboard.markdown import Heading, render_markdown
from bot.web.dashboard.svg import share, trend_chart
from storage.analytics import Period, UnitRates, case_is_late, unit_rates
from storage.calendar import SqlCalendarStore
from storage.dashboard.case_page import case_contacts, case_photo_mime
from storage.dashboard.filters import OrgOptions, org_options
from storage.dashboard.lists import export_cases, failed_messages, list_cases, stuck_cases
from storage.dashboard.totals import has_cases
from storage.dashboard.totals import overview as overview_totals
from storage.db import Session
from storage.queries import case_view, department_names
from workflow.errors import NotFound

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[3]  # the repository: bot/web/dashboard/views.py
RATES_DOC = ROOT / "docs" / "rates.md"
PAGE_SIZE = 50
OVERVIEW_STUCK = 20
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Sort keys of the rate tables; True: higher is better (ranked first).
RATE_SORTS: dict[str, bool] = {
    "reply_rate": True,
    "closure_rate": True,
    "on_time_rate": True,
    "satisfaction_rate": True,
    "avg_hours_to_close": False,
    "late_returns": False,
    "cases": True,
}
DEFAULT_SORT = "closure_rate"
# Words that find each rate's definition among docs/rates.md's headings.
RATE_HEADINGS: dict[str, tuple[str, ...]] = {
    "reply_rate": ("回复率", "reply"),
    "closure_rate": ("办结率", "closure"),
    "on_time_rate": ("按时", "on-time", "on time"),
    "satisfaction_rate": ("满意", "satisfaction"),
    "avg_hours_to_close": ("平均", "average"),
    "late_returns": ("超期退回", "late returns"),
}


@dataclass(frozen=True)
class Ranked:
    rank: int
    row: UnitRates


async def _setup(
    dash: Dashboard, session: Session, query: Mapping[str, str]
) -> tuple[OrgOptions, Chosen]:
    options = await dash.cache.get(("org",), lambda: org_options(session))
    return options, parse_filter(query, options, dash.app.clock.now())


def _refused(dash: Dashboard, request: web.Request, exc: FilterError) -> web.Response:
    return dash.message(request, 400, "filter_error", code=exc.code, value=exc.value)


async def _cached(dash: Dashboard, key: tuple[Any, ...], compute: Callable[[], Awaitable[T]]) -> T:
    return await dash.cache.get(key, compute)


def rate_sort(query: Mapping[str, str], name: str) -> str:
    chosen = query.get(name, DEFAULT_SORT).strip() or DEFAULT_SORT
    if chosen not in RATE_SORTS:
        raise FilterError("bad_sort", chosen)
    return chosen


def ranked(rows: list[UnitRates], key: str) -> list[Ranked]:
    """A ranking: best first on the chosen measure; units without a value (no cases to judge)
    come last, in code order."""
    by_code = sorted(rows, key=lambda r: r.code)
    present = [r for r in by_code if getattr(r, key) is not None]
    missing = [r for r in by_code if getattr(r, key) is None]
    present.sort(key=lambda r: getattr(r, key), reverse=RATE_SORTS[key])
    return [Ranked(i, r) for i, r in enumerate(present + missing, start=1)]


async def rate_rows(session: Session, chosen: Chosen, kind: str, now: datetime) -> list[UnitRates]:
    """Per-unit rates from storage.analytics, the one implementation of docs/rates.md."""
    f = chosen.filter
    return await unit_rates(
        session,
        kind,
        Period(f.start, f.end),
        township_id=f.township_id,
        department_id=f.department_id,
        category_id=f.category_id,
        as_of=now,
    )


async def overview(dash: Dashboard, request: web.Request) -> web.Response:
    now = dash.app.clock.now()
    async with dash.app.uow.reading() as uow:
        try:
            options, chosen = await _setup(dash, uow.session, request.query)
            dsort = rate_sort(request.query, "dsort")
            tsort = rate_sort(request.query, "tsort")
        except FilterError as exc:
            return _refused(dash, request, exc)
        key = chosen.filter.key()
        totals = await _cached(dash, ("overview", key), lambda: overview_totals(
            uow.session, chosen.filter, now))  # fmt: skip
        stuck_total, stuck = await _cached(dash, ("stuck", key, 1, OVERVIEW_STUCK), lambda: (
            stuck_cases(uow.session, chosen.filter, limit=OVERVIEW_STUCK)))  # fmt: skip
        departments = await _cached(dash, ("rates", "department", key), lambda: rate_rows(
            uow.session, chosen, "department", now))  # fmt: skip
        townships = await _cached(dash, ("rates", "township", key), lambda: rate_rows(
            uow.session, chosen, "township", now))  # fmt: skip
        first_start = (
            not totals.new_cases and not totals.open_now and not await has_cases(uow.session)
        )
    biggest = {
        name: max((c.count for c in rows), default=0)
        for name, rows in (
            ("category", totals.by_category),
            ("township", totals.by_township),
            ("grid", totals.by_grid),
        )
    }
    return dash.render(
        request,
        "dashboard_overview.html.j2",
        chosen=chosen,
        options=options,
        totals=totals,
        chart=trend_chart(totals.trend),
        share=share,
        biggest=biggest,
        stuck=stuck,
        stuck_total=stuck_total,
        first_start=first_start,
        department_rates=ranked(departments, dsort),
        township_rates=ranked(townships, tsort),
        dsort=dsort,
        tsort=tsort,
        anchors=rate_anchors(),
        now=now,
    )


ListFetch = Callable[[Session, Chosen, int], Awaitable[tuple[int, dict[str, Any]]]]


async def _list_page(
    dash: Dashboard, request: web.Request, template: str, fetch: ListFetch
) -> web.Response:
    """A filtered, paged list: the filter bar and page number read (or refused) once here;
    `fetch` gives the total and what the template lists for the page's offset."""
    async with dash.app.uow.reading() as uow:
        try:
            options, chosen = await _setup(dash, uow.session, request.query)
            page = parse_page(request.query)
        except FilterError as exc:
            return _refused(dash, request, exc)
        total, listed = await fetch(uow.session, chosen, (page - 1) * PAGE_SIZE)
    return dash.render(
        request, template, chosen=chosen, options=options, total=total, page=page,
        pages=_pages(total), **listed,
    )  # fmt: skip


async def cases(dash: Dashboard, request: web.Request) -> web.Response:
    async def fetch(session: Session, chosen: Chosen, offset: int) -> tuple[int, dict[str, Any]]:
        total, rows = await list_cases(session, chosen.filter, offset=offset, limit=PAGE_SIZE)
        return total, {"cases": rows}

    return await _list_page(dash, request, "dashboard_cases.html.j2", fetch)


async def stuck(dash: Dashboard, request: web.Request) -> web.Response:
    now = dash.app.clock.now()

    async def fetch(session: Session, chosen: Chosen, offset: int) -> tuple[int, dict[str, Any]]:
        total, rows = await stuck_cases(session, chosen.filter, offset=offset, limit=PAGE_SIZE)
        return total, {"stuck": rows, "now": now}

    return await _list_page(dash, request, "dashboard_stuck.html.j2", fetch)


async def failed(dash: Dashboard, request: web.Request) -> web.Response:
    now = dash.app.clock.now()

    async def fetch(session: Session, chosen: Chosen, offset: int) -> tuple[int, dict[str, Any]]:
        total, messages = await failed_messages(session, offset=offset, limit=PAGE_SIZE)
        flagged_total, flagged = await stuck_cases(
            session, chosen.filter, limit=PAGE_SIZE, delivery_failed=True
        )
        return total, {
            "messages": messages,
            "flagged": flagged,
            "flagged_total": flagged_total,
            "now": now,
        }

    return await _list_page(dash, request, "dashboard_failed.html.j2", fetch)


async def case_page(dash: Dashboard, request: web.Request) -> web.Response:
    number = request.match_info["number"]
    now = dash.app.clock.now()
    async with dash.app.uow.reading() as uow:
        try:
            view = await case_view(uow.session, number)
        except NotFound:
            return dash.message(request, 404, "unknown_case", number=number[:40])
        contacts = await case_contacts(uow.session, view.case.number)
        calendar = await SqlCalendarStore(uow.session, dash.app.uow.calendar_cache).load()
        _, messages = await failed_messages(uow.session, case_number=view.case.number, limit=20)
        codes = {t.data["department"] for t in view.timeline if t.data.get("department")}
        departments = await department_names(uow.session, codes)
    resolved = [t for t in view.timeline if t.action == "resolve"]
    return dash.render(
        request,
        "dashboard_case.html.j2",
        view=view,
        case=view.case,
        contacts=contacts,
        stages=case_stages(view, dash.app.workflow.policy, calendar, now),
        overdue=case_is_late(view.case, now),
        before=view.timeline[0].photos if view.timeline else [],
        after=resolved[-1].photos if resolved else [],
        supervision=[t for t in view.timeline if t.action == "supervise"],
        messages=messages,
        departments=departments,
        now=now,
    )


async def case_photo(dash: Dashboard, request: web.Request) -> web.Response:
    """A photo of a case, only through this signed-in route and only the location-free copy."""
    number, sha = request.match_info["number"], request.match_info["sha"]
    if not SHA256.match(sha):
        return web.Response(status=404, text="not found")
    async with dash.app.uow.reading() as uow:
        mime = await case_photo_mime(uow.session, number, sha)
    if mime is None:
        return web.Response(status=404, text="not found")
    try:
        data = await dash.app.media.read_public_sha(sha)
    except FileNotFoundError:
        return web.Response(status=404, text="not found")
    return web.Response(
        body=data,
        content_type=mime,
        headers={"Cache-Control": "private, max-age=86400"},  # content-addressed: never changes
    )


async def cases_csv(dash: Dashboard, request: web.Request) -> web.StreamResponse:
    """Streamed in batches, so a long period never sits in memory as one document."""
    now = dash.app.clock.now()
    renderer = dash.renderer(request)
    async with dash.app.uow.reading() as uow:
        try:
            _, chosen = await _setup(dash, uow.session, request.query)
        except FilterError as exc:
            return _refused(dash, request, exc)
        # A template module's members are its macros and {% set %}s: known only at run time.
        words: Any = renderer.env.get_template("web/dashboard_csv.j2").module
        header = [words.columns[name] for name in COLUMNS]
        name = f"shuoshi-cases-{chosen.first_day:%Y%m%d}-{chosen.last_day:%Y%m%d}.csv"
        response = web.StreamResponse(
            headers={
                **dash.stream_headers(),
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{name}"',
            }
        )
        await response.prepare(request)
        await response.write(BOM.encode("utf-8") + encode_lines([header]))
        async for batch in export_cases(uow.session, chosen.filter, now):
            lines = [
                row_values(item, renderer.locale, renderer.labels, words.words) for item in batch
            ]
            await response.write(encode_lines(lines))
    await response.write_eof()
    return response


async def definitions(dash: Dashboard, request: web.Request) -> web.Response:
    if not RATES_DOC.is_file():
        return dash.message(request, 404, "no_definitions")
    html, _ = render_markdown(RATES_DOC.read_text(encoding="utf-8"))
    from markupsafe import Markup

    return dash.render(request, "dashboard_doc.html.j2", body=Markup(html))


def rate_anchors() -> dict[str, str]:
    """Where on the definitions page each rate is explained (its heading's anchor)."""
    if not RATES_DOC.is_file():
        return {}
    stat = RATES_DOC.stat()
    cached = _anchor_cache.get("doc")
    if cached is not None and cached[0] == (stat.st_mtime_ns, stat.st_size):
        return cached[1]
    _, headings = render_markdown(RATES_DOC.read_text(encoding="utf-8"))
    anchors = {rate: _find(headings, words) for rate, words in RATE_HEADINGS.items()}
    found = {rate: anchor for rate, anchor in anchors.items() if anchor}
    _anchor_cache["doc"] = ((stat.st_mtime_ns, stat.st_size), found)
    return found


_anchor_cache: dict[str, tuple[tuple[int, int], dict[str, str]]] = {}


def _find(headings: list[Heading], words: tuple[str, ...]) -> str | None:
    for heading in headings:
        if heading.level > 1 and any(w in heading.text.lower() for w in words):
            return heading.anchor
    return None


# The weekly page is self-contained (its CSS inline, no scripts): it gets its own policy.
WEEKLY_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


async def weekly(dash: Dashboard, request: web.Request) -> web.Response:
    """The weekly analysis (周研判) of handlers/weekly.py: ?week=2026-W47, default last week."""
    from handlers.weekly import build_weekly, parse_week, previous_week, render_weekly_page

    now = dash.app.clock.now()
    text = request.query.get("week", "").strip()
    try:
        period = parse_week(text) if text else previous_week(now)
    except ValueError:
        return dash.message(request, 400, "filter_error", code="bad_week", value=text[:40])

    async def build() -> Any:
        async with dash.app.uow.reading() as uow:
            return await build_weekly(uow, period, now)

    report = await dash.cache.get(("weekly", period.start), build)
    return web.Response(
        text=render_weekly_page(report, dash.locale(request), now=now),
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": WEEKLY_CSP},
    )


def _pages(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))
