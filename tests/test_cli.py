"""The `shuoshi` command line, run in-process in a temporary working directory."""

from __future__ import annotations

import pytest

from bot.cli import main
from tests.conftest import EXAMPLE_COUNTY


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_calendar_due_examples(workdir, capsys):
    assert run(
        capsys, "calendar", "due", "--from", "2026-09-30T10:00+08:00", "--working-days", "2"
    )[:2] == (0, "2026-10-09T23:59:59+08:00\n")
    _code, out, _ = run(
        capsys, "calendar", "due", "--from", "2026-10-03T09:00+08:00", "--working-days", "7"
    )
    assert out == "2026-10-15T23:59:59+08:00\n"
    _, out, _ = run(capsys, "calendar", "due", "--from", "2026-10-01T23:30+08:00", "--hours", "2")
    assert out == "2026-10-02T01:30:00+08:00\n"


def test_calendar_due_warns_when_provisional(workdir, capsys):
    code, out, err = run(
        capsys, "calendar", "due", "--from", "2026-12-30T10:00+08:00", "--working-days", "7"
    )
    assert code == 0 and out == "2027-01-08T23:59:59+08:00\n"
    assert "2027" in err and "暂定" in err


def test_calendar_due_bad_input_is_one_line(workdir, capsys):
    code, out, err = run(capsys, "calendar", "due", "--from", "yesterday", "--hours", "2")
    assert code == 2 and out == "" and err.count("\n") == 1 and "yesterday" in err
    assert "Traceback" not in err


def test_init_loads_the_example_once_and_case_commands_work(workdir, capsys):
    code, out, _ = run(capsys, "init")
    assert code == 0 and (workdir / "data" / "shuoshi.db").exists()
    assert "county.yaml" in out
    code, out, _ = run(capsys, "init")
    assert code == 0 and "county.yaml" not in out  # not loaded twice
    code, out, _ = run(capsys, "case", "list")
    assert code == 0 and "暂无案件" in out
    code, out, _ = run(capsys, "demo")
    assert code == 0
    number = out.split("案件编号 ")[1].split("。")[0]
    code, out, _ = run(capsys, "case", "show", number)
    assert code == 0 and "已结案" in out and "签收" in out and "罗斌" in out
    code, out, _ = run(capsys, "case", "list", "--state", "closed")
    assert number in out
    code, out, err = run(capsys, "case", "show", "JL-20000101-0001")
    assert code == 1 and "JL-20000101-0001" in err and "Traceback" not in err


def test_english_locale(workdir, capsys, monkeypatch):
    monkeypatch.setenv("SHUOSHI_LOCALE", "en")
    run(capsys, "init")
    _code, out, _ = run(capsys, "case", "list")
    assert out.strip() == "No cases yet."
    _, out, err = run(capsys, "case", "show", "JL-1")
    assert err.strip() == "error: There is no case numbered JL-1."


def test_org_load_reports_and_refuses_bad_files(workdir, capsys):
    run(capsys, "init")
    code, out, _ = run(capsys, "org", "load", str(EXAMPLE_COUNTY))
    assert code == 0 and str(EXAMPLE_COUNTY) in out
    bad = workdir / "bad.yaml"
    lines = EXAMPLE_COUNTY.read_text(encoding="utf-8").splitlines()
    typo = next(i for i, line in enumerate(lines) if line.startswith("  name:"))
    lines[typo] = lines[typo].replace("name:", "nmae:")
    bad.write_text("\n".join(lines), encoding="utf-8")
    code, out, err = run(capsys, "org", "load", str(bad))
    assert code == 2 and f"bad.yaml:{typo + 1}:" in err and "nmae" in err
    assert err.count("\n") == 1


def test_calendar_load(workdir, capsys):
    run(capsys, "init")
    schedule = workdir / "2027.yaml"
    schedule.write_text(
        "year: 2027\nholidays:\n  - {name: 元旦, from: 2027-01-01, to: 2027-01-03}\nworkdays: []\n",
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "calendar", "load", str(schedule))
    assert code == 0 and "2027" in out
    code, out, err = run(
        capsys, "calendar", "due", "--from", "2026-12-31T10:00+08:00", "--working-days", "1"
    )
    assert out == "2027-01-04T23:59:59+08:00\n" and err == ""
    schedule.write_text("year: 2027\nholidays: [2026-05-01]\n", encoding="utf-8")
    code, out, err = run(capsys, "calendar", "load", str(schedule))
    assert code == 2 and "not in 2027" in err


def test_bad_config_names_the_setting(workdir, capsys, monkeypatch):
    monkeypatch.setenv("SHUOSHI_WORKFLOW__CLOSE_UNRATED_AFTER_DAYS", "zero")
    code, out, err = run(capsys, "init")
    assert code == 2 and "workflow.close_unrated_after_days" in err
    monkeypatch.delenv("SHUOSHI_WORKFLOW__CLOSE_UNRATED_AFTER_DAYS")
    (workdir / "shuoshi.toml").write_text('[workflow]\nroute = ["county", "township"]\n')
    code, out, err = run(capsys, "init")
    assert code == 2 and "workflow.route" in err and "shuoshi.toml" in err
    (workdir / "shuoshi.toml").write_text("[workflow\n")
    code, _out, err = run(capsys, "init")
    assert code == 2 and "not valid TOML" in err
    (workdir / "shuoshi.toml").write_text('[telegram]\ntoken = "123:abc"\n[web]\nport = 9000\n')
    code, _, err = run(capsys, "init")
    assert code == 0


def test_org_generate_writes_a_julu_sized_county(workdir, capsys):
    code, out, _ = run(capsys, "org", "generate", "--out", "julu.yaml")
    assert code == 0 and "2750" in out
    text = (workdir / "julu.yaml").read_text(encoding="utf-8")
    assert text.count("kind: grid") == 2750


# -- clear errors instead of tracebacks -------------------------------------------------------


def one_error_line(err: str) -> str:
    """stderr holds exactly one line, the error; returns it."""
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err.strip()


@pytest.mark.parametrize(
    ("value", "route"),
    [
        ("county", ["county"]),
        ("screening,county", ["screening", "county"]),
        (" screening , township,county ", ["screening", "township", "county"]),
        ('["township", "county"]', ["township", "county"]),
    ],
)
def test_a_list_setting_from_the_environment_may_be_comma_separated(monkeypatch, value, route):
    from bot.config import load_settings

    monkeypatch.setenv("SHUOSHI_WORKFLOW__ROUTE", value)
    assert [level.value for level in load_settings().workflow.route] == route


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("SHUOSHI_WORKFLOW__ROUTE", "county,screening", "workflow.route"),
        ("SHUOSHI_WORKFLOW__ROUTE", "county,bogus", "SHUOSHI_WORKFLOW__ROUTE"),
        ("SHUOSHI_WORKFLOW__EMERGENCY", "fast", "SHUOSHI_WORKFLOW__EMERGENCY"),
        ("SHUOSHI_TELEGRAM", '{"token": "123:SECRET"', "SHUOSHI_TELEGRAM"),
    ],
)
def test_a_bad_structured_setting_from_the_environment_is_one_line(
    workdir, capsys, monkeypatch, name, value, named
):
    monkeypatch.setenv(name, value)
    code, out, err = run(capsys, "case", "list")
    assert code == 2 and out == ""
    assert named in one_error_line(err) and "SECRET" not in err
