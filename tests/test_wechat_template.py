"""Template messages in the county's template layout: `[wechat] template_fields` maps what we
fill in (first, number, summary, time, remark) to the template's keys, classic or typed
(thing1, character_string2, time3), within WeChat's limits per field type; a malformed mapping
is one line naming the setting."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import ConfigError, load_settings
from tests.support.wechat import make_env, report_case, staff_resolve

RESIDENT = "o-resident-3"
NEW_STYLE = {"number": "character_string1", "summary": "thing2", "time": "time3"}
GOOD = {"app_id": "wx0123456789abcdef", "app_secret": "s3cr3t", "token": "tok"}


@pytest.fixture
async def wx_typed(tmp_path: Any):
    async for env in make_env(tmp_path, template_fields=NEW_STYLE):
        yield env


async def test_a_category_template_gets_its_typed_keys_within_their_limits(wx_typed):
    wx = wx_typed
    number = await report_case(wx, RESIDENT)
    wx.clock.advance(hours=72)
    await staff_resolve(wx, number)
    await wx.settle()
    assert wx.fake.refusals == []  # the fake refuses a thing over 20 characters (47003)
    rating = next(t for t in wx.fake.templates if t["template_id"] == "TPL-RATING")
    data = rating["data"]
    assert set(data) == {"character_string1", "thing2", "time3"}
    assert data["character_string1"]["value"] == number
    # What happened, cut to a thing's 20 characters, one line.
    summary = data["thing2"]["value"]
    assert len(summary) == 20 and summary.endswith("…") and "\n" not in summary
    assert data["time3"]["value"] == wx.clock.now().strftime("%Y-%m-%d %H:%M")


async def test_the_classic_layout_stays_the_default(wx):
    number = await report_case(wx, RESIDENT)
    wx.clock.advance(hours=72)
    await staff_resolve(wx, number)
    await wx.settle()
    data = wx.fake.templates[-1]["data"]
    assert set(data) == {"first", "keyword1", "keyword2", "keyword3", "remark"}
    assert data["keyword1"]["value"] == number


def test_a_date_field_gets_the_day_only():
    from datetime import datetime

    from bot.wechat.template import template_message
    from handlers.messages import Outgoing
    from handlers.render import Renderer
    from workflow.clock import SHANGHAI

    message = Outgoing(chat_id="o", text="第一行\n第二行", case_number="JL-20261123-0001")
    body = template_message("o", "T", message, Renderer("zh_CN"), None,
                            datetime(2026, 11, 23, 9, 5, tzinfo=SHANGHAI),
                            {"time": "date4", "summary": "keyword1"})  # fmt: skip
    assert body["data"] == {"date4": {"value": "2026年11月23日"},
                            "keyword1": {"value": "第一行 第二行"}}  # fmt: skip
    assert "url" not in body


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"numbr": "keyword1"}, "unknown role 'numbr'"),
        ({"summary": "character_string1"}, "summary cannot go to a character_string field"),
        ({"number": "phrase1"}, "no template key WeChat has"),
        ({"number": "thing1", "summary": "thing1"}, "number and summary both go to thing1"),
        ({}, "must map at least one of"),
        ("keyword1", "must be a table"),
    ],
)
def test_a_malformed_mapping_is_one_line_naming_the_setting(fields, said):
    with pytest.raises(ConfigError) as info:
        load_settings(wechat={**GOOD, "template_fields": fields})
    message = str(info.value)
    assert "wechat.template_fields" in message and said in message and "\n" not in message
    assert "SHUOSHI_WECHAT__TEMPLATE_FIELDS" in message


def test_the_mapping_from_the_environment_and_from_toml(monkeypatch, tmp_path):
    monkeypatch.setenv("SHUOSHI_WECHAT__TEMPLATE_FIELDS", '{"number": "character_string1"}')
    assert load_settings(wechat=GOOD).wechat.template_fields == {"number": "character_string1"}
    monkeypatch.delenv("SHUOSHI_WECHAT__TEMPLATE_FIELDS")
    config = tmp_path / "shuoshi.toml"
    config.write_text(
        '[wechat]\napp_id = "wx0123456789abcdef"\napp_secret = "s"\ntoken = "t"\n'
        '[wechat.template_fields]\nnumber = "character_string1"\nsummary = "thing2"\n',
        encoding="utf-8",
    )
    assert load_settings(config).wechat.template_fields == {
        "number": "character_string1", "summary": "thing2"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("public_url", "templates", "warned"),
    [
        (None, {}, "web.public_url is not set: template messages carry no link"),
        ("https://x.example.org", {"result_template_id": "", "rating_template_id": ""},
         "no wechat.result_template_id or rating_template_id"),
        ("https://x.example.org", {}, None),
    ],
)  # fmt: skip
async def test_shuoshi_run_warns_once_when_template_messages_cannot_work(
    tmp_path, caplog, public_url, templates, warned
):
    async for env in make_env(tmp_path, public_url=public_url, **templates):
        with caplog.at_level("WARNING", logger="bot.wechat.channel"):
            await env.channel.start()
            await env.channel.stop_receiving()
        lines = [r.getMessage() for r in caplog.records if r.name == "bot.wechat.channel"]
        assert len(lines) == (warned is not None)
        assert warned is None or (warned in lines[0] and "\n" not in lines[0])
