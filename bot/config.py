"""Settings from a TOML file and SHUOSHI_* environment variables, checked once at start."""

from __future__ import annotations

import os
import re
import tomllib
import types
from datetime import time
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from bot.config_channels import AES_KEY, WeChatSettings, WeComSettings
from handlers.render import DEFAULT_LOCALE, LOCALES
from workflow.deadlines import Limit
from workflow.errors import WorkflowError
from workflow.model import DeadlineClass, Level
from workflow.policy import (
    ReminderPolicy,
    WorkflowPolicy,
    default_class_limits,
    default_reminder_policies,
    default_stage_limits,
    validate_route,
)

DEFAULT_CONFIG_FILE = "shuoshi.toml"


__all__ = ["AES_KEY", "ConfigError", "Settings", "WeChatSettings", "WeComSettings", "load_settings"]


class ConfigError(Exception):
    """A setting that cannot be used; the message names the setting and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassLimits(_Strict):
    """Overall limit of a deadline class and each stage's; unset ones keep the policy default."""

    limit: str | None = None
    screening: str | None = None
    township: str | None = None
    county: str | None = None
    returned: str | None = None
    acceptance: str | None = None
    # Reminders: how long before a stage deadline, and when supervision goes a level up.
    remind_before: str | None = None
    second_level_after: str | None = None

    @field_validator("*")
    @classmethod
    def _parse(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Limit.parse(value)
            except WorkflowError as exc:
                raise ValueError(exc.message) from None
        return value

    def stages(self) -> dict[str, Limit]:
        return {
            k: Limit.parse(v)
            for k, v in self.model_dump().items()
            if k not in ("limit", "remind_before", "second_level_after") and v is not None
        }


class WorkflowSettings(_Strict):
    route: list[Level] = [Level.SCREENING, Level.TOWNSHIP, Level.COUNTY]
    emergency_route: list[Level] | None = None
    close_unrated_after_days: int = Field(3, ge=1, le=60)
    emergency: ClassLimits = ClassLimits()
    livelihood: ClassLimits = ClassLimits()
    general: ClassLimits = ClassLimits()

    @field_validator("route", "emergency_route")
    @classmethod
    def _route(cls, value: list[Level] | None) -> list[Level] | None:
        if value is not None:
            try:
                validate_route(tuple(value))
            except WorkflowError as exc:
                raise ValueError(exc.message) from None
        return value

    def policy(self) -> WorkflowPolicy:
        classes = {
            DeadlineClass.EMERGENCY: self.emergency,
            DeadlineClass.LIVELIHOOD: self.livelihood,
            DeadlineClass.GENERAL: self.general,
        }
        # The defaults live in workflow.policy; settings only override what they name.
        class_limits = default_class_limits()
        stage_limits = default_stage_limits()
        reminders = default_reminder_policies()
        for deadline_class, given in classes.items():
            if given.limit is not None:
                class_limits[deadline_class] = Limit.parse(given.limit)
            stage_limits[deadline_class].update(given.stages())
            rules = reminders[deadline_class]
            reminders[deadline_class] = ReminderPolicy(
                before=Limit.parse(given.remind_before) if given.remind_before else rules.before,
                second_level_after=(
                    Limit.parse(given.second_level_after)
                    if given.second_level_after
                    else rules.second_level_after
                ),
            )
        return WorkflowPolicy(
            route=tuple(self.route),
            emergency_route=tuple(self.emergency_route) if self.emergency_route else None,
            class_limits=class_limits,
            stage_limits=stage_limits,
            close_unrated_after_days=self.close_unrated_after_days,
            reminders=reminders,
        )


# What Telegram accepts as a webhook's secret_token.
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class TelegramSettings(_Strict):
    token: SecretStr | None = None
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = Field(None, validate_default=True)
    # Without it anyone who can reach the webhook route could post forged updates.
    webhook_secret: SecretStr | None = Field(None, validate_default=True)
    api_base: str | None = None  # a local Bot API server, or the tests' fake one

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("mode") == "webhook" and not value:
            raise ValueError('required when mode = "webhook" (this process\'s public address)')
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (http:// only for a local Bot API server)")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("mode") == "webhook" and value is None:
            raise ValueError('required when mode = "webhook" (1-256 of A-Z a-z 0-9 _ -)')
        if value is not None and not WEBHOOK_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z a-z 0-9 _ - (what Telegram accepts)")
        return value


class ScheduleSettings(_Strict):
    """The one periodic sweep and the times of the digests (Asia/Shanghai wall clock)."""

    sweep_every_seconds: int = Field(30, ge=5, le=3600)
    # A sweep missed while the process was busy or down still runs when it can (APScheduler's
    # default grace of one second would silently drop it).
    misfire_grace_seconds: int = Field(3600, ge=1)
    morning_digest_at: time = time(8, 30)
    weekly_analysis_day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    weekly_analysis_at: time = time(9, 0)


class WebSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Dashboard: how long a login lasts, and how long its totals may be reused between views.
    dashboard_session_hours: int = Field(12, ge=1, le=720)
    dashboard_cache_seconds: int = Field(30, ge=0, le=3600)
    # Web chat: the address residents reach this process at (for the link they bookmark), and
    # the key its form tokens are signed with (default: a random one kept in data_dir).
    public_url: str | None = None
    chat_secret: SecretStr | None = None
    # Behind a reverse proxy that alone can reach this process: believe its X-Forwarded-For,
    # -Proto and -Host (client address, https, host). Anyone can send them, so off by default.
    trust_proxy: bool = False

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        # It is the origin browsers must name (bot/web/trust.py): a scheme and a host at least.
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// address with a host")
        return value


class QrSettings(_Strict):
    """The grids' printable QR boards (`shuoshi qr`)."""

    # A TrueType/OpenType font with Chinese (.ttf, .otf, .ttc); default: the first of the
    # fonts Debian installs that is present (bot/qr/fonts.py), such as fonts-wqy-zenhei.
    font: Path | None = None


class OutboxSettings(_Strict):
    """Telegram's flood limits for one bot token, and how failed deliveries are retried."""

    messages_per_second: int = Field(30, ge=1, le=1000)
    chat_interval_seconds: float = Field(1.0, ge=0, le=60)
    group_messages_per_minute: int = Field(20, ge=1, le=1000)
    # Added to every limit: sends count from when they go out, and this absorbs the jitter of
    # the way to Telegram (bot/ratelimit.py).
    safety_margin_seconds: float = Field(0.05, ge=0, le=1)
    # Background rows (cards, notices, digests) leave answers this many places of the 1 s
    # window that free within answer_wait_seconds, and an answer's place for that long after
    # it frees (bot/ratelimit.py). With answer_wait_seconds >= answer_reserve /
    # messages_per_second the background alone still gets all of the 30/s.
    answer_reserve: int = Field(6, ge=0, le=1000)
    answer_wait_seconds: float = Field(0.25, ge=0, le=1)
    max_attempts: int = Field(20, ge=1, le=1000)
    backoff_base_seconds: float = Field(5.0, gt=0, le=3600)
    backoff_cap_seconds: float = Field(900.0, gt=0, le=86400)
    batch_size: int = Field(200, ge=1, le=10000)
    # Requests in flight at once (to different chats): 30/s needs it when Telegram is far away.
    concurrency: int = Field(8, ge=1, le=64)


ROLES = ("web", "sender", "sweeper")
Role = Literal["web", "sender", "sweeper"]


def _all_roles() -> list[Role]:
    return ["web", "sender", "sweeper"]


class ProcessSettings(_Strict):
    """What this process does (docs/scaling.md): `web` serves HTTP (web chat, dashboard,
    webhooks) and takes updates (also Telegram long polling); `sender` delivers the outbox;
    `sweeper` runs the periodic sweep and digests. Default: all three, one process."""

    roles: list[Role] = Field(default_factory=_all_roles)

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[Role]) -> list[Role]:
        if not value:
            raise ValueError(f"must name at least one of {', '.join(ROLES)}")
        if len(set(value)) != len(value):
            raise ValueError("names a role twice")
        return value


class Settings(BaseSettings):
    """Everything configurable; environment variables win over the TOML file."""

    model_config = SettingsConfigDict(
        env_prefix="SHUOSHI_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Path("data")
    database_url: str | None = None
    media_dir: Path | None = None
    locale: str = DEFAULT_LOCALE  # any locale with a catalog in templates/locale/
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    example_county: Path | None = None
    workflow: WorkflowSettings = WorkflowSettings()
    telegram: TelegramSettings = TelegramSettings()
    web: WebSettings = WebSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    outbox: OutboxSettings = OutboxSettings()
    process: ProcessSettings = ProcessSettings()
    wechat: WeChatSettings = WeChatSettings()
    wecom: WeComSettings = WeComSettings()
    qr: QrSettings = QrSettings()

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        if value not in LOCALES:
            raise ValueError(f"must be one of {', '.join(LOCALES)} (templates/locale/)")
        return value

    @field_validator("database_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(
            ("sqlite+aiosqlite://", "postgresql+asyncpg://")
        ):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// (async drivers)"
            )
        return value

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'shuoshi.db'}"

    @property
    def media_root(self) -> Path:
        return self.media_dir or self.data_dir / "media"


