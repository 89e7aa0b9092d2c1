"""Composition root: builds engine, unit of work, workflow and media store from settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from bot.config import Settings
from handlers.notify import Notifier
from handlers.render import Renderer
from storage.calendar import seed_calendar
from storage.db import Engine, SessionFactory, create_engine, session_factory, upgrade_schema
from storage.media import MediaStore
from storage.uow import UnitOfWorkFactory
from workflow.channels import ALL_CHANNELS
from workflow.clock import Clock, SystemClock
from workflow.services import Workflow

log = logging.getLogger(__name__)


def packaged_example(name: str) -> Path:
    """An example file shipped inside the bot package (bot/examples/), so a non-editable
    install has it too; county.yaml is loaded on first start, calendar-2026.yaml shows the
    holiday schedule format."""
    return Path(str(resources.files("bot").joinpath("examples").joinpath(name)))


def example_county(settings: Settings) -> Path:
    """The county loaded when no organisation is: example_county, else the packaged one."""
    return settings.example_county or packaged_example("county.yaml")


@dataclass
class App:
    settings: Settings
    engine: Engine
    sessions: SessionFactory
    clock: Clock
    uow: UnitOfWorkFactory
    workflow: Workflow
    media: MediaStore
    renderer: Renderer = field(default_factory=Renderer)
    # The channels this deployment delivers (enabled_channels): messages go to these only.
    channels: frozenset[str] = ALL_CHANNELS

    async def close(self) -> None:
        await self.engine.dispose()

    async def org_is_empty(self) -> bool:
        async with self.uow() as uow:
            return await uow.org.is_empty()

    def example_county(self) -> Path | None:
        path = example_county(self.settings)
        return path if path.is_file() else None


async def open_app(settings: Settings, clock: Clock | None = None, *, migrate: bool = True) -> App:
    """Connect, upgrade the schema and seed the calendar; the same steps on every start."""
    clock = clock or SystemClock()
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.db_url)
    sessions = session_factory(engine)
    factory = UnitOfWorkFactory(sessions, clock)
    if migrate:
        await upgrade_schema(engine)
        async with factory() as uow:
            added = await seed_calendar(uow.session, clock.now())
            await uow.commit()
        if added:
            log.info("seeded the working-day calendar with %s years", added)
    return assemble(settings, engine, sessions, clock)


def enabled_channels(settings: Settings) -> frozenset[str]:
    """The channels these settings deliver: the web chat always, Telegram with a token, WeChat
    and WeCom when configured. A chat on any other channel is never addressed: no sender
    would take its outbox rows, and its person's other chats (or staff workspace) get them."""
    configured = {
        "telegram": settings.telegram.token is not None,
        "wechat": settings.wechat.enabled,
        "wecom": settings.wecom.enabled,
    }
    return frozenset({"web"} | {name for name, on in configured.items() if on})


def assemble(
    settings: Settings,
    engine: Engine,
    sessions: SessionFactory,
    clock: Clock,
    *,
    media: MediaStore | None = None,
) -> App:
    """The App's parts wired from its settings, on an engine that is already open and upgraded."""
    channels = enabled_channels(settings)
    return App(
        settings=settings,
        engine=engine,
        sessions=sessions,
        clock=clock,
        uow=UnitOfWorkFactory(sessions, clock),
        workflow=Workflow(
            settings.workflow.policy(), on_events=Notifier(settings.locale, channels)
        ),
        media=media or MediaStore(settings.media_root),
        renderer=Renderer(settings.locale),
        channels=channels,
    )
