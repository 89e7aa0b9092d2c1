"""The staff web workspace: a dashboard account linked to a person (`shuoshi user add --person`,
`shuoshi user link`) works that person's case cards in the web chat at /dashboard/staff.

It is the web chat of the person ("p-<code>", the chat the demo's picker opens), served at an
address that names no chat: the signed-in dashboard session says whose chat it is, on every
request. So it sits under /dashboard, where the session cookie is sent, behind the same login,
throttle and cookies (Secure over https) as the dashboard; posts carry the web chat's form token,
bound to the browser, the chat and the session, and must come from this site. A resident's /r
link cannot reach it (no address of it names a chat), and signing out ends it at once.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web

from bot.web import trust as web_trust
from bot.web.chat.requests import ChatAt, Refused
from bot.web.dashboard.context import CSRF_COOKIE, PREFIX, SESSION_COOKIE, is_loopback
from bot.web.dashboard.users import SignedIn, session_user, token_hash

if TYPE_CHECKING:
    from bot.web.chat.app import WebChat

STAFF_PREFIX = PREFIX + "/staff"


class StaffDesk:
    """The workspace's routes, on the web chat's machinery (delivery, live streams, uploads)."""

    def __init__(self, chat: WebChat, *, require_login: bool) -> None:
        self.chat = chat
        self.require_login = require_login

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(STAFF_PREFIX, self.page, name="staff.chat"),
            web.get(STAFF_PREFIX + "/history", self.history, name="staff.history"),
            web.get(STAFF_PREFIX + "/events", self.events, name="staff.events"),
            web.post(STAFF_PREFIX + "/send", self.send, name="staff.send"),
            web.post(STAFF_PREFIX + "/press", self.press, name="staff.press"),
            web.get(STAFF_PREFIX + "/photo/{sha:[0-9a-f]{64}}", self.photo, name="staff.photo"),
        ]

    # Who is asking ---------------------------------------------------------------------------

    async def _signed_in(self, request: web.Request) -> tuple[SignedIn | None, str | None]:
        """The session's account, and the workspace chat of the person it is linked to."""
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            return None, None
        app = self.chat.app
        async with app.uow.reading() as uow:
            user = await session_user(uow.accounts, token, app.clock.now())
            if user is None or user.person_id is None:
                return user, None
            return user, await uow.accounts.desk_chat(user.person_id)

    async def _at(self, request: web.Request) -> ChatAt:
        return (await self._whose(request))[1]

    async def _whose(self, request: web.Request) -> tuple[SignedIn, ChatAt]:
        """The signed-in account and its person's workspace; else Refused (signed out, or not
        linked to a person)."""
        user, chat_id = await self._signed_in(request)
        if user is None:
            raise Refused(401, "staff_signed_out")
        if chat_id is None:
            raise Refused(403, "staff_not_linked")
        # The form token names the session too: a page of an earlier login is refused.
        session = token_hash(request.cookies.get(SESSION_COOKIE, ""))[:16]
        return user, ChatAt(chat_id, "staff", f"staff:{chat_id}:{session}", in_url=False)

    async def _api_at(self, request: web.Request) -> ChatAt | web.StreamResponse:
        try:
            return await self._at(request)
        except Refused as refused:
            return self.chat._refusal(request, refused)

    # Routes ----------------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        try:
            user, at = await self._whose(request)
        except Refused as refused:
            return self._notice(request, refused)
        app = self.chat.app
        async with app.uow() as uow:
            # An account linked before workspaces existed gets its chat on the first visit.
            await uow.accounts.sync_desk(user.person_id, app.clock.now())
            await uow.commit()
        async with app.uow.reading() as uow:
            said = any(row.direction == "in" for row in await uow.webchat.history(at.chat_id))
        if not said:
            # The first visit says hello, as /start does in Telegram (once: the key is fixed).
            await self.chat._take(at.chat_id, "start", None, self.chat._locale(request),
                                  text="/start")  # fmt: skip
        csrf = request.cookies.get(CSRF_COOKIE, "")
        fresh = len(csrf) < 32
        csrf = secrets.token_urlsafe(32) if fresh else csrf
        response = await self.chat.chat_page_of(
            request, at, demo=False, staff={"dashboard": PREFIX, "logout": PREFIX + "/logout",
                                            "csrf": csrf},
        )  # fmt: skip
        if fresh:
            # The dashboard's own token (double-submit cookie) for the sign-out form.
            self._dashboard_cookie(request, response, CSRF_COOKIE, csrf)
        return response

    async def history(self, request: web.Request) -> web.StreamResponse:
        at = await self._api_at(request)
        return at if not isinstance(at, ChatAt) else await self.chat.history_of(request, at)

    async def events(self, request: web.Request) -> web.StreamResponse:
        at = await self._api_at(request)
        if not isinstance(at, ChatAt):
            return at

        async def still_allowed() -> bool:
            # Signed out or disabled while the page was open: the stream ends there.
            _, chat_id = await self._signed_in(request)
            return chat_id == at.chat_id

        return await self.chat.events_of(request, at, still_allowed)

    async def send(self, request: web.Request) -> web.StreamResponse:
        at = await self._api_at(request)
        return at if not isinstance(at, ChatAt) else await self.chat.send_to(request, at)

    async def press(self, request: web.Request) -> web.StreamResponse:
        at = await self._api_at(request)
        return at if not isinstance(at, ChatAt) else await self.chat.press_in(request, at)

    async def photo(self, request: web.Request) -> web.StreamResponse:
        at = await self._api_at(request)
        return at if not isinstance(at, ChatAt) else await self.chat.photo_of(request, at)

    # Pages of refusal ------------------------------------------------------------------------

    def _notice(self, request: web.Request, refused: Refused) -> web.StreamResponse:
        """Signed out: to the login form, back here afterwards. Not linked to a person (or no
        login on this server at all): a page that says so and what to do."""
        if refused.label == "staff_signed_out" and self.require_login:
            login = f"{PREFIX}/login?" + urlencode({"next": request.path_qs})
            return web.Response(status=303, headers={"Location": login})
        label = refused.label if self.require_login else "staff_no_login"
        chat = self.chat
        return chat._page(
            request, "staff_notice.html.j2", browser=chat.guard.browser(request),
            status=refused.status, text=chat._label(request, label), dashboard=PREFIX,
            demo=chat.demo,
        )  # fmt: skip

    def _dashboard_cookie(
        self, request: web.Request, response: web.StreamResponse, name: str, value: str
    ) -> None:
        """As the dashboard sets its cookies: for /dashboard, Secure off loopback and on https."""
        secure = not is_loopback(self.chat.app.settings.web.host)
        web_trust.set_cookie(request, response, name, value, path=PREFIX, max_age=None,
                             secure=secure)  # fmt: skip


def setup_staff_desk(web_app: web.Application, chat: WebChat, *, require_login: bool) -> StaffDesk:
    """Add the workspace's routes; `require_login` is the dashboard's (when the dashboard asks
    for no login, a loopback demo without accounts, there is nobody to be)."""
    desk = StaffDesk(chat, require_login=require_login)
    web_app.add_routes(desk.routes())
    return desk


__all__ = ["STAFF_PREFIX", "StaffDesk", "setup_staff_desk"]
