"""The Official Account's HTTP API, async (aiohttp): the calls the sender and `shuoshi wechat`
make. The token, the errcode answers and the one token retry are `bot/wechat/client.py`'s,
shared with the WeCom app (`bot/wecom/api.py`).
"""

from __future__ import annotations

from typing import Any

from bot.wechat.client import AccessTokens, ApiClient, WeChatError
from storage.wechat import WeChatStore
from workflow.clock import Clock

__all__ = ["AccessTokens", "OfficialAccountApi", "WeChatError"]


class OfficialAccountApi(ApiClient):
    """The calls of the Official Account the channel needs, each with the token retry."""

    def __init__(
        self, base: str, app_id: str, secret: str, store: WeChatStore, clock: Clock
    ) -> None:
        super().__init__(base, store, clock)
        self.app_id = app_id
        self._secret = secret

    async def _fetch_token(self) -> tuple[str, int]:
        params = {"grant_type": "client_credential", "appid": self.app_id,
                  "secret": self._secret}  # fmt: skip
        return await self._get_token("/cgi-bin/token", params)

    async def send_custom(self, message: dict[str, Any]) -> dict[str, Any]:
        """A customer-service message (客服消息): text, image or msgmenu."""
        answer: dict[str, Any] = await self._call("/cgi-bin/message/custom/send", json_body=message)
        return answer

    async def send_template(self, message: dict[str, Any]) -> str:
        """A template message (模板消息); returns its msgid."""
        answer = await self._call("/cgi-bin/message/template/send", json_body=message)
        return str(answer.get("msgid", ""))

    async def upload_image(self, data: bytes, name: str = "photo.jpg") -> str:
        """A temporary image (3 days) to send by media id; returns the media id."""
        return await self._upload("/cgi-bin/media/upload", data, name)

    async def get_media(self, media_id: str) -> bytes:
        """The bytes of a resident's image (a MediaId of an image message)."""
        return await self._media("/cgi-bin/media/get", media_id)

    async def create_menu(self, menu: dict[str, Any]) -> None:
        """The account's menu (自定义菜单), replacing the one there was."""
        await self._call("/cgi-bin/menu/create", json_body=menu)

    async def create_qr(self, scene: str) -> tuple[str, str]:
        """A permanent QR code whose scene string is `scene`: (its ticket, the URL it encodes).
        The same scene gives the same code again (WeChat allows 100,000 permanent ones)."""
        answer = await self._call(
            "/cgi-bin/qrcode/create",
            json_body={"action_name": "QR_LIMIT_STR_SCENE",
                       "action_info": {"scene": {"scene_str": scene}}},
        )  # fmt: skip
        ticket, url = answer.get("ticket"), answer.get("url")
        if not isinstance(ticket, str) or not isinstance(url, str):
            raise WeChatError(-2, "no ticket in the answer")
        return ticket, url
