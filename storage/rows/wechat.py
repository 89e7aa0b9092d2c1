"""WeChat's and WeCom's state between processes: the API access token, when each follower last
wrote, and the WeCom cards that can still be updated."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from storage.rows.base import Base, UtcDateTime


class WeChatTokenRow(Base):
    """An API access token with its expiry. WeChat issues one token per account and a new one
    ends the old one soon after: every process reads the same row instead of asking for its own."""

    __tablename__ = "wechat_tokens"
    account: Mapped[str] = mapped_column(String(64), primary_key=True)  # mp:<app_id>, wecom:...
    token: Mapped[str] = mapped_column(String(1024))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    refreshed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WeChatContactRow(Base):
    """When a follower last wrote to the account: customer-service messages reach them only
    within 48 hours of it, template messages after."""

    __tablename__ = "wechat_contacts"
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_inbound_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WeComCardRow(Base):
    """A WeCom template card a member was sent, and the code that lets us update it once.

    WeCom gives a `response_code` when the card is sent and a new one with each press of its
    buttons; each updates the card once (`update_template_card`), within 72 hours. The newest
    unused one is kept here; `task_id` is the card's id, also its message id in message_links."""

    __tablename__ = "wecom_cards"
    account: Mapped[str] = mapped_column(String(64), primary_key=True)  # wecom:<corp>:<agent>
    task_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    userid: Mapped[str] = mapped_column(String(64))
    response_code: Mapped[str | None] = mapped_column(String(512), nullable=True)
    code_at: Mapped[datetime] = mapped_column(UtcDateTime())
