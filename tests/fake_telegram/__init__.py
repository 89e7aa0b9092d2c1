"""A fake Telegram Bot API server on loopback, so end-to-end tests can drive the real aiogram Bot.

The bot under test talks HTTP to this server exactly as it would to api.telegram.org
(`AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))`); the test plays the users by
queueing updates (`send_text`, `send_photo`, `press`, ...) and inspects what the bot did through
`calls`, `sent()` and `wait_sent()`.

It imitates the parts of Telegram's behaviour that tend to catch real bugs: per-chat message ids,
HTML parse-mode validation (stray `<` or unsupported tags are rejected like Telegram does), the
4096/1024 text and caption limits, 64-byte callback data, unknown callback query ids, the 20 MB
getFile limit, getUpdates offset confirmation and the 409 conflict while a webhook is set.
Markdown parse modes are passed through unparsed. Edits (editMessageText, editMessageCaption,
editMessageReplyMarkup) change the stored message (`current()`), refused as Telegram refuses
them: message not found, no text or caption to edit, not modified, too old (`age_out()`).
Methods the bot does not call (copies, deletes...) are answered `true` and recorded.

The package: server (the aiohttp app, recording and dispatch), routes (the Bot API methods),
state (calls, users, chats, messages, files, injected failures), rules (limits, HTML
validation, flood limits) and client (what tests do as users).

Every accepted send is kept in `receipts` (time, chat, cost). `enforce_limits()` turns on
Telegram's flood limits for one bot token: sends over them are answered 429 with a
`retry_after`, and counted in `too_many_requests`. The limits are measured on a clock the test
can inject (its ManualClock), so they hold without any real waiting.
"""

from tests.fake_telegram.rules import ApiError, Receipt, html_to_text
from tests.fake_telegram.server import FakeTelegram
from tests.fake_telegram.state import Call, FakeFile, Upload

__all__ = ["ApiError", "Call", "FakeFile", "FakeTelegram", "Receipt", "Upload", "html_to_text"]
