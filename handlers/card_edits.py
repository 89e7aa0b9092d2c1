"""Cards already out follow their case: when a case moves on, every message showing it (its
cards, the rating buttons, the supervision cards) is edited to the case as it is now, with only
the buttons that still work in that chat. Run by the Notifier before the new messages go out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from handlers.messages import Outgoing
from handlers.ports import CaseCard
from handlers.render import Renderer
from handlers.telling import Telling, Told
from handlers.units import (
    HolderUnit,
    card_buttons,
    holder_unit,
    instruct_line,
    private_chats,
    rating_buttons,
    unit_targets,
)
from workflow.channels import ShownMessage
from workflow.events import CaseEvent, CaseReclassified, CaseReported, ReminderDue
from workflow.model import Action, Role, State
from workflow.table import offered_actions

# Messages that show a case and are edited in place when it moves on; only the newest of them
# (a case that sat overdue collects a reminder card a day), older ones stay as they were sent.
# A supervision card (handlers/reminders.py) follows its case too: its instruct button works
# while the case is open, the buttons of the state it was sent in do not.
SHOWN_PURPOSES = frozenset({"case_card", "rating", "supervision"})
EDIT_LIMIT = 20
# Channels that can change a message they sent. A WeChat message is final (a customer-service
# or template message cannot be edited), so its cards are not edited; its buttons are checked
# when pressed, like every outdated button. WeCom updates its template cards in place.
EDITABLE_CHANNELS = frozenset({"telegram", "web", "wecom"})


def supervision_context(role: Role, reminder: ReminderDue) -> dict[str, Any]:
    """What a supervision card's edits need that the case will no longer say (kept with the
    sent message, Outgoing.context): the role it was sent to (a supervisor's card sent to a
    private chat keeps its instruct button when a supervisors' group is bound later, whatever
    today's bindings say) and the stage that was overdue, and when it was due."""
    return {
        "role": role.value,
        "state": reminder.state.value,
        "stage_due_at": reminder.stage_due_at.isoformat(),
    }


def _moves_on(event: CaseEvent) -> bool:
    """Whether what a card shows changes: a new state, or a new category (and limits)."""
    return event.from_state is not event.to_state or isinstance(event, CaseReclassified)


async def keep_cards_true(telling: Telling, events: list[CaseEvent]) -> Told:
    """An edit for every message already showing a case that moved on: the card as it is now,
    with only the buttons that still work in that chat (those of the unit holding the case,
    in the holder's chats; none elsewhere), and the rating buttons only while it can be rated.
    A card still waiting in the outbox is rewritten the same way instead (any channel)."""
    out: Told = []
    # A case reported in this batch is shown nowhere yet: its first cards come after this.
    new = {event.case_number for event in events if isinstance(event, CaseReported)}
    last = {
        event.case_number: event
        for event in events
        if _moves_on(event) and event.case_number not in new
    }
    for number, event in last.items():
        shown = [
            message
            for message in await telling.chats.messages_showing(number, SHOWN_PURPOSES, EDIT_LIMIT)
            if message.channel in EDITABLE_CHANNELS or message.pending_row is not None
        ]
        if not shown:
            continue
        card = await telling.card(number)
        holder = holder_unit(card.state, card)
        locales: dict[tuple[str, str], str] = {}
        if holder is not None:
            for channel, chat_id, locale in await unit_targets(
                telling.chats, *holder, telling.default_locale, telling.enabled
            ):
                locales[(channel, chat_id)] = locale
        held_by = set(locales)
        # Only a supervision card sent before its role was kept needs today's bindings.
        supervising = await _supervisor_chats(
            telling,
            [m for m in shown if m.purpose == "supervision" and _sent_to(m) is None],
            locales,
        )
        if card.reporter_id is not None and any(m.purpose == "rating" for m in shown):
            for channel, chat_id, locale in await private_chats(
                telling.chats, card.reporter_id, telling.enabled
            ):
                locales.setdefault((channel, chat_id), locale)
        for message in shown:
            key = (message.channel, message.chat_id)
            # The holder's chats as they are told; any other chat in its own person's language.
            r = Renderer(locales.get(key) or message.locale or telling.default_locale)
            edit = Outgoing(
                chat_id=message.chat_id, text="", edit_message_id=message.message_id,
                edit_caption=message.caption, case_number=number, purpose=message.purpose,
            )  # fmt: skip
            if message.purpose == "rating":  # the result stays; its buttons go once rated
                edit.buttons = rating_buttons(r, number) if card.state == "resolved" else []
            elif message.purpose == "supervision":
                role = holder.role if holder is not None and key in held_by else None
                role = role or _supervisor_role(message, key in supervising)
                edit.buttons = card_buttons(r, card, role) if role is not None else []
                edit.text = _supervision_text(r, card, event, holder, message, role)
            else:
                edit.text = r.macro("chat.html.j2", "case_card", card=card, event=event)
                if holder is not None and key in held_by:
                    edit.buttons = card_buttons(r, card, holder.role)
            if message.pending_row is not None:
                # Not sent yet: it goes out as the case is now, and needs no edit.
                changes = {"buttons": edit.payload()["buttons"]}
                if edit.text:
                    changes["text"] = edit.text
                await telling.uow.outbox.rewrite(message.pending_row, changes)
                continue
            out.append((message.channel, edit))
    return out


def _sent_to(message: ShownMessage) -> Role | None:
    """The role a card was sent to, as kept with it; None for a card sent before it was kept."""
    role = (message.context or {}).get("role")
    return Role(role) if role else None


def _supervisor_role(message: ShownMessage, supervisors_chat: bool) -> Role | None:
    """A supervision card not in the holder's chats still offers the supervisor's actions
    (the instruct button) if it was sent to supervisors; a superior unit's card (a
    township's, the county center's) offers nothing there. A card sent before the role was
    kept goes by today's bindings (`supervisors_chat`)."""
    sent_to = _sent_to(message)
    if sent_to is None:
        return Role.SUPERVISOR if supervisors_chat else None
    return Role.SUPERVISOR if sent_to is Role.SUPERVISOR else None


def _supervision_text(
    r: Renderer, card: CaseCard, event: CaseEvent, holder: HolderUnit | None,
    message: ShownMessage, role: Role | None,
) -> str:  # fmt: skip
    """A supervision card as its case is now. Like the card first sent (handlers/reminders.py),
    it says which stage was overdue and when it was due, and how to give an instruction (a
    reply where the channel has replies, else the supervisor's button), but only while the
    table still takes one."""
    instruct_by = None
    if Action.SUPERVISE in offered_actions(State(card.state), Role.SUPERVISOR):
        instruct_by = instruct_line(message.channel, role)
    context = message.context or {}
    overdue = None
    if context.get("state") and context.get("stage_due_at"):
        overdue = {
            "state": context["state"],
            "stage_due_at": datetime.fromisoformat(context["stage_due_at"]),
        }
    return r.macro(
        "chat.html.j2", "supervision_card_now", card=card, event=event,
        holder=holder.purpose if holder else "none", instruct_by=instruct_by, overdue=overdue,
    )  # fmt: skip


async def _supervisor_chats(
    telling: Telling, shown: list[ShownMessage], locales: dict[tuple[str, str], str]
) -> set[tuple[str, str]]:
    """The chats where supervisors read supervision cards today, for the cards of `shown`
    (sent before their role was kept with them): the supervisors' and the leaders' (the second
    level above the county center). Their locales join `locales`, like the holder's chats."""
    if not shown:
        return set()
    found: set[tuple[str, str]] = set()
    for purpose in ("supervisors", "leaders"):
        for channel, chat_id, locale in await unit_targets(
            telling.chats,
            purpose,
            Role.SUPERVISOR,
            None,
            None,
            telling.default_locale,
            telling.enabled,
        ):
            locales.setdefault((channel, chat_id), locale)
            found.add((channel, chat_id))
    return found
