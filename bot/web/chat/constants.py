"""The web chat's limits, patterns and paths."""

from __future__ import annotations

import re
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {
    "chat.js": "application/javascript",
    "chat_updates.js": "application/javascript",  # redraws a message the server edited
    "chat.css": "text/css",
}
LABELS = "web/webchat_labels.j2"
HISTORY_PAGE = 200  # messages a page shows; older ones stay in web_messages
TEXT_LIMIT = 4096  # as Telegram: longer texts are cut (the page's text box stops there too)
FILES_PER_POST = 20
KEY = re.compile(r"[A-Za-z0-9_-]{8,40}")
PHONE = re.compile(r"\+?[0-9][0-9 -]{4,19}")
GRID_CODE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# What a forged button press is turned into: data no flow takes, so it gets the "expired"
# answer (or the step's "use the buttons"), exactly like an outdated Telegram button.
STALE_PRESS = "stale"
# Seconds between rereads of an open chat's history while the database's wake-ups from other
# processes are not heard (storage/wakeups.py: the listener is reconnecting).
POLL_SECONDS = 1.0


def chat_pattern(demo: bool) -> str:
    """Production serves residents' random-token chats only; the demo also people's chats."""
    token = r"r-[A-Za-z0-9_-]{20,62}"
    return f"(?:{token}|p-[A-Za-z0-9._-]{{1,60}})" if demo else token
