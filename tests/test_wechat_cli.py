"""`shuoshi wechat menu` and `shuoshi wechat qr` against the fake WeChat API."""

from __future__ import annotations

import asyncio
import csv

from bot.cli.main import main
from tests.fake_wechat import APP_ID, APP_SECRET, FakeWeChat
from workflow.clock import SystemClock


def _configure(monkeypatch, fake: FakeWeChat) -> None:
    for name, value in (("APP_ID", APP_ID), ("APP_SECRET", APP_SECRET), ("TOKEN", "t"),
                        ("API_BASE", fake.base_url)):  # fmt: skip
        monkeypatch.setenv(f"SHUOSHI_WECHAT__{name}", value)


async def test_menu_and_qr_codes_per_grid(workdir, monkeypatch, capsys):
    async with FakeWeChat(SystemClock().now) as fake:
        _configure(monkeypatch, fake)
        assert await asyncio.to_thread(main, ["init"]) == 0
        assert await asyncio.to_thread(main, ["wechat", "menu"]) == 0
        assert [(b["key"], b["name"]) for b in fake.menu["button"]] == [
            ("report", "我要说事"),
            ("my", "我的事项"),
            ("sos", "一键呼叫"),
        ]
        code = await asyncio.to_thread(main, ["wechat", "qr", "JL-XGC", "--out", "qr.csv"])
        assert code == 0
        text = (workdir / "qr.csv").read_text(encoding="utf-8")
        rows = list(csv.DictReader(text.splitlines()))
        grids = [r["grid"] for r in rows]
        assert "JL-XGC-01-G1" in grids and all(g.startswith("JL-XGC-") for g in grids)
        first = rows[grids.index("JL-XGC-01-G1")]
        assert first["qr_url"] == "http://weixin.qq.com/q/JL-XGC-01-G1"
        assert first["qr_image"].endswith("ticket=gQ%2BJL-XGC-01-G1%2F%3D%3D")
        assert set(fake.qr_scenes.values()) == set(grids)
        assert f"{len(rows)} " in capsys.readouterr().out


async def test_bad_input_and_refusals_are_one_line(workdir, monkeypatch, capsys):
    assert await asyncio.to_thread(main, ["wechat", "menu"]) == 2
    assert "wechat.app_id" in capsys.readouterr().err
    async with FakeWeChat(SystemClock().now) as fake:
        _configure(monkeypatch, fake)
        assert await asyncio.to_thread(main, ["wechat", "qr", "NO-SUCH-AREA"]) == 2
        err = capsys.readouterr().err
        assert "NO-SUCH-AREA" in err and err.count("\n") == 1
        monkeypatch.setenv("SHUOSHI_WECHAT__APP_SECRET", "wrong")
        assert await asyncio.to_thread(main, ["wechat", "menu"]) == 2
        err = capsys.readouterr().err
        assert "40013" in err and err.count("\n") == 1
    monkeypatch.setenv("SHUOSHI_WECHAT__API_BASE", "http://127.0.0.1:9")
    assert await asyncio.to_thread(main, ["wechat", "menu"]) == 1
    assert "127.0.0.1:9" in capsys.readouterr().err
