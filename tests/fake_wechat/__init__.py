"""A fake WeChat Official Account on loopback: the API the sender calls (token, customer-service
and template messages, media) with WeChat's rules, and the callbacks WeChat would post."""

from tests.fake_wechat.callbacks import Callbacks
from tests.fake_wechat.server import APP_ID, APP_SECRET, FakeWeChat

__all__ = ["APP_ID", "APP_SECRET", "Callbacks", "FakeWeChat"]
