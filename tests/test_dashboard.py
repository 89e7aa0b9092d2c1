"""The dashboard (大屏) over HTTP: login, pages with known data, filters, CSV, escaping."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import insert, select, update

from bot.config import WebSettings
from bot.web.dashboard import passwords as passwords
from bot.web.dashboard.context import login_required
from bot.web.dashboard.csv_export import COLUMNS
from bot.web.dashboard.markdown import render_markdown
from bot.web.dashboard.passwords import ScryptCost, hash_password, verify_password
from bot.web.dashboard.users import disable_user
from handlers.render import LOCALES, Renderer
from storage.rows import CaseRow, DashboardUserRow, OutboxRow
from tests.support.dashboard import FORMULA, IMG, PASSWORD, SCRIPT, Site, csrf_of
from workflow.clock import SHANGHAI
from workflow.commands import (
    SubmitCase,
)
from workflow.model import Role


async def login(
    client: TestClient, username: str = "leader", password: str = PASSWORD, next_: str = ""
) -> Any:
    token = await csrf_of(client)
    return await client.post(
        "/dashboard/login",
        data={"csrf": token, "username": username, "password": password, "next": next_},
        allow_redirects=False,
    )


async def page(client: TestClient, path: str, status: int = 200) -> str:
    response = await client.get(path, allow_redirects=False)
    text = await response.text()
    assert response.status == status, (path, response.status, text[:500])
    return text


def by_testid(html: str, name: str) -> str:
    """The text inside the (first) element with this data-testid, tags stripped."""
    match = re.search(rf'data-testid="{re.escape(name)}"[^>]*>(.*?)</', html, re.S)
    assert match, f"no element with data-testid={name}"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def row_of(html: str, name: str) -> str:
    match = re.search(rf'<tr data-testid="{re.escape(name)}".*?</tr>', html, re.S)
    assert match, f"no row {name}"
    return match.group(0)


# -- login -----------------------------------------------------------------------------------


def test_login_required_off_loopback_and_once_accounts_exist():
    assert login_required(WebSettings(host="0.0.0.0"), users_exist=False)
    assert login_required(WebSettings(host="192.168.1.20"), users_exist=False)
    assert not login_required(WebSettings(host="127.0.0.1"), users_exist=False)
    assert not login_required(WebSettings(host="localhost"), users_exist=False)
    assert not login_required(WebSettings(host="::1"), users_exist=False)
    assert login_required(WebSettings(host="127.0.0.1"), users_exist=True)


async def test_every_page_needs_a_login(site: Site):
    n = site.cases["closed"]
    async with site.client() as client:
        for path in ("/dashboard", "/dashboard/cases", "/dashboard/cases.csv", "/dashboard/stuck",
                     "/dashboard/failed", f"/dashboard/cases/{n}", "/dashboard/definitions",
                     "/dashboard/weekly",
                     f"/dashboard/cases/{n}/photos/{site.photos['before']}"):  # fmt: skip
            response = await client.get(path, allow_redirects=False)
            assert response.status == 303, path
            assert response.headers["Location"].startswith("/dashboard/login?next=%2Fdashboard")
        html = await page(client, "/dashboard/login")
        assert 'data-testid="login-form"' in html and 'data-testid="demo-banner"' not in html


async def test_wrong_password_is_refused_without_saying_which_part(site: Site):
    await site.user()
    async with site.client() as client:
        answers = []
        for username, password in (("leader", "wrong-password-1"), ("nobody", PASSWORD)):
            response = await login(client, username, password)
            assert response.status == 401 and "shuoshi_session" not in response.cookies
            answers.append(by_testid(await response.text(), "login-error"))
        assert answers == ["用户名或密码错误。"] * 2
        assert (await client.get("/dashboard", allow_redirects=False)).status == 303


async def test_right_password_opens_the_dashboard_and_logout_ends_it(site: Site):
    await site.user(display_name="县领导")
    async with site.client() as client:
        response = await login(client, next_="/dashboard/cases?period=7d")
        assert response.status == 303
        assert response.headers["Location"] == "/dashboard/cases?period=7d"
        cookie = response.cookies["shuoshi_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
        assert cookie["path"] == "/dashboard"
        token = cookie.value
        html = await page(client, "/dashboard")
        assert by_testid(html, "signed-in") == "县领导"
        csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
        response = await client.post("/dashboard/logout", data={"csrf": csrf},
                                     allow_redirects=False)  # fmt: skip
        assert response.status == 303 and response.headers["Location"] == "/dashboard/login"
        assert (await client.get("/dashboard", allow_redirects=False)).status == 303
        # the old cookie, replayed, no longer works: the session row is gone
        client.session.cookie_jar.update_cookies({"shuoshi_session": token})
        assert (await client.get("/dashboard", allow_redirects=False)).status == 303


async def test_an_outside_next_is_never_followed(site: Site):
    await site.user()
    async with site.client() as client:
        response = await login(client, next_="https://evil.example/dashboard")
        assert response.headers["Location"] == "/dashboard"
        await client.post("/dashboard/logout", data={"csrf": await csrf_of(client, "/dashboard")})
        response = await login(client, next_="//evil.example/x")
        assert response.headers["Location"] == "/dashboard"


async def test_sessions_expire_on_the_clock(site: Site):
    await site.user()
    async with site.client() as client:
        await login(client)
        site.clock.advance(hours=11, minutes=59)
        await page(client, "/dashboard")
        site.clock.advance(minutes=2)  # the default session lasts 12 hours
        assert (await client.get("/dashboard", allow_redirects=False)).status == 303


async def test_a_disabled_account_is_signed_out(site: Site):
    await site.user()
    async with site.client() as client:
        await login(client)
        await page(client, "/dashboard")
        async with site.app.uow() as uow:
            await disable_user(uow.accounts, "leader", now=site.clock.now())
            await uow.commit()
        assert (await client.get("/dashboard", allow_redirects=False)).status == 303
        assert (await login(client)).status == 401


async def test_posts_without_the_csrf_token_are_refused(site: Site):
    await site.user()
    async with site.client() as client:
        response = await client.post(
            "/dashboard/login", data={"username": "leader", "password": PASSWORD},
            allow_redirects=False,
        )  # fmt: skip
        assert response.status == 403 and "shuoshi_session" not in response.cookies
        assert "表单已过期" in await response.text()
        token = await csrf_of(client)
        response = await client.post(
            "/dashboard/login", data={"csrf": token[:-1] + "x", "username": "leader",
                                      "password": PASSWORD}, allow_redirects=False,
        )  # fmt: skip
        assert response.status == 403
        response = await client.post(
            "/dashboard/login",
            data={"csrf": token, "username": "leader", "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
            allow_redirects=False,
        )
        assert response.status == 403
        assert (await login(client)).status == 303
        response = await client.post("/dashboard/logout", data={}, allow_redirects=False)
        assert response.status == 403
        await page(client, "/dashboard")  # still signed in


async def login_from(client: TestClient, address: str, username: str, password: str) -> Any:
    """A login from a new browser at `address`, as a trusted proxy names it in X-Forwarded-For."""
    client.session.cookie_jar.clear()
    token = await csrf_of(client)
    return await client.post(
        "/dashboard/login",
        data={"csrf": token, "username": username, "password": password},
        headers={"X-Forwarded-For": f"10.9.8.7, {address}"},  # the proxy's is the last
        allow_redirects=False,
    )


async def test_repeated_failures_throttle_the_name_from_that_address_only(site: Site):
    site.app.settings.web.trust_proxy = True
    await site.user()
    attacker, owner = "203.0.113.9", "198.51.100.20"
    async with site.client() as client:
        for _ in range(5):
            assert (await login_from(client, attacker, "leader", "not-the-password")).status == 401
        response = await login_from(client, attacker, "leader", PASSWORD)
        assert response.status == 429  # even the right password waits, from there
        assert (
            by_testid(await response.text(), "login-error")
            == "登录失败次数过多，请 15 分钟后再试。"
        )
        # the owner, elsewhere, is not locked out (the same server: the throttle is in memory)
        assert (await login_from(client, owner, "leader", PASSWORD)).status == 303
        site.clock.advance(minutes=15, seconds=1)
        assert (await login_from(client, attacker, "leader", PASSWORD)).status == 303


async def test_trying_many_names_throttles_the_address(site: Site):
    site.app.settings.web.trust_proxy = True
    await site.user()
    sprayer = "2001:db8:1:2::5"
    async with site.client() as client:
        for i in range(20):
            response = await login_from(client, sprayer, f"name{i}", "not-the-password")
            assert response.status == 401, i
        assert (await login_from(client, sprayer, "name99", "not-the-password")).status == 429
        assert (await login_from(client, sprayer, "leader", PASSWORD)).status == 429
        # another address in the same IPv6 /64 is the same subscriber
        assert (await login_from(client, "2001:db8:1:2::77", "leader", PASSWORD)).status == 429
        site.clock.advance(minutes=10)
        assert (await login_from(client, "2001:db8:1:3::5", "leader", PASSWORD)).status == 303
        site.clock.advance(minutes=5, seconds=1)
        assert (await login_from(client, sprayer, "leader", PASSWORD)).status == 303


async def test_without_a_trusted_proxy_x_forwarded_for_changes_nothing(site: Site):
    """Not behind a proxy (trust_proxy off): the socket peer is the client, so made-up
    X-Forwarded-For addresses neither spread the failures nor escape the throttle."""
    await site.user()
    async with site.client() as client:
        for i in range(5):
            response = await login_from(client, f"192.0.2.{i}", "leader", "not-the-password")
            assert response.status == 401
        assert (await login_from(client, "192.0.2.200", "leader", PASSWORD)).status == 429
        assert (await login(client)).status == 429


async def test_a_hash_with_old_scrypt_factors_is_redone_at_login(site: Site):
    await site.user()
    legacy = hash_password(PASSWORD, cost=ScryptCost(n=2**14, r=8, p=1))  # before OWASP's
    async with site.app.sessions() as session:
        await session.execute(update(DashboardUserRow).values(password_hash=legacy))
        await session.commit()

    async def stored() -> str:
        async with site.app.sessions() as session:
            return (await session.execute(select(DashboardUserRow.password_hash))).scalar_one()

    async with site.client() as client:
        assert (await login(client, password="not-the-password")).status == 401
        assert await stored() == legacy  # a wrong password changes nothing
        assert (await login(client)).status == 303
    rehashed = await stored()
    assert rehashed.startswith(f"scrypt${passwords.COST.n}$8$1$") and rehashed != legacy
    assert verify_password(PASSWORD, rehashed)
    async with site.client() as client:
        assert (await login(client)).status == 303  # and the new hash opens it as well


async def test_cookies_are_secure_off_loopback(site: Site):
    site.app.settings.web.host = "0.0.0.0"
    await site.user()
    async with site.client() as client:
        response = await client.get("/dashboard/login")
        assert response.cookies["shuoshi_csrf"]["secure"]
        token = response.cookies["shuoshi_csrf"].value
        # a browser sends Secure cookies over TLS only; this test speaks plain HTTP, so it
        # hands the CSRF cookie over itself
        response = await client.post(
            "/dashboard/login", data={"csrf": token, "username": "leader", "password": PASSWORD},
            headers={"Cookie": f"shuoshi_csrf={token}"}, allow_redirects=False,
        )  # fmt: skip
        assert response.status == 303 and response.cookies["shuoshi_session"]["secure"]


async def test_local_demo_without_login_says_so(site: Site):
    async with site.client(require_login=False) as client:
        for path in ("/dashboard", "/dashboard/cases", f"/dashboard/cases/{site.cases['closed']}"):
            html = await page(client, path)
            assert "本地演示，未启用登录" in by_testid(html, "demo-banner")
        response = await client.get("/dashboard/login", allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/dashboard"
        html = await page(client, "/dashboard?lang=en")
        assert "Local demo, no login" in by_testid(html, "demo-banner")


# -- pages -----------------------------------------------------------------------------------


@pytest.fixture
async def client(site: Site):
    """Signed in for 30 days, so that tests can move the clock on by days."""
    site.app.settings.web.dashboard_session_hours = 720
    await site.user()
    async with site.client() as c:
        assert (await login(c)).status == 303
        yield c


async def test_overview_totals_and_stuck_list(site: Site, client: TestClient):
    site.clock.set(datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI))  # the day three are due
    html = await page(client, "/dashboard")
    assert by_testid(html, "period-shown") == "2026-11-03 至 2026-12-02"
    kpis = {k: by_testid(html, f"kpi-{k}") for k in ("new", "open", "overdue", "due-today")}
    assert kpis == {"new": "4", "open": "3", "overdue": "0", "due-today": "3"}
    assert (
        by_testid(html, "kpi-stage-overdue") == "3"
    )  # screening and acceptance took 1 working day
    states = row_of(html, "state-screening")
    assert by_testid(states, "period-count") == "2" and by_testid(states, "open-count") == "2"
    assert by_testid(row_of(html, "state-closed"), "period-count") == "1"
    assert by_testid(row_of(html, "category-safety"), "count") == "1"
    assert by_testid(row_of(html, "township-JL-XGC"), "count") == "3"
    assert by_testid(row_of(html, "township-JL-CG"), "count") == "1"
    assert by_testid(row_of(html, "grid-JL-XGC-01-G1"), "count") == "3"
    bars = re.findall(r'data-day="([\d-]+)" data-count="(\d+)"', html)
    assert len(bars) == 30 and bars[-10] == ("2026-11-23", "4") and bars[-1][1] == "0"
    # the stuck list: longest held first, who holds it, for how long
    supervised = row_of(html, f"stuck-row-{site.cases['supervised']}")
    assert by_testid(supervised, "holder") == "责任部门：住房和城乡建设局"
    anonymous = row_of(html, f"stuck-row-{site.cases['anonymous']}")
    assert by_testid(anonymous, "holder") == "网格长：东关社区第二网格"
    assert by_testid(anonymous, "held-for") == "8 天 21 小时"  # since 11-23 12:00:42
    assert 'data-testid="stage-overdue"' in anonymous
    order = re.findall(r'data-testid="stuck-row-([^"]+)"', html)
    assert order == [site.cases[k] for k in ("anonymous", "supervised", "formula")]
    site.clock.set(datetime(2026, 12, 3, 10, 0, tzinfo=SHANGHAI))
    html = await page(client, "/dashboard")
    assert by_testid(html, "kpi-overdue") == "3" and by_testid(html, "kpi-due-today") == "0"


async def test_rates_tables_rank_units(site: Site, client: TestClient):
    html = await page(client, "/dashboard")
    housing = row_of(html, "rate-row-department-housing")
    assert by_testid(housing, "cases") == "2"
    assert by_testid(housing, "reply-rate") == "50.0%"  # accepted 1 of 2
    assert by_testid(housing, "closure-rate") == "50.0%"
    assert by_testid(housing, "on-time-rate") == "100.0%"
    assert by_testid(housing, "satisfaction-rate") == "100.0%"
    assert by_testid(housing, "rank") == "1"  # the only department with a closure rate
    assert by_testid(row_of(html, "rate-row-department-water"), "closure-rate") == "—"
    xgc = row_of(html, "rate-row-township-JL-XGC")
    assert by_testid(xgc, "cases") == "3" and by_testid(xgc, "closure-rate") == "33.3%"
    assert by_testid(row_of(html, "rate-row-township-JL-CG"), "rank") == "2"
    # sorted by cases: Xiguocheng's 3 before Chengguan's 1; the other table keeps its order
    html = await page(client, "/dashboard?tsort=cases")
    assert re.findall(r"rate-row-township-([\w-]+)", html) == ["JL-XGC", "JL-CG"]
    assert 'data-testid="sort-department-cases"' in html
    assert "/dashboard?tsort=cases&amp;dsort=reply_rate" in html or (
        "/dashboard?dsort=reply_rate&amp;tsort=cases" in html
    )
    await page(client, "/dashboard?dsort=nonsense", status=400)


async def test_filters_apply_to_totals_and_lists(site: Site, client: TestClient):
    html = await page(client, "/dashboard?township=JL-CG")
    assert by_testid(html, "kpi-new") == "1" and by_testid(html, "kpi-open") == "1"
    assert 'data-testid="township-JL-XGC"' not in html
    html = await page(client, "/dashboard?department=housing")
    assert by_testid(html, "kpi-new") == "2" and by_testid(html, "kpi-open") == "1"
    html = await page(client, "/dashboard?category=piling&state=screening")
    assert by_testid(html, "kpi-new") == "1"
    html = await page(client, "/dashboard/cases?state=closed")
    assert re.findall(r'data-testid="case-row-([^"]+)"', html) == [site.cases["closed"]]
    html = await page(client, "/dashboard/cases?from=2026-11-01&to=2026-11-22")
    assert by_testid(html, "case-total") == "共 0 件"
    html = await page(client, "/dashboard/cases?from=2026-11-23&to=2026-11-23")
    assert by_testid(html, "case-total") == "共 4 件"
    assert 'value="2026-11-23"' in html  # the form shows what was chosen
    html = await page(client, "/dashboard/stuck?township=JL-XGC")
    assert re.findall(r'data-testid="stuck-row-([^"]+)"', html) == [
        site.cases["supervised"], site.cases["formula"]
    ]  # fmt: skip
    for bad, words in (
        ("township=nowhere", "没有这个乡镇(街道)"), ("period=5y", "不认识的时间段"),
        ("from=2026-13-01", "日期格式"), ("from=2026-11-30&to=2026-11-01", "开始日期晚于结束日期"),
        ("from=2020-01-01&to=2026-01-01", "最长一年"), ("state=lost", "不认识的状态"),
        ("page=0", "页码"), ("category=" + SCRIPT, "没有这个类别"),
    ):  # fmt: skip
        html = await page(client, f"/dashboard/cases?{bad}", status=400)
        assert words in by_testid(html, "message"), bad
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_case_list_pages(site: Site, client: TestClient):
    for i in range(50):
        await site.app.workflow.submit(site.app.uow(), SubmitCase(
            actor=site.who("P-R-01", Role.RESIDENT), grid_code="JL-XGC-01-G2",
            category_code="piling", description=f"堆放 {i}",
        ))  # fmt: skip
    html = await page(client, "/dashboard/cases")
    assert (
        by_testid(html, "case-total") == "共 54 件" and html.count('data-testid="case-row-') == 50
    )
    assert "第 1 / 2 页" in html and 'href="/dashboard/cases?page=2"' in html
    html = await page(client, "/dashboard/cases?page=2")
    assert html.count('data-testid="case-row-') == 4
    assert site.cases["closed"] in html  # the oldest, last


async def test_case_page_shows_the_record(site: Site, client: TestClient):
    n = site.cases["closed"]
    html = await page(client, f"/dashboard/cases/{n}")
    assert by_testid(html, "case-state") == "已结案"
    assert by_testid(html, "responsible-unit") == "住房和城乡建设局"
    assert by_testid(html, "handler") == "罗斌，13803190602"
    assert by_testid(html, "contact").startswith("李秀兰，13800000001")
    times = re.findall(r'data-testid="timeline-at">([^<]+)<', html)
    assert times[0] == "2026-11-23 09:00:00" and times[-1] == "2026-11-23 12:00:42"
    assert len(times) == 8
    assert "派往 住房和城乡建设局" in html and "派往 housing" not in html  # its name, not code
    before, after = site.photos["before"], site.photos["after"]
    assert f"/dashboard/cases/{n}/photos/{before}" in block(html, "photos-before")
    assert f"/dashboard/cases/{n}/photos/{after}" in block(html, "photos-after")
    photo = await client.get(f"/dashboard/cases/{n}/photos/{after}")
    assert photo.status == 200 and photo.content_type == "image/jpeg"
    assert await photo.read() == await site.app.media.read_public_sha(after)
    # a photo of another case, a made-up hash and a path trick are all not found
    other = site.cases["anonymous"]
    assert (await client.get(f"/dashboard/cases/{other}/photos/{after}")).status == 404
    assert (await client.get(f"/dashboard/cases/{n}/photos/{'0' * 64}")).status == 404
    assert (await client.get(f"/dashboard/cases/{n}/photos/..%2F..%2Fetc")).status == 404
    stages = block(html, "case-stages")
    # screening, township, county, assignment, handling: on time; waiting for the rating: no limit
    assert stages.count("按时") == 5 and "超时</span>" not in stages
    html = await page(client, "/dashboard/cases/JL-20990101-0001", status=404)
    assert "没有编号为 JL-20990101-0001 的案件" in html


async def test_overdue_stages_and_supervision_on_the_case_page(site: Site, client: TestClient):
    site.clock.set(datetime(2026, 12, 3, 10, 0, tzinfo=SHANGHAI))
    html = await page(client, f"/dashboard/cases/{site.cases['supervised']}")
    assert by_testid(html, "case-overdue") == "超期"
    flags = re.findall(r'data-testid="stage-flag">(.*?)</td>', html)
    assert flags == ["按时", "按时", "按时", '<span class="flag">超时</span>']
    notes = block(html, "supervision-notes")
    assert "韩冰：请今日签收 &lt;b&gt;督办&lt;/b&gt;" in notes
    assert (
        by_testid(html, "responsible-unit") == "住房和城乡建设局"
        and by_testid(html, "handler") == "—"
    )


async def test_an_anonymous_reporter_stays_anonymous(site: Site, client: TestClient):
    n = site.cases["anonymous"]
    html = await page(client, f"/dashboard/cases/{n}")
    assert by_testid(html, "contact").startswith("匿名上报")
    assert "13900000002" not in html and "赵志强" not in html
    assert "匿名上报人（群众）" in block(html, "case-timeline")
    body = await (await client.get("/dashboard/cases.csv")).text()
    line = next(r for r in csv.reader(io.StringIO(body.lstrip("\ufeff"))) if r[0] == n)
    assert "匿名" in line and "13900000002" not in body


def block(html: str, name: str) -> str:
    match = re.search(rf'<(\w+)[^>]*data-testid="{re.escape(name)}".*?</\1>', html, re.S)
    assert match, name
    return match.group(0)


async def test_csv_export(site: Site, client: TestClient):
    response = await client.get("/dashboard/cases.csv")
    assert response.status == 200 and response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    raw = await response.read()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8")[1:])))
    header, lines = rows[0], {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    for column in ("案件编号", "上报时间", "进入网格长初筛", "初筛通过", "流转至乡镇(街道)",
                   "流转至县级中心", "派单", "签收", "办结", "评价", "结案", "督办"):  # fmt: skip
        assert column in header
    assert len(lines) == 4
    closed = lines[site.cases["closed"]]
    assert closed["状态"] == "已结案" and closed["责任部门"] == "住房和城乡建设局"
    assert (closed["上报时间"], closed["初筛通过"], closed["派单"], closed["结案"]) == (
        "2026-11-23 09:00:00", "2026-11-23 09:30:07", "2026-11-23 10:30:21", "2026-11-23 12:00:42"
    )  # fmt: skip
    assert closed["评价结果"] == "满意" and closed["超期"] == ""
    assert lines[site.cases["supervised"]]["督办"] == "2026-11-23 14:01:10"
    # formula injection: a leading apostrophe; scripts are plain text in a CSV
    assert lines[site.cases["formula"]]["事项描述"] == "'" + FORMULA
    assert lines[site.cases["anonymous"]]["事项描述"] == SCRIPT
    assert lines[site.cases["supervised"]]["事项描述"] == IMG  # a quote is not a formula
    filtered = await (await client.get("/dashboard/cases.csv?township=JL-CG&lang=en")).text()
    rows = list(csv.reader(io.StringIO(filtered.lstrip("\ufeff"))))
    assert rows[0][0] == "case number" and [r[0] for r in rows[1:]] == [site.cases["anonymous"]]
    assert (await client.get("/dashboard/cases.csv?from=bad")).status == 400


async def test_report_text_is_escaped_on_every_page(site: Site, client: TestClient):
    async with site.app.sessions() as session:
        await session.execute(insert(OutboxRow).values(
            channel="telegram", chat_id="5001", payload={}, case_number=site.cases["anonymous"],
            status="failed", attempts=1, created_at=site.clock.now(),
            next_attempt_at=site.clock.now(), error=f"Forbidden: {SCRIPT}",
        ))  # fmt: skip
        await session.execute(
            update(CaseRow).where(CaseRow.number == site.cases["anonymous"])
            .values(delivery_failed=True)
        )  # fmt: skip
        await session.commit()
    site.app.settings.web.dashboard_cache_seconds = 0
    pages = ["/dashboard", "/dashboard/cases", "/dashboard/stuck", "/dashboard/failed",
             f"/dashboard/cases/{site.cases['anonymous']}",
             f"/dashboard/cases/{site.cases['supervised']}"]  # fmt: skip
    for path in pages:
        html = await page(client, path)
        assert "<script>" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;" in html or "&lt;img src=x onerror=alert(1)&gt;" in html, path
    html = await page(client, f"/dashboard/cases/{site.cases['supervised']}")
    assert by_testid(html, "case-description") == "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"
    response = await client.get("/dashboard")
    assert "script-src" not in response.headers["Content-Security-Policy"]  # none allowed
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


async def test_failed_deliveries_show(site: Site, client: TestClient):
    async with site.app.sessions() as session:
        await session.execute(insert(OutboxRow).values(
            channel="telegram", chat_id="7004", payload={}, case_number=site.cases["supervised"],
            person_id=site.people["P-H-02"], status="failed", attempts=3,
            created_at=site.clock.now(), next_attempt_at=site.clock.now(),
            error="Forbidden: bot was blocked by the user",
        ))  # fmt: skip
        await session.execute(
            update(CaseRow).where(CaseRow.number == site.cases["supervised"])
            .values(delivery_failed=True)
        )  # fmt: skip
        await session.commit()
    html = await page(client, "/dashboard/failed")
    table = block(html, "failed-deliveries")
    assert "罗斌" in table and "bot was blocked by the user" in table
    assert f'data-testid="stuck-row-{site.cases["supervised"]}"' in html
    html = await page(client, f"/dashboard/cases/{site.cases['supervised']}")
    assert by_testid(html, "case-delivery-failed") == "消息送达失败"
    assert "bot was blocked" in block(html, "case-failed-messages")
    html = await page(client, "/dashboard")
    assert by_testid(html, "kpi-failed") == "1"


async def test_totals_are_cached_briefly(site: Site, client: TestClient):
    assert by_testid(await page(client, "/dashboard"), "kpi-new") == "4"
    await site.app.workflow.submit(site.app.uow(), SubmitCase(
        actor=site.who("P-R-01", Role.RESIDENT), grid_code="JL-XGC-01-G2",
        category_code="piling", description="新的一件",
    ))  # fmt: skip
    assert by_testid(await page(client, "/dashboard"), "kpi-new") == "4"  # within 30 s
    assert (
        by_testid(await page(client, "/dashboard/cases"), "case-total") == "共 5 件"
    )  # lists fresh
    site.clock.advance(seconds=31)
    assert by_testid(await page(client, "/dashboard"), "kpi-new") == "5"


async def test_english_pages(site: Site, client: TestClient):
    html = await page(client, "/dashboard?lang=en")
    assert '<html lang="en">' in html and "Overdue (now)" in html
    html = await page(client, "/dashboard/cases")  # the choice is remembered in a cookie
    assert "Cases" in html and by_testid(html, "case-total") == "4 in all"
    html = await page(client, f"/dashboard/cases/{site.cases['closed']}")
    assert by_testid(html, "responsible-unit") == "Housing and Urban-Rural Development Bureau"
    assert by_testid(html, "case-state") == "closed"


async def test_definitions_page_renders_the_rates_doc(
    site: Site, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    doc = tmp_path / "rates.md"
    doc.write_text(
        "# Rates\n\n## 回复率 Reply rate\n\nReplied / cases, `accepted_at` set. <b>x</b>\n\n"
        "## 办结率 Closure rate\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", encoding="utf-8",
    )  # fmt: skip
    monkeypatch.setattr("bot.web.dashboard.views.RATES_DOC", doc)
    html = await page(client, "/dashboard/definitions")
    assert 'id="回复率-reply-rate"' in html and "<code>accepted_at</code>" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<td>1</td>" in html
    html = await page(client, "/dashboard")
    assert 'href="/dashboard/definitions#回复率-reply-rate"' in html
    monkeypatch.setattr("bot.web.dashboard.views.RATES_DOC", tmp_path / "missing.md")
    await page(client, "/dashboard/definitions", status=404)


def test_markdown_never_passes_html_or_script_links():
    html, headings = render_markdown(
        "## A <i>b</i>\n\n[x](javascript:alert(1)) [ok](/dashboard) - item\n\n- one\n- two\n"
    )
    assert "<i>" not in html and "&lt;i&gt;" in html
    assert 'href="javascript' not in html and '<a href="/dashboard">ok</a>' in html
    assert "<ul><li>one</li><li>two</li></ul>" in html
    assert [h.anchor for h in headings] == ["a-i-b-i"]


def test_period_boundaries_are_whole_local_days():
    from bot.web.dashboard.filters import parse_filter
    from storage.dashboard.filters import OrgOptions

    now = datetime(2026, 11, 23, 0, 30, tzinfo=SHANGHAI)  # just after midnight
    chosen = parse_filter({"period": "7d"}, OrgOptions([], [], []), now)
    assert chosen.filter.start == datetime(2026, 11, 17, tzinfo=SHANGHAI)
    assert chosen.filter.end - chosen.filter.start == timedelta(days=7)
    assert chosen.query(page=2) == "?period=7d&page=2"


def test_csv_has_a_header_word_for_every_column_in_every_locale():
    for locale in LOCALES:
        words = Renderer(locale).env.get_template("web/dashboard_csv.j2").module
        assert set(words.columns) == set(COLUMNS) and all(words.columns.values()), locale
    assert Renderer("en").env.get_template("web/dashboard_csv.j2").module.columns["number"] == (
        "case number"
    )
    assert Renderer("zh_CN").env.get_template("web/dashboard_csv.j2").module.columns[
        "created_at"
    ] == ("上报时间")


async def test_every_rate_links_to_its_definition(site: Site, client: TestClient):
    overview = await page(client, "/dashboard")
    definitions = await page(client, "/dashboard/definitions")
    links = set(re.findall(r'href="/dashboard/definitions#([^"]+)"', overview))
    assert len(links) == 6  # reply, closure, on time, satisfaction, average time, late returns
    for anchor in links:
        assert f'id="{anchor}"' in definitions
    assert "<script" not in definitions


async def test_weekly_analysis_page(site: Site, client: TestClient):
    site.clock.set(datetime(2026, 12, 1, 9, 0, tzinfo=SHANGHAI))  # the week after the cases
    response = await client.get("/dashboard/weekly")
    html = await response.text()
    assert response.status == 200 and "周研判 · 2026-W48" in html
    assert 'data-code="housing"' in html and '<td class="num" title="1/2">50.0%</td>' in html
    assert "style-src 'unsafe-inline'" in response.headers["Content-Security-Policy"]
    assert "script" not in response.headers["Content-Security-Policy"]
    html = await page(client, "/dashboard/weekly?week=2026-W40&lang=en")
    assert "2026-W40" in html and 'lang="en"' in html
    html = await page(client, "/dashboard/weekly?week=" + SCRIPT, status=400)
    assert "2026-W47" in by_testid(html, "message") and SCRIPT not in html


async def test_weekly_page_refuses_weeks_beyond_the_calendar(site: Site, client: TestClient):
    """Weeks whose Monday or Sunday would overflow the calendar get the filters' one sentence."""
    expected = "筛选条件有误：周次应写作 2026-W47 这样的 ISO 周（收到「{}」）。"
    for week in ("9999-W52", "0001-W01"):
        html = await page(client, "/dashboard/weekly?week=" + week, status=400)
        assert by_testid(html, "message") == expected.format(week)
    for week in ("9999-W51", "0001-W02"):  # the last and first weeks there are
        assert week in await page(client, "/dashboard/weekly?week=" + week)
