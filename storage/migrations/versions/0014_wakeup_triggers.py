"""PostgreSQL: the wake-ups of other processes are sent by the database itself, from triggers on
the tables whose new rows someone must act on (storage/wakeups.py): an INSERT into `outbox`
notifies `outbox:<channel>`, one into `web_messages` notifies `web:<chat id>`, on the channel
"shuoshi.<current schema>" the listener LISTENs on. A NOTIFY is transactional (sent on commit,
never for a rollback, the same topic once per transaction), as the application's own NOTIFY
statement was; the trigger saves that statement in every turn, and also wakes others for rows
that no unit of work announced (a session committed directly, an edit a sender queued).
Statement-level, with the statement's new rows as a transition table: a turn's outbox INSERT of
several rows notifies once per channel. SQLite has one process: nothing to do.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, function, trigger, the topic of a new row): the topics of storage/wakeups.py
# outbox_topic and chat_topic, the channel name of its listener (_CHANNEL_PREFIX + the schema).
_WAKEUPS = (
    ("outbox", "shuoshi_wake_outbox", "outbox_wakeup", "'outbox:' || channel"),
    ("web_messages", "shuoshi_wake_web_chat", "web_messages_wakeup", "'web:' || chat_id"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, function, trigger, topic in _WAKEUPS:
        op.execute(f"""
            CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('shuoshi.' || current_schema(), topic)
                FROM (SELECT DISTINCT {topic} AS topic FROM new_rows) AS topics;
                RETURN NULL;
            END
            $$
        """)
        op.execute(f"""
            CREATE TRIGGER {trigger} AFTER INSERT ON {table}
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION {function}()
        """)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, function, trigger, _topic in _WAKEUPS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
