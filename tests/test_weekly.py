"""The weekly analysis (周研判): page and chat message on the known week, and the CLI."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from html.parser import HTMLParser

import pytest

from bot.cli.main import main
from handlers.weekly import (
    MAX_MESSAGE,
    WeeklyReport,
    build_weekly,
    message_length,
    parse_week,
    previous_week,
    render_weekly_message,
    render_weekly_page,
)
from tests.support.weeks import AS_OF, W48, KnownWeek, at
from workflow.clock import SHANGHAI
from workflow.ports import Period, RankedItem, Setback, UnitRates


class Tables(HTMLParser):
    """Collects each table row's cell texts by its data-code, and every id and #link."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, str], list[str]] = {}
        self.ids: set[str] = set()
        self.links: set[str] = set()
        self.tags: set[str] = set()
        self._row: list[str] | None = None
        self._key: tuple[str, str] | None = None

    def handle_starttag(self, tag, attrs) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href", "").startswith("#"):
            self.links.add(a["href"][1:])
        if tag == "tr" and "data-code" in a:
            self._key, self._row = (a["data-kind"], a["data-code"]), []
        elif tag in ("td", "th") and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag) -> None:
        if tag == "tr" and self._row is not None and self._key is not None:
            self.rows[self._key] = [cell.strip() for cell in self._row]
            self._row = self._key = None

    def handle_data(self, data) -> None:
        if self._row:
            self._row[-1] += data


@pytest.fixture
async def report(engine, clock) -> tuple[KnownWeek, WeeklyReport]:
    week = KnownWeek(engine, clock)
    await week.setup()
    await week.build()
    async with week.uow() as uow:
        return week, await build_weekly(uow, W48, AS_OF)


async def test_the_page_in_chinese(report):
    week, r = report
    page = render_weekly_page(r, "zh_CN")
    html = Tables()
    html.feed(page)
    #                           cases reply  closure on-time  satisf.  avg     ret late reopened
    assert html.rows[("county", "JL")][1:] == [
        "7", "85.7%", "57.1%", "60.0%", "80.0%", "1.1 天", "2", "0", "1"]  # fmt: skip
    assert html.rows[("department", "municipal")] == [
        "城市管理局", "2", "50.0%", "50.0%", "100.0%", "100.0%", "2.0 天", "0", "0", "0",
    ]  # fmt: skip
    assert html.rows[("department", "housing")][1:] == [
        "1", "100.0%", "100.0%", "100.0%", "100.0%", "1.0 天", "2", "0", "0"]  # fmt: skip
    assert html.rows[("department", "water")][1:] == [
        "1", "100.0%", "0.0%", "—", "0.0%", "—", "0", "0", "1"]  # fmt: skip
    assert html.rows[("department", "public_security")][1:] == [
        "0", "—", "—", "—", "—", "—", "0", "0", "0"]  # fmt: skip
    assert html.rows[("township", "JL-XGC")] == [
        "西郭城镇", "4", "75.0%", "50.0%", "100.0%", "66.7%", "1.5 天", "2", "0", "1"]  # fmt: skip
    assert html.rows[("township", "JL-CG")][1:] == [
        "3", "100.0%", "66.7%", "33.3%", "100.0%", "14.0 小时", "0", "0", "0"]  # fmt: skip
    assert "<li>安全隐患：2 件</li>" in page
    assert "<li>西郭城村第一网格（西郭城镇）：2 件</li>" in page
    assert f"<td>{week.n['C']}</td><td>不满意重办</td>" in page
    assert "护网还是破的" in page and "数据截至 2026-11-30 09:00" in page
    # Self-contained: nothing loaded from elsewhere; every column header explains itself.
    assert not re.search(r"(src|href)=\"(https?:)?//", page) and "script" not in html.tags
    assert {"reply-rate", "closure-rate", "on-time-rate", "satisfaction-rate",
            "avg-time-to-close", "returned", "late-returns", "reopened",
            "base-set"} <= html.links  # fmt: skip
    assert html.links <= html.ids
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>")


