"""The `shuoshi` command line, run in-process in a temporary working directory."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import bot
from bot.cli.main import main
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


def test_ctrl_d_at_the_password_prompt_is_one_line(workdir, capsys, monkeypatch):
    run(capsys, "init")

    def ctrl_d(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr("getpass.getpass", ctrl_d)
    code, out, err = run(capsys, "user", "add", "typist")
    assert code == 2 and out == ""
    assert "--password-stdin" in one_error_line(err)


def test_user_add_without_a_terminal_says_to_use_password_stdin(workdir, capsys):
    import os
    import subprocess
    import sys

    run(capsys, "init")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHUOSHI_")}
    # A new session has no controlling terminal, as under cron, CI or `< /dev/null` in a script.
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "user", "add", "typist"],
        cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        start_new_session=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert "--password-stdin" in one_error_line(done.stderr)


async def shuoshi_run(workdir, **env: str) -> tuple[int, str]:
    """`shuoshi run` as its own process (signal handlers need a main thread): exit code, stderr."""
    import os
    import sys

    from tests.support.net import free_port

    environ = {k: v for k, v in os.environ.items() if not k.startswith("SHUOSHI_")}
    environ |= {
        "SHUOSHI_EXAMPLE_COUNTY": str(EXAMPLE_COUNTY),
        "SHUOSHI_WEB__PORT": str(free_port()),
        "SHUOSHI_LOG_LEVEL": "WARNING",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", cwd=workdir, env=environ,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, err.decode()


async def test_run_with_a_token_telegram_refuses_says_to_check_it(workdir):
    from tests.fake_telegram import FakeTelegram

    async with FakeTelegram() as fake:
        code, err = await shuoshi_run(
            workdir,
            SHUOSHI_TELEGRAM__TOKEN="654321:REVOKED",
            SHUOSHI_TELEGRAM__API_BASE=fake.base_url,
        )
    assert code == 2
    assert "401" in one_error_line(err) and "[telegram] token" in err


async def test_run_with_telegram_out_of_reach_says_to_check_the_network(workdir):
    from tests.support.net import free_port

    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, err = await shuoshi_run(
        workdir, SHUOSHI_TELEGRAM__TOKEN="123456:TEST", SHUOSHI_TELEGRAM__API_BASE=closed
    )
    assert code == 1
    assert closed in one_error_line(err) and "[telegram] api_base" in err


def test_calendar_load_of_bad_yaml_names_the_file_and_line(workdir, capsys):
    run(capsys, "init")
    schedule = workdir / "2027.yaml"
    schedule.write_text(
        "year: 2027\nholidays:\n  - {name: 元旦, from: 2027-01-01, to: 2027-01-03\nworkdays: []\n",
        encoding="utf-8",
    )
    code, out, err = run(capsys, "calendar", "load", str(schedule))
    assert code == 2 and out == ""
    assert f"{schedule}:4: YAML syntax error" in one_error_line(err)
    schedule.write_text("year: 2027\n\tholidays: []\n", encoding="utf-8")
    code, out, err = run(capsys, "calendar", "load", str(schedule))
    assert code == 2 and f"{schedule}:2: " in one_error_line(err)


def test_case_list_refuses_an_unknown_state_with_the_valid_ones(workdir, capsys):
    run(capsys, "init")
    code, out, err = run(capsys, "case", "list", "--state", "bogus")
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "bogus" in line and "closed(已结案)" in line and "in_progress" in line
    assert "new" not in line.replace("bogus", "")  # never stored, so never listed


@pytest.mark.parametrize("before", [True, False])
def test_config_is_accepted_before_and_after_the_command(workdir, capsys, before):
    config = workdir / "english.toml"
    config.write_text('locale = "en"\ndata_dir = "english-data"\n', encoding="utf-8")
    for command in (["init"], ["case", "list"], ["calendar", "load", "missing.yaml"]):
        given = ["--config", str(config)]
        code, out, err = run(capsys, *(given + command if before else command + given))
        if command == ["init"]:
            assert code == 0 and "english-data" in out and "Database ready" in out
        elif command == ["case", "list"]:
            assert code == 0 and out.strip() == "No cases yet."
        else:
            assert code == 2 and one_error_line(err).startswith("error: missing.yaml")
    assert not (workdir / "data").exists()  # nothing went to the default place


def test_init_says_when_the_example_county_is_missing(workdir, capsys, monkeypatch):
    monkeypatch.setenv("SHUOSHI_EXAMPLE_COUNTY", str(workdir / "gone.yaml"))
    code, out, err = run(capsys, "init")
    assert code == 0 and "gone.yaml" in one_error_line(err) and "shuoshi org load" in err
    code, out, err = run(capsys, "demo")
    assert code == 1 and "shuoshi org load" in out


def test_without_the_setting_the_packaged_example_county_is_loaded(workdir, capsys, monkeypatch):
    monkeypatch.delenv("SHUOSHI_EXAMPLE_COUNTY")
    code, out, err = run(capsys, "init")
    assert code == 0 and err == ""
    assert str(Path(bot.__file__).parent / "examples" / "county.yaml") in out


def test_demo_with_a_resident_outside_any_township_says_what_is_missing(workdir, capsys):
    """The demo needs a resident of a grid; one enrolled on the county itself gets the one-line
    hint (it used to stop on an assert)."""
    run(capsys, "init")
    with sqlite3.connect(workdir / "data" / "shuoshi.db") as db:
        db.execute(
            "UPDATE role_assignments SET area_id = (SELECT id FROM areas WHERE parent_id IS NULL)"
            " WHERE role = 'resident'"
        )
    code, out, err = run(capsys, "demo")
    assert code == 1 and "shuoshi org load" in out and err == ""
