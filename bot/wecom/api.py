"""The WeCom app's HTTP API, async (aiohttp): the calls the sender and `shuoshi wecom` make.
The token (corp id + the app's secret, shared by every process as `wecom:<corp>:<agent>`), the
errcode answers and the one token retry are `bot/wechat/client.py`'s, as for the Official
Account."""

from __future__ import annotations

from typing import Any

from bot.wechat.client import ApiClient, WeChatError
from storage.wechat import WeChatStore
from workflow.clock import Clock


class WeComApi(ApiClient):
    def __init__(
        self, base: str, corp_id: str, agent_id: int, secret: str, store: WeChatStore,
        clock: Clock,
    ) -> None:  # fmt: skip
        super().__init__(base, store, clock)
        self.corp_id = corp_id
        self.agent_id = agent_id
        self._secret = secret

    async def _fetch_token(self) -> tuple[str, int]:
        return await self._get_token(
            "/cgi-bin/gettoken", {"corpid": self.corp_id, "corpsecret": self._secret}
        )

    async def send(self, message: dict[str, Any]) -> dict[str, Any]:
        """An app message (应用消息) to members: text, image or template_card. Returns the
        answer (a template card's has its `response_code`)."""
        body = {**message, "agentid": self.agent_id}
        answer: dict[str, Any] = await self._call("/cgi-bin/message/send", json_body=body)
        if answer.get("invaliduser"):
            # WeCom answers 0 when some of the members are unknown; ours go one at a time.
            raise WeChatError(81013, f"invalid user {answer['invaliduser']}")
        return answer

    async def update_card(self, userid: str, response_code: str, card: dict[str, Any]) -> None:
        """Replace a member's template card (update_template_card), spending the code."""
        body = {"userids": [userid], "agentid": self.agent_id, "response_code": response_code,
                "template_card": card}  # fmt: skip
        await self._call("/cgi-bin/message/update_template_card", json_body=body)

    async def appchat_create(self, chatid: str, name: str, owner: str, members: list[str]) -> str:
        """An app group chat (群聊会话) with these members; returns its chat id."""
        body = {"chatid": chatid, "name": name[:50], "owner": owner, "userlist": members}
        answer = await self._call("/cgi-bin/appchat/create", json_body=body)
        return str(answer.get("chatid") or chatid)

    async def appchat_send(self, message: dict[str, Any]) -> None:
        """A message to an app group chat: text or image (no cards: they take no presses)."""
        await self._call("/cgi-bin/appchat/send", json_body=message)

    async def upload_image(self, data: bytes, name: str = "photo.jpg") -> str:
        return await self._upload("/cgi-bin/media/upload", data, name)

    async def get_media(self, media_id: str) -> bytes:
        """The bytes of a member's image (the MediaId of an image message)."""
        return await self._media("/cgi-bin/media/get", media_id)
