"""Reminders and supervision (督办) as messages: the sweeper's hook, writing to the outbox.

The holder's reminders are gathered per chat: a chat with one case due gets that case's card
with its buttons (a reply to it is a progress note); a chat with several gets one list, so a
department group never receives a flood of one message per case. Supervision cards go one per
case, because a supervisor answers a card with an instruction for that case.
"""

from __future__ import annotations

from handlers.card_edits import supervision_context
from handlers.messages import Outgoing
from handlers.ports import CaseCard, chats_of
from handlers.render import Renderer
from handlers.units import (
    HolderUnit,
    card_buttons,
    holder_unit,
    instruct_line,
    superior_unit,
    unit_targets,
)
from workflow.channels import ALL_CHANNELS
from workflow.events import ReminderDue
from workflow.model import Role
from workflow.ports import OutgoingMessage, SweepUnitOfWork

# How many cases one list message names before saying "and N more" (Telegram's 4,096 chars).
LIST_LIMIT = 30
Target = tuple[str, str, str]  # channel, chat id, locale


class ReminderNotifier:
    """The sweeper's reminder hook: outbox rows in the sweep's own transaction."""

    def __init__(
        self, default_locale: str = "zh_CN", enabled: frozenset[str] = ALL_CHANNELS
    ) -> None:
        self.default_locale = default_locale
        self.enabled = enabled  # the channels delivered (bot/app.py): nothing goes to others

    async def __call__(self, uow: SweepUnitOfWork, reminders: list[ReminderDue]) -> None:
        for channel, message in await self.messages(uow, reminders):
            await uow.outbox.add(
                OutgoingMessage(
                    channel=channel,
                    chat_id=message.chat_id,
                    payload=message.payload(),
                    case_number=message.case_number,
                )
            )

    async def messages(
        self, uow: SweepUnitOfWork, reminders: list[ReminderDue]
    ) -> list[tuple[str, Outgoing]]:
        chats = chats_of(uow)
        batches: dict[Target, list[tuple[CaseCard, ReminderDue]]] = {}
        out: list[tuple[str, Outgoing]] = []
        cards: dict[str, CaseCard] = {}
        for reminder in reminders:
            if reminder.case_number not in cards:
                cards[reminder.case_number] = await chats.case_card(reminder.case_number)
            card = cards[reminder.case_number]
            if reminder.audience == "holder":
                holder = holder_unit(card.state, card)
                if holder is None:
                    continue
                for target in await unit_targets(chats, *holder, self.default_locale, self.enabled):
                    batches.setdefault(target, []).append((card, reminder))
            else:
                if reminder.audience == "supervisors":
                    unit = HolderUnit("supervisors", Role.SUPERVISOR, None, None)
                else:
                    unit = superior_unit(card)
                for target in await unit_targets(chats, *unit, self.default_locale, self.enabled):
                    out.append(self._supervision(target, card, reminder, unit.role))
        for target, items in batches.items():
            out.append(self._holder(target, items))
        return out

    def _holder(
        self, target: Target, items: list[tuple[CaseCard, ReminderDue]]
    ) -> tuple[str, Outgoing]:
        channel, chat_id, locale = target
        r = Renderer(locale)
        if len(items) == 1:
            card, reminder = items[0]
            holder = holder_unit(card.state, card)
            role = holder.role if holder else Role.DEPARTMENT_HANDLER
            text = r.macro("chat.html.j2", "reminder_card", card=card, reminder=reminder)
            return channel, Outgoing(
                chat_id=chat_id, text=text, buttons=card_buttons(r, card, role),
                case_number=card.number, purpose="case_card",
            )  # fmt: skip
        shown = sorted(items, key=lambda i: i[1].stage_due_at)[:LIST_LIMIT]
        text = r.macro("chat.html.j2", "reminder_list", items=shown, more=len(items) - len(shown))
        return channel, Outgoing(chat_id=chat_id, text=text, purpose="reminder_list")

    def _supervision(
        self, target: Target, card: CaseCard, reminder: ReminderDue, role: Role
    ) -> tuple[str, Outgoing]:
        """One case's supervision card, with what the table offers the unit told (a
        supervisor's instruction button; a superior unit's own actions, if any)."""
        channel, chat_id, locale = target
        r = Renderer(locale)
        holder = holder_unit(card.state, card)
        instruct_by = instruct_line(channel, role)
        text = r.macro(
            "chat.html.j2", "supervision_card", card=card, reminder=reminder,
            holder=holder.purpose if holder else "none", instruct_by=instruct_by,
        )  # fmt: skip
        return channel, Outgoing(
            chat_id=chat_id, text=text, photos=card.report_photos[:1],
            buttons=card_buttons(r, card, role), case_number=card.number, purpose="supervision",
            context=supervision_context(role, reminder),
        )  # fmt: skip
