"""`shuoshi user add|link|unlink|list|disable` and the password hashing behind the login."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli.main import main
from bot.web.dashboard import passwords as passwords
from bot.web.dashboard.passwords import hash_password, verify_password, weakness
from storage.db import create_engine, session_factory
from storage.rows import DashboardUserRow, IdentityRow, PersonRow

GOOD = "grid-screen-2026"
ROOT = Path(__file__).resolve().parent.parent


def run(capsys, monkeypatch, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def stored_users(workdir) -> list[DashboardUserRow]:
    async def read() -> list[DashboardUserRow]:
        engine = create_engine(f"sqlite+aiosqlite:///{workdir / 'data' / 'shuoshi.db'}")
        try:
            async with session_factory(engine)() as session:
                rows = await session.execute(select(DashboardUserRow).order_by(DashboardUserRow.id))
                return list(rows.scalars())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_hash_is_salted_self_describing_and_verifies():
    first, second = hash_password(GOOD), hash_password(GOOD)
    assert first != second  # a random salt each time
    assert first.startswith(f"scrypt${passwords.COST.n}$8$1$") and GOOD not in first
    assert verify_password(GOOD, first) and verify_password(GOOD, second)
    assert not verify_password(GOOD + "x", first)
    assert not verify_password(GOOD, "scrypt$bad") and not verify_password(GOOD, "md5$x$y$z$a$b")


def test_production_hashes_use_owasps_scrypt_factors():
    """Outside the tests' cheap setting: N=2^17, r=8, p=1, and maxmem lets scrypt run."""
    assert passwords.OWASP_COST == passwords.ScryptCost(n=2**17, r=8, p=1)
    script = (
        "from bot.web.dashboard.passwords import hash_password, verify_password\n"
        f"h = hash_password({GOOD!r})\n"
        f"print(h.rsplit('$', 2)[0], verify_password({GOOD!r}, h))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.split() == ["scrypt$131072$8$1", "True"]


def test_old_factors_still_verify_and_are_marked_for_rehashing():
    legacy = passwords.hash_password(GOOD, cost=passwords.ScryptCost(n=2**14, r=8, p=1))
    assert legacy.startswith("scrypt$16384$8$1$") and verify_password(GOOD, legacy)
    assert passwords.needs_rehash(legacy)
    assert not passwords.needs_rehash(hash_password(GOOD))
    # a hash asking for absurd memory is not even tried
    assert not verify_password(GOOD, "scrypt$1073741824$8$1$AAAA$AAAA")


def test_weak_passwords_are_named():
    assert weakness("") == "password_empty" and weakness("   ") == "password_empty"
    assert weakness("short1") == "password_short"
    assert weakness("password123") == "password_common"
    assert weakness("alice-2026-xyz", "alice") == "password_common"
    assert weakness("aaaaaaaaaaaa") == "password_repetitive"
    assert weakness(GOOD, "alice") is None


def test_add_list_disable(workdir, capsys, monkeypatch):
    run(capsys, monkeypatch, "init")
    code, out, err = run(
        capsys, monkeypatch, "user", "add", "leader", "--name", "县领导", "--person", "P-A-01",
        "--password-stdin", stdin=GOOD + "\n",
    )  # fmt: skip
    assert (code, err) == (0, "") and "leader" in out
    [row] = stored_users(workdir)
    assert row.username == "leader" and row.display_name == "县领导" and row.active
    assert row.person_id is not None and GOOD not in row.password_hash
    assert verify_password(GOOD, row.password_hash)
    code, out, _ = run(capsys, monkeypatch, "user", "list")
    assert code == 0 and "leader（县领导） 人员 P-A-01：启用" in out
    code, out, _ = run(capsys, monkeypatch, "user", "disable", "leader")
    assert code == 0 and "leader" in out
    assert not stored_users(workdir)[0].active
    _, out, _ = run(capsys, monkeypatch, "user", "list")
    assert "已停用" in out


def test_typed_password_is_asked_twice(workdir, capsys, monkeypatch):
    run(capsys, monkeypatch, "init")
    answers = iter([GOOD, GOOD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert run(capsys, monkeypatch, "user", "add", "typist")[0] == 0
    answers = iter([GOOD, GOOD + "!"])
    code, out, err = run(capsys, monkeypatch, "user", "add", "typo")
    assert code == 2 and out == "" and "不一致" in err
    assert [u.username for u in stored_users(workdir)] == ["typist"]


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (("user", "add", "weak", "--password-stdin"), "\n", "不能为空"),
        (("user", "add", "weak", "--password-stdin"), "abc\n", "至少需要 10 个字符"),
        (("user", "add", "weak", "--password-stdin"), "password123\n", "容易被猜到"),
        (("user", "add", "bad name", "--password-stdin"), GOOD + "\n", "不可用"),
        (("user", "add", "someone", "--person", "P-NOPE", "--password-stdin"), GOOD + "\n",
         "P-NOPE"),
        (("user", "disable", "ghost"), None, "ghost"),
    ],
)  # fmt: skip
def test_refusals_are_one_localized_line(workdir, capsys, monkeypatch, args, stdin, expected):
    run(capsys, monkeypatch, "init")
    code, out, err = run(capsys, monkeypatch, *args, stdin=stdin)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("错误：") and expected in err and "Traceback" not in err
    assert stored_users(workdir) == []


def test_duplicate_username_and_english(workdir, capsys, monkeypatch):
    monkeypatch.setenv("SHUOSHI_LOCALE", "en")
    run(capsys, monkeypatch, "init")
    add = ("user", "add", "Leader", "--password-stdin")
    assert run(capsys, monkeypatch, *add, stdin=GOOD + "\n")[0] == 0
    code, _, err = run(capsys, monkeypatch, "user", "add", "leader", "--password-stdin",
                       stdin=GOOD + "\n")  # fmt: skip
    assert code == 2 and err.strip() == "error: The username 'leader' is taken."
    _, out, _ = run(capsys, monkeypatch, "user", "list")
    assert "Leader: active" in out


def web_chats(workdir) -> list[tuple[str, str | None]]:
    """The web chat accounts ("p-<code>") and whose they are."""

    async def read() -> list[tuple[str, str | None]]:
        engine = create_engine(f"sqlite+aiosqlite:///{workdir / 'data' / 'shuoshi.db'}")
        try:
            async with session_factory(engine)() as session:
                rows = await session.execute(
                    select(IdentityRow.external_id, PersonRow.code)
                    .join(PersonRow, PersonRow.id == IdentityRow.person_id)
                    .where(IdentityRow.channel == "web")
                    .order_by(IdentityRow.external_id)
                )
                return [(chat, code) for chat, code in rows.all()]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_link_and_unlink_give_and_take_the_workspace_chat(workdir, capsys, monkeypatch):
    run(capsys, monkeypatch, "init")
    assert run(capsys, monkeypatch, "user", "add", "clerk", "--password-stdin",
               stdin=GOOD + "\n")[0] == 0  # fmt: skip
    assert web_chats(workdir) == []
    code, out, err = run(capsys, monkeypatch, "user", "link", "clerk", "P-H-02")
    assert (code, err) == (0, "") and "P-H-02" in out and "/dashboard/staff" in out
    # The chat exists at once: the department's cards reach it before the first sign-in.
    assert web_chats(workdir) == [("p-P-H-02", "P-H-02")]
    for args, expected in (
        (("user", "link", "clerk", "P-NOPE"), "P-NOPE"),
        (("user", "link", "ghost", "P-H-02"), "ghost"),
        (("user", "unlink", "ghost"), "ghost"),
    ):
        code, out, err = run(capsys, monkeypatch, *args)
        assert code == 2 and out == "" and err.count("\n") == 1
        assert err.startswith("错误：") and expected in err and "Traceback" not in err
    assert web_chats(workdir) == [("p-P-H-02", "P-H-02")]
    assert run(capsys, monkeypatch, "user", "link", "clerk", "P-H-03")[0] == 0
    assert web_chats(workdir) == [("p-P-H-03", "P-H-03")]  # moved: nobody reads P-H-02's
    code, out, _ = run(capsys, monkeypatch, "user", "unlink", "clerk")
    assert code == 0 and "clerk" in out and web_chats(workdir) == []
    assert "人员" not in run(capsys, monkeypatch, "user", "list")[1]
    # Disabling the last account linked to a person takes the chat away too.
    run(capsys, monkeypatch, "user", "add", "desk2", "--person", "P-H-04", "--password-stdin",
        stdin=GOOD + "\n")  # fmt: skip
    assert web_chats(workdir) == [("p-P-H-04", "P-H-04")]
    assert run(capsys, monkeypatch, "user", "disable", "desk2")[0] == 0
    assert web_chats(workdir) == []
