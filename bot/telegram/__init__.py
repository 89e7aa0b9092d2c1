"""The Telegram channel: aiogram adapter, long polling through the inbox, outbox sender."""

# Where Telegram posts updates in webhook mode (kept here: importing it loads no aiogram).
WEBHOOK_PATH = "/telegram/webhook"