async def test_the_page_in_english_escapes_user_text(report):
    week, r = report
    evil = Setback("JL-X", "returned", AS_OF, 1, None, None, None, "<script>alert(1)</script>")
    page = render_weekly_page(replace(r, setbacks=[*r.setbacks, evil]), "en")
    html = Tables()
    html.feed(page)
    assert html.rows[("department", "health")] == [
        "Health Commission", "1", "100.0%", "100.0%", "0.0%", "100.0%", "3.0 h", "0", "0", "0",
    ]  # fmt: skip
    assert "<li>Safety hazards: 2</li>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "script" not in html.tags
    assert "Cases reported from Monday 23 November 2026 to Sunday 29 November 2026" in page


async def test_the_chat_message_on_the_known_week(report):
    week, r = report
    text = render_weekly_message(r, "zh_CN")
    lines = text.split("\n")
    assert lines[:4] == [
        "<b>📊 周研判 · 2026-W48</b>（11月23日—11月29日）",
        "数据截至 2026-11-30 09:00",
        "",
        "<b>全县</b>：7 件｜回复 85.7%｜办结 57.1%｜按期 60.0%｜满意 80.0%｜平均 1.1 天"
        "｜退回 2｜重办 1",
    ]
    start = lines.index("<b>部门</b>")
    assert lines[start + 1 : start + 8] == [  # most cases first, then the org file's order
        "城市管理局：2 件｜回复 50.0%｜办结 50.0%｜按期 100.0%｜满意 100.0%｜平均 2.0 天",
        "住房和城乡建设局：1 件｜回复 100.0%｜办结 100.0%｜按期 100.0%｜满意 100.0%"
        "｜平均 1.0 天｜退回 2",
        "水利局：1 件｜回复 100.0%｜办结 0.0%｜按期 —｜满意 0.0%｜平均 —｜重办 1",
        "民政局：1 件｜回复 100.0%｜办结 0.0%｜按期 0.0%｜满意 —｜平均 —",
        "卫生健康局：1 件｜回复 100.0%｜办结 100.0%｜按期 0.0%｜满意 100.0%｜平均 3.0 小时",
        "其余 1 个部门本周无案件",
        "",
    ]
    assert (
        "西郭城镇：4 件｜回复 75.0%｜办结 50.0%｜按期 100.0%｜满意 66.7%｜平均 1.5 天"
        "｜退回 2｜重办 1"
    ) in lines
    assert "<b>高发类别</b>：安全隐患 2、环境卫生 2、民生诉求 1、乱堆乱放 1、疫情及突发 1" in lines
    n = week.n
    assert lines[-4:] == [
        "<b>退回与重办</b> 3 次",
        f"{n['C']} 退回 · 住房和城乡建设局 · 水库护网归水利局",
        f"{n['Z']} 退回 · 住房和城乡建设局 · 不属于本部门",
        f"{n['C']} 不满意重办 · 水利局 · 护网还是破的",
    ]
    english = render_weekly_message(r, "en")
    assert "Water Resources Bureau: 1 cases | reply 100.0% | closed 0.0% | on time — |" in english
    assert f"{n['Z']} returned · Housing and Urban-Rural Development Bureau" in english


def julu_sized(n_departments: int = 63, n_townships: int = 11) -> WeeklyReport:
    def unit(kind: str, i: int) -> UnitRates:
        return UnitRates(kind, i, f"{kind}-{i}", f"第{i}号单位的很长很长的名称" * 2,
                         f"Unit number {i} with a long name", cases=100 - i, replied=90 - i,
                         resolved=80 - i, resolved_on_time=70 - i, rated=60, satisfied=55,
                         avg_hours_to_close=80.0, returned=i % 3, reopened=i % 2)  # fmt: skip

    events = [Setback(f"JL-20261124-{i:04d}", "returned", AS_OF, 1, 1, "某局", "A bureau",
                      "原因" * 50) for i in range(300)]  # fmt: skip
    top = [RankedItem("category", i, f"c{i}", f"类别{i}", f"Category {i}", 9) for i in range(5)]
    return WeeklyReport(
        period=W48, as_of=AS_OF, county=unit("county", 0),
        departments=[unit("department", i) for i in range(n_departments)],
        townships=[unit("township", i) for i in range(n_townships)],
        top_categories=top, top_grids=[], setbacks=events,
    )  # fmt: skip


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_a_julu_sized_week_fits_one_message(locale):
    report = julu_sized()
    text = render_weekly_message(report, locale, url="https://gov.example/w")
    assert message_length(text) <= MAX_MESSAGE
    assert render_weekly_message(julu_sized(3, 2), locale).count("\n") > 10  # small: all of it
    more = "个部门见周研判页面" if locale == "zh_CN" else "more department(s) on the weekly page"
    assert more in text and "https://gov.example/w" in text
    shown = [line for line in text.split("\n") if "第" in line or "Unit number" in line]
    assert 1 <= len(shown) < 74  # some rows, not all of them
    assert "300" in text  # the number of returns, even when only a few are listed


