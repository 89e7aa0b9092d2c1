"""`shuoshi wecom appchat create --unit CODE` against the fake WeCom API: the group chat of a
unit's people with a wecom_userid, bound to the unit; refusals as one line."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bot.app import open_app
from bot.cli.main import main
from bot.config import load_settings
from storage.rows import ChatBindingRow
from tests.fake_wechat.wecom import AES_KEY, AGENT_ID, CORP_ID, SECRET, FakeWeCom
from workflow.clock import SystemClock

# The example county's WeCom people (bot/examples/county.yaml).
EXAMPLE_IDS = {"HuChunMei", "ZhaoMin", "HeXiaoYan"}


def _configure(monkeypatch, fake: FakeWeCom, secret: str = SECRET) -> None:
    for name, value in (("CORP_ID", CORP_ID), ("AGENT_ID", str(AGENT_ID)), ("SECRET", secret),
                        ("TOKEN", "t"), ("ENCODING_AES_KEY", AES_KEY),
                        ("API_BASE", fake.base_url)):  # fmt: skip
        monkeypatch.setenv(f"SHUOSHI_WECOM__{name}", value)


async def _bindings() -> list[tuple[str, str, str]]:
    app = await open_app(load_settings())
    try:
        async with app.sessions() as session:
            rows = (await session.execute(select(ChatBindingRow))).scalars().all()
            return [(r.channel, r.chat_id, r.purpose) for r in rows]
    finally:
        await app.close()


async def test_a_grids_group_chat_is_created_and_bound(workdir, monkeypatch, capsys):
    async with FakeWeCom(SystemClock().now, EXAMPLE_IDS) as fake:
        _configure(monkeypatch, fake)
        assert await asyncio.to_thread(main, ["init"]) == 0
        capsys.readouterr()
        args = ["wecom", "appchat", "create", "--unit", "JL-CG-01-G1"]
        assert await asyncio.to_thread(main, args) == 0
        ((chatid, created),) = fake.appchats.items()
        # The grid's leader and worker (both have a wecom_userid), named after the grid.
        assert created["userlist"] == ["ZhaoMin", "HuChunMei"]
        assert created["name"] == "东关社区第一网格"
        assert chatid in capsys.readouterr().out
        assert await _bindings() == [("wecom", f"appchat:{chatid}", "grid")]
        # Again: WeCom refuses the same chat id, in one line; nothing bound twice.
        assert await asyncio.to_thread(main, args) == 2
        err = capsys.readouterr().err
        assert "86215" in err and err.count("\n") == 1
        assert len(await _bindings()) == 1


async def test_bad_input_and_refusals_are_one_line(workdir, monkeypatch, capsys):
    args = ["wecom", "appchat", "create", "--unit", "JL-CG"]
    assert await asyncio.to_thread(main, args) == 2
    assert "wecom.corp_id" in capsys.readouterr().err
    async with FakeWeCom(SystemClock().now, EXAMPLE_IDS) as fake:
        _configure(monkeypatch, fake)
        assert await asyncio.to_thread(main, ["init"]) == 0
        capsys.readouterr()
        assert await asyncio.to_thread(main, [*args[:-1], "NO-SUCH"]) == 2
        err = capsys.readouterr().err
        assert "NO-SUCH" in err and err.count("\n") == 1
        assert await asyncio.to_thread(main, args) == 2  # the township: one member with an id
        err = capsys.readouterr().err
        assert "JL-CG" in err and "1" in err and err.count("\n") == 1
        monkeypatch.setenv("SHUOSHI_WECOM__SECRET", "wrong")
        assert await asyncio.to_thread(main, [*args[:-1], "JL-CG-01-G1"]) == 2
        err = capsys.readouterr().err
        assert "40001" in err and err.count("\n") == 1
        assert fake.appchats == {}
