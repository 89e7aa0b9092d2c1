"""SQLAlchemy rows: the schema every migration builds and every repository reads.

Importing this package defines every table on Base.metadata, which Alembic and
tests/test_schema_drift.py compare with the migrations: a new row module is imported here.
"""

from storage.rows.base import NAMING, Base, UtcDateTime
from storage.rows.cases import (
    AttachmentRow,
    CaseAttachmentRow,
    CaseCounterRow,
    CaseReminderRow,
    CaseRow,
    TransitionRow,
)
from storage.rows.messaging import (
    ChatBindingRow,
    ConversationRow,
    IdentityRow,
    InboxRow,
    InviteRow,
    MessageLinkRow,
    OutboxRow,
    ProcessedUpdateRow,
    WebMessageRow,
)
from storage.rows.operations import (
    DashboardSessionRow,
    DashboardUserRow,
    DigestRunRow,
    GenerationRow,
    LeaseRow,
)
from storage.rows.org import (
    AreaRow,
    CalendarDayRow,
    CalendarYearRow,
    CategoryRow,
    DepartmentRow,
    PersonRow,
    ResponsibilityRow,
    RoleAssignmentRow,
)
from storage.rows.wechat import WeChatContactRow, WeChatTokenRow, WeComCardRow

__all__ = [
    "NAMING",
    "AreaRow",
    "AttachmentRow",
    "Base",
    "CalendarDayRow",
    "CalendarYearRow",
    "CaseAttachmentRow",
    "CaseCounterRow",
    "CaseReminderRow",
    "CaseRow",
    "CategoryRow",
    "ChatBindingRow",
    "ConversationRow",
    "DashboardSessionRow",
    "DashboardUserRow",
    "DepartmentRow",
    "DigestRunRow",
    "GenerationRow",
    "IdentityRow",
    "InboxRow",
    "InviteRow",
    "LeaseRow",
    "MessageLinkRow",
    "OutboxRow",
    "PersonRow",
    "ProcessedUpdateRow",
    "ResponsibilityRow",
    "RoleAssignmentRow",
    "TransitionRow",
    "UtcDateTime",
    "WeChatContactRow",
    "WeChatTokenRow",
    "WeComCardRow",
    "WebMessageRow",
]