def test_weeks_are_parsed_and_found():
    assert parse_week("2026-W47") == Period.week_of(date(2026, 11, 16))
    assert parse_week("2026w48").iso_week == "2026-W48"
    assert parse_week("2026-W53").iso_week == "2026-W53"  # 2026 has 53 ISO weeks
    for bad in ("2026-W54", "last week", "2026-47", "", "9999-W52", "0001-W01"):
        with pytest.raises(ValueError):
            parse_week(bad)
    # the first and last weeks whose every instant exists in UTC as well
    assert parse_week("0001-W02").start == datetime(1, 1, 8, tzinfo=SHANGHAI)
    assert parse_week("9999-W51").end == datetime(9999, 12, 27, tzinfo=SHANGHAI)
    assert previous_week(at(30, 9)) == W48
    assert previous_week(datetime(2026, 11, 29, 23, 59, tzinfo=SHANGHAI)).iso_week == "2026-W47"
    assert W48.end - W48.start == timedelta(days=7)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_report_weekly_command(workdir, capsys, monkeypatch):
    assert run(capsys, "init")[0] == 0
    assert run(capsys, "demo")[0] == 0  # one case through the whole loop, this week
    this_week = Period.week_of(datetime.now(SHANGHAI).date()).iso_week
    code, out, err = run(capsys, "report", "weekly", "--week", this_week)
    assert code == 0 and err == ""
    assert out.startswith(f"周研判 {this_week}")
    assert "全县：1 件，回复率 100.0%，办结率 100.0%" in out and "满意率 100.0%" in out
    assert "住房和城乡建设局：1 件" in out and "公安局：0 件，回复率 —" in out
    code, out, _ = run(capsys, "report", "weekly", "--week", this_week, "--out", "week.html")
    assert code == 0 and "week.html" in out
    page = (workdir / "week.html").read_text(encoding="utf-8")
    assert f"<title>周研判 {this_week}</title>" in page and 'data-code="housing"' in page
    code, out, err = run(capsys, "report", "weekly")  # the last full week: nothing in it
    assert code == 0 and "全县：0 件，回复率 —" in out

    code, out, err = run(capsys, "report", "weekly", "--week", "next-week")
    assert (code, out) == (2, "") and "next-week" in err and "2026-W47" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    code, _, err = run(capsys, "report", "weekly", "--week", "2999-W01")
    assert code == 2 and "2999-W01" in err
    monkeypatch.setenv("SHUOSHI_LOCALE", "en")
    code, out, err = run(capsys, "report", "weekly", "--week", "last")
    assert code == 2 and err == "error: 'last' is not a week: write an ISO week such as 2026-W47.\n"
    code, out, _ = run(capsys, "report", "weekly", "--week", this_week)
    assert code == 0 and "Housing and Urban-Rural Development Bureau: 1 cases" in out


def test_every_column_is_defined_in_the_docs():
    """docs/rates.md has a heading for each figure the page, the chat and the dashboard show."""
    from handlers.render import Renderer
    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "rates.md").read_text(encoding="utf-8")
    headings = [line for line in doc.splitlines() if line.startswith("### ")]
    columns = Renderer("zh_CN").env.get_template("digest.html.j2").module.columns
    for key, name in columns.items():
        if key not in ("unit", "cases"):
            assert any(f"({name})" in h for h in headings), name
    assert "<a " not in doc  # the dashboard renders it with an escaping Markdown subset