class _EnvValueError(ValueError):
    """A SHUOSHI_* variable that cannot be read; names the variable, unlike pydantic's error."""


class _EnvSettings(EnvSettingsSource):
    """SHUOSHI_* variables, where a list may also be comma-separated words.

    `SHUOSHI_WORKFLOW__ROUTE=screening,county` is what people write; pydantic-settings only
    reads a JSON list (`["screening","county"]`), which keeps working.
    """

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)  # type: ignore[arg-type]
        except ValueError:
            if isinstance(value, str) and field is not None and _is_list(field.annotation):
                return [word.strip() for word in value.split(",") if word.strip()]
            names = [n for n, v in self.env_vars.items() if v == value and n.endswith(field_name)]
            name = names[0].upper() if names else f"SHUOSHI_*{field_name.upper()}"
            # The value is not shown: it may hold a secret (SHUOSHI_TELEGRAM='{"token": ...').
            raise _EnvValueError(f"{name}: not valid JSON") from None


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_list(arg) for arg in get_args(annotation))
    return get_origin(annotation) is list


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Read settings; raise ConfigError with the setting's name and why it is wrong."""
    path = _config_path(config_file)

    class _FileSettings(Settings):
        @classmethod
        def settings_customise_sources(  # type: ignore[override]
            cls, settings_cls: Any, init_settings: Any, env_settings: Any, **_: Any
        ) -> tuple[Any, ...]:
            sources: list[Any] = [init_settings, _EnvSettings(settings_cls)]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    if path is not None:
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"config file {path}: cannot read it ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None
    try:
        return _FileSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    except SettingsError as exc:
        # Raised while reading a source, before validation: a variable that is not JSON.
        cause = exc.__cause__
        reason = str(cause) if isinstance(cause, _EnvValueError) else str(exc)
        raise ConfigError(f"invalid setting {reason}") from None


def _config_path(config_file: Path | str | None) -> Path | None:
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    env = os.environ.get("SHUOSHI_CONFIG")
    if env:
        return _config_path(env)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = f" (from {path} or SHUOSHI_* environment)" if path else " (from SHUOSHI_* environment)"
    parts = []
    for error in exc.errors():
        name = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        shown = error.get("input")
        # A missing value has nothing to show, and a secret is never echoed into logs.
        secret = str(error["loc"][-1]).endswith(("secret", "token", "_key"))
        value = (
            ""
            if error["type"] == "extra_forbidden" or isinstance(shown, dict | None) or secret
            else f" (got {shown!r})"
        )
        # A list item's index is no part of the variable's name (SHUOSHI_WORKFLOW__ROUTE).
        env_name = "SHUOSHI_" + "__".join(str(p) for p in error["loc"] if not isinstance(p, int))
        env_name = env_name.upper()
        parts.append(f"{name}: {message}{value} [{env_name}]")
    return "invalid setting " + "; ".join(parts) + where
