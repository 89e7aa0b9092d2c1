"""The state and transition tables as Markdown, so docs/workflow.md is generated, never
hand-kept (`python -m workflow.describe` prints both; tests/test_docs.py compares)."""

from __future__ import annotations

from workflow.guards import Guard
from workflow.model import Role
from workflow.states import OPEN_STATES, STATES, Phase, StateInfo
from workflow.table import TRANSITIONS, NextOnRoute, Same, Target, Transition


def _target(target: Target) -> str:
    if isinstance(target, Same):
        return "(stays)"
    if isinstance(target, NextOnRoute):
        return f"next on route after {target.after.value}" if target.after else "first on route"
    return target.value


def _sources(row: Transition) -> str:
    if row.sources == OPEN_STATES:
        return "any open state"
    return ", ".join(sorted(s.value for s in row.sources))


def _guards(guards: tuple[Guard, ...]) -> str:
    return ", ".join(g.name for g in guards) or "-"


def _screen(row: Transition) -> str:
    screen = row.screen
    if screen is None or row.roles <= {Role.SYSTEM}:
        return "-"
    return f"`{screen.code}` {screen.label}"


def _asks(row: Transition) -> str:
    screen = row.screen
    return screen.asks.value if screen is not None and not row.roles <= {Role.SYSTEM} else "-"


def _marks(info: StateInfo) -> str:
    marks = [m for m, on in (("result", info.result), ("unrated", info.unrated)) if on]
    return f" ({', '.join(marks)})" if marks else ""


def describe_states() -> str:
    lines = [
        "| state | meaning | holder | stage limit | phase | reporter sees |",
        "|---|---|---|---|---|---|",
    ]
    for state, info in STATES.items():
        if info.phase is Phase.DRAFT:
            continue
        seen = info.reporter_sees.value if info.reporter_sees else "(itself)"
        lines.append(
            f"| {state.value} | {info.meaning} | {info.holder.value} | {info.stage or '-'} "
            f"| {info.phase.value}{_marks(info)} | {seen} |"
        )
    return "\n".join(lines) + "\n"


def describe_table() -> str:
    lines = [
        "| event | from | to | roles | guards | emits | button | asks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in TRANSITIONS:
        roles = ", ".join(sorted(r.value for r in row.roles))
        if row.scope is not None:
            roles += f" (scope: {row.scope.value})"
        lines.append(
            f"| {row.action.value} | {_sources(row)} | {_target(row.target)} | {roles} "
            f"| {_guards(row.guards)} | {row.emits.__name__} | {_screen(row)} | {_asks(row)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(describe_states())
    print(describe_table(), end="")
