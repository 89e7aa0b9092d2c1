"""WeChat's state between processes: the API access token, and when each follower last wrote."""

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
