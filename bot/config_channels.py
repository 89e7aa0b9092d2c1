"""The chat channels of WeChat's family in the settings: `[wechat]` (the Official Account
residents follow) and `[wecom]` (the WeCom self-built app staff work in). Kept apart from
bot/config.py, which imports them."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from bot.wechat.fields import check_fields


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _http_base(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// address with a host")
    return value.rstrip("/")


# WeChat's EncodingAESKey: 43 characters of base64 (the AES key without its "=" padding).
AES_KEY = re.compile(r"[A-Za-z0-9+/]{43}")


class WeChatSettings(_Strict):
    """The Official Account (服务号) residents follow; off while app_id is empty."""

    app_id: str | None = None
    app_secret: SecretStr | None = Field(None, validate_default=True)
    # The callback token of the account's server settings: every callback is signed with it.
    token: SecretStr | None = Field(None, validate_default=True)
    # Safe mode (安全模式) when set: callbacks are AES-encrypted and plain ones are refused.
    encoding_aes_key: SecretStr | None = None
    api_base: str = "https://api.weixin.qq.com"
    # Template messages (模板消息) reach a resident outside the 48-hour window: the result of
    # their case, and the request to rate it; each links to the case in the web chat.
    result_template_id: str | None = None
    rating_template_id: str | None = None
    # Which key of the templates gets which piece (bot/wechat/template.py: first, number,
    # summary, time, remark), e.g. {number = "character_string1", summary = "thing2",
    # time = "time3"} for a newer category template; unset: the classic first/keyword1-3/remark.
    template_fields: dict[str, str] | None = None

    @field_validator("app_secret", "token")
    @classmethod
    def _required(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("app_id") and not (value and value.get_secret_value()):
            raise ValueError("required when wechat.app_id is set")
        return value

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() == "":
            return None  # empty: plain mode
        if value is not None and not AES_KEY.fullmatch(value.get_secret_value()):
            raise ValueError("must be the 43 characters of the account's EncodingAESKey")
        return value

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        return _http_base(value)

    @field_validator("template_fields", mode="before")
    @classmethod
    def _template_fields(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError('must be a table of role = "template key" (README "WeChat")')
        return check_fields(value)

    @property
    def enabled(self) -> bool:
        return bool(self.app_id)


# A WeCom corp id (企业ID): "ww" or "wx" and hex digits; tests and private deployments use
# other letters and digits too, so only the shape is checked.
CORP_ID = re.compile(r"[A-Za-z0-9]{4,64}")


class WeComSettings(_Strict):
    """The WeCom (企业微信) self-built app staff work in; off while corp_id is empty.

    Its callback is always encrypted (WeCom has no plain mode): token and encoding_aes_key
    are those of the app's "接收消息" settings, secret the app's Secret."""

    corp_id: str | None = None
    agent_id: int | None = Field(None, validate_default=True)
    secret: SecretStr | None = Field(None, validate_default=True)
    token: SecretStr | None = Field(None, validate_default=True)
    encoding_aes_key: SecretStr | None = Field(None, validate_default=True)
    api_base: str = "https://qyapi.weixin.qq.com"

    @field_validator("corp_id")
    @classmethod
    def _corp_id(cls, value: str | None) -> str | None:
        if value == "":
            return None
        if value is not None and not CORP_ID.fullmatch(value):
            raise ValueError("must be the corp id of 我的企业 → 企业信息 (letters and digits)")
        return value

    @field_validator("agent_id")
    @classmethod
    def _agent_id(cls, value: int | None, info: ValidationInfo) -> int | None:
        if info.data.get("corp_id") and value is None:
            raise ValueError("required when wecom.corp_id is set (the app's AgentId)")
        if value is not None and not 1 <= value < 2**31:
            raise ValueError("must be the app's AgentId, a positive number")
        return value

    @field_validator("secret", "token")
    @classmethod
    def _required(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("corp_id") and not (value and value.get_secret_value()):
            raise ValueError("required when wecom.corp_id is set")
        return value

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        given = value is not None and value.get_secret_value() != ""
        if info.data.get("corp_id") and not given:
            raise ValueError("required when wecom.corp_id is set (WeCom callbacks are encrypted)")
        if value is not None and given and not AES_KEY.fullmatch(value.get_secret_value()):
            raise ValueError("must be the 43 characters of the app's EncodingAESKey")
        return value if given else None

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        return _http_base(value)

    @property
    def enabled(self) -> bool:
        return bool(self.corp_id)

    @property
    def account(self) -> str:
        """The name of its shared access token (`wechat_tokens`) and of its lease."""
        return f"wecom:{self.corp_id}:{self.agent_id}"
