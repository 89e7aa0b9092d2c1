"""WeChat's and WeCom's callbacks: the signature, the AES envelope and the XML, checked with
wechatpy (no crypto of our own). Nothing here touches the database: a callback that fails a
check is refused before anything is stored.

The Official Account signs the query (`signature`) and, in safe mode, the envelope too
(`msg_signature`); the WeCom app signs only the envelope, always encrypted, with the corp id
inside it in place of the app id (`Callback.wecom`: wechatpy's `enterprise` crypto and parser).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise import parse_message as parse_wecom_message
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import check_signature

# A callback body larger than this is not one of WeChat's (a text message is at most 2 KB).
MAX_BODY_BYTES = 64 * 1024


class Refused(Exception):
    """The callback is not WeChat's (bad signature, undecryptable, not a message)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Decrypter(Protocol):
    def decrypt_message(self, msg: str, signature: str, timestamp: str, nonce: str) -> str: ...


class EchoDecrypter(Decrypter, Protocol):
    """WeCom's URL check sends echostr encrypted and signed: opened like a message."""

    def check_signature(self, signature: str, timestamp: str, nonce: str, echo_str: str) -> Any: ...


@dataclass(frozen=True)
class CallbackMessage:
    """One message or event, as the inbox stores it."""

    openid: str  # the sender: a follower's openid, a WeCom member's userid
    key: str  # MsgId, or FromUserName:CreateTime for events: WeChat's retries repeat it
    order: int  # inbox order: CreateTime first, so one follower's messages keep their order
    payload: dict[str, Any]  # the XML's fields as wechatpy's parser read them


class Callback:
    """Checks and opens callbacks signed with `token`; encrypted ones when `crypto` is given
    (safe mode: then plain ones are refused, so nobody without the key can post)."""

    def __init__(
        self, token: str, crypto: Decrypter | None = None, *,
        envelope_only: EchoDecrypter | None = None,
        parse: Callable[[str], Any] = parse_message,
    ) -> None:  # fmt: skip
        self.token = token
        self.crypto: Decrypter | None = envelope_only or crypto
        # WeCom: no query signature, every body encrypted, echostr too (its crypto opens it).
        self.envelope_only = envelope_only
        self.parse = parse

    @classmethod
    def official_account(cls, token: str, aes_key: str | None, app_id: str) -> Callback:
        return cls(token, WeChatCrypto(token, aes_key, app_id) if aes_key else None)

    @classmethod
    def wecom(cls, token: str, aes_key: str, corp_id: str) -> Callback:
        return cls(
            token, envelope_only=WeComCrypto(token, aes_key, corp_id), parse=parse_wecom_message
        )

    def verify_url(self, query: dict[str, str]) -> str:
        """The URL check of the account's server settings: echostr back when signed by us
        (WeCom's: decrypted, which proves we hold the key)."""
        if self.envelope_only is not None:
            return self._open_echo(query)
        self._check_signature(query)
        echo = query.get("echostr", "")
        if not echo:
            raise Refused(400, "no echostr")
        return echo

    def open(self, query: dict[str, str], body: bytes) -> CallbackMessage:
        """The message of a POST, after every check; raises Refused."""
        if self.envelope_only is None:
            self._check_signature(query)
        elif not query.get("msg_signature"):
            raise Refused(403, "no msg_signature")
        if len(body) > MAX_BODY_BYTES:
            raise Refused(413, "body too large")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, "body is not UTF-8") from None
        if self.crypto is not None:
            if self.envelope_only is None and query.get("encrypt_type") != "aes":
                raise Refused(403, "safe mode: plain callbacks are refused")
            try:
                text = self.crypto.decrypt_message(
                    text, query.get("msg_signature", ""), query.get("timestamp", ""),
                    query.get("nonce", ""),
                )  # fmt: skip
            except (InvalidSignatureException, InvalidAppIdException, InvalidCorpIdException):
                raise Refused(403, "bad msg_signature or app id") from None
            except Exception:  # not XML, not base64, bad padding: not from WeChat
                raise Refused(400, "undecryptable body") from None
        return _message(text, self.parse)

    def _open_echo(self, query: dict[str, str]) -> str:
        assert self.envelope_only is not None
        echo = query.get("echostr", "")
        if not echo:
            raise Refused(400, "no echostr")
        try:
            opened = self.envelope_only.check_signature(
                query.get("msg_signature", ""), query.get("timestamp", ""),
                query.get("nonce", ""), echo,
            )  # fmt: skip
        except (InvalidSignatureException, InvalidCorpIdException):
            raise Refused(403, "bad msg_signature or corp id") from None
        except Exception:  # not base64, bad padding: not WeCom's
            raise Refused(400, "undecryptable echostr") from None
        return opened.decode("utf-8") if isinstance(opened, bytes) else str(opened)

    def _check_signature(self, query: dict[str, str]) -> None:
        try:
            check_signature(
                self.token, query.get("signature", ""), query.get("timestamp", ""),
                query.get("nonce", ""),
            )  # fmt: skip
        except InvalidSignatureException:
            raise Refused(403, "bad signature") from None


def _message(xml: str, parse: Callable[[str], Any]) -> CallbackMessage:
    try:
        parsed = parse(xml)
    except Exception:  # wechatpy raises whatever xmltodict and its fields raise
        raise Refused(400, "not a WeChat message") from None
    data = getattr(parsed, "_data", None)
    if not isinstance(data, dict):
        raise Refused(400, "not a WeChat message")
    payload = {str(k): v for k, v in data.items() if isinstance(v, str)}
    openid = payload.get("FromUserName", "")
    created = payload.get("CreateTime", "")
    if not openid or not created.isdigit():
        raise Refused(400, "a message without sender or time")
    msg_id = payload.get("MsgId", "")
    # An event has no MsgId: its sender and time name it (WeChat's documented dedupe), plus
    # what it is, so a follow and a menu click in the same second are not taken for one (and
    # for a WeCom card's button, which card: its TaskId).
    event = f"{payload.get('Event', '')}:{payload.get('EventKey', '')}"
    if payload.get("TaskId"):
        event += f":{payload['TaskId']}"
    key = f"m:{msg_id}" if msg_id else f"e:{openid}:{created}:{event}"[:200]
    # The inbox handles a chat's rows in this order; the key's hash only separates messages
    # of the same second (WeChat's times are whole seconds).
    tie = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 1_000_000
    return CallbackMessage(openid, key, int(created) * 1_000_000 + tie, payload)
