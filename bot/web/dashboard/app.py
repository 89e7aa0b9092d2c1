"""The big screen (大屏) under /dashboard: aiohttp routes, login guard, page rendering.

`setup_dashboard(web_app, app, require_login=...)` adds the routes to any aiohttp application;
`python -m bot.web.dashboard.app` serves them alone on [web] host/port for a quick look.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.app import App, open_app
from bot.config import load_settings
from bot.web import trust as web_trust
from bot.web.dashboard import auth, views
from bot.web.dashboard.context import PREFIX, STATIC_DIR, Dashboard, Handler, login_required
from bot.web.dashboard.users import users_exist


async def dashboard_users_exist(app: App) -> bool:
    """For the server deciding require_login: whether any active dashboard account exists."""
    async with app.uow() as uow:
        return await users_exist(uow.accounts)


def setup_dashboard(web_app: web.Application, app: App, *, require_login: bool) -> None:
    """Add the dashboard's routes (all under /dashboard) to an aiohttp application."""
    dash = Dashboard(app, require_login=require_login)
    web_trust.install(web_app, app.settings.web)
    get, post = web_app.router.add_get, web_app.router.add_post

    def page(handler: Callable[[Dashboard, web.Request], Awaitable[web.StreamResponse]]) -> Handler:
        return dash.guard(lambda request: handler(dash, request))

    def public(
        handler: Callable[[Dashboard, web.Request], Awaitable[web.StreamResponse]],
    ) -> Handler:
        return dash.guard(lambda request: handler(dash, request), public=True)

    get(PREFIX + "/login", public(auth.login_page))
    post(PREFIX + "/login", public(auth.login_submit))
    post(PREFIX + "/logout", public(auth.logout))
    get(PREFIX, page(views.overview))
    get(PREFIX + "/", page(views.overview))
    get(PREFIX + "/cases", page(views.cases))
    get(PREFIX + "/cases.csv", page(views.cases_csv))
    get(PREFIX + "/cases/{number}", page(views.case_page))
    get(PREFIX + "/cases/{number}/photos/{sha}", page(views.case_photo))
    get(PREFIX + "/stuck", page(views.stuck))
    get(PREFIX + "/failed", page(views.failed))
    get(PREFIX + "/definitions", page(views.definitions))
    get(PREFIX + "/weekly", page(views.weekly))
    web_app.router.add_static(PREFIX + "/static", STATIC_DIR, append_version=False)


async def _serve(config: str | None) -> None:
    """`python -m bot.web.dashboard.app`: the dashboard alone, until Ctrl-C."""
    import asyncio
    import signal

    settings = load_settings(config)
    app = await open_app(settings)
    try:
        web_app = web.Application()
        required = login_required(settings.web, await dashboard_users_exist(app))
        setup_dashboard(web_app, app, require_login=required)
        runner = web.AppRunner(web_app)
        await runner.setup()
        await web.TCPSite(runner, settings.web.host, settings.web.port).start()
        mode = "login required" if required else "local demo, no login"
        print(f"dashboard: http://{settings.web.host}:{settings.web.port}{PREFIX} ({mode})")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()
    finally:
        await app.close()


if __name__ == "__main__":
    import argparse
    import asyncio

    parser = argparse.ArgumentParser(description="serve the shuoshi dashboard alone")
    parser.add_argument("--config", help="TOML settings file")
    asyncio.run(_serve(parser.parse_args().config))
