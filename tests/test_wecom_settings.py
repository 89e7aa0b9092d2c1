"""[wecom] settings: off until corp_id is set; then every setting the channel needs, each
malformed one named in one line with its environment variable, secrets never echoed."""

from __future__ import annotations

import asyncio

import pytest

from bot.cli.main import main
from bot.config import ConfigError, load_settings
from tests.support.wecom import SETTINGS as GOOD


def test_off_by_default_and_complete_when_set():
    assert not load_settings().wecom.enabled
    settings = load_settings(wecom=GOOD).wecom
    assert settings.enabled and settings.account == "wecom:ww0123456789abcdef:1000002"
    assert settings.api_base == "https://qyapi.weixin.qq.com"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"agent_id": None}, "wecom.agent_id: required"),
        ({"agent_id": "x"}, "wecom.agent_id"),
        ({"secret": ""}, "wecom.secret: required"),
        ({"token": None}, "wecom.token: required"),
        ({"encoding_aes_key": ""}, "wecom.encoding_aes_key: required"),
        ({"encoding_aes_key": "short-key"}, "43 characters"),
        ({"corp_id": "ww 1"}, "wecom.corp_id"),
        ({"api_base": "ftp://x"}, "wecom.api_base: must be an http"),
        ({"agentid": 1}, "wecom.agentid: unknown setting"),
    ],
)
def test_a_malformed_setting_is_one_clear_line(change, named):
    with pytest.raises(ConfigError) as info:
        load_settings(wecom={**GOOD, **change})
    message = str(info.value)
    assert named in message and "\n" not in message
    assert "s3cr3t-value" not in message and "short-key" not in message


async def test_shuoshi_run_stops_with_the_line(workdir, monkeypatch, capsys):
    monkeypatch.setenv("SHUOSHI_WECOM__CORP_ID", "ww0123456789abcdef")
    assert await asyncio.to_thread(main, ["run"]) == 2
    err = capsys.readouterr().err
    assert "SHUOSHI_WECOM__AGENT_ID" in err and err.count("\n") == 1 and "Traceback" not in err
