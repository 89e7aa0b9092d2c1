"""The Telegram channel: aiogram adapter, long polling through the inbox, outbox sender."""
