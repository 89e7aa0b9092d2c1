"""The channel store port now lives in workflow.channels (storage implements it); re-exported."""

from workflow.channels import (
    ChannelStore,
    ChatBinding,
    Conversation,
    InviteUse,
    Person,
    Place,
    RoleGrant,
)

__all__ = [
    "ChannelStore",
    "ChatBinding",
    "Conversation",
    "InviteUse",
    "Person",
    "Place",
    "RoleGrant",
]
