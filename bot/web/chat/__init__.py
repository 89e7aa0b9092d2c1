"""The web chat: a browser channel on the same conversations and outbox."""
