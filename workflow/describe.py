"""The transition table as Markdown, so docs/workflow.md is generated, never hand-kept."""

from __future__ import annotations

from workflow.guards import Guard
from workflow.model import OPEN_STATES
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


def describe_table() -> str:
    lines = [
        "| event | from | to | roles | guards | emits |",
        "|---|---|---|---|---|---|",
    ]
    for row in TRANSITIONS:
        roles = ", ".join(sorted(r.value for r in row.roles))
        if row.scope is not None:
            roles += f" (scope: {row.scope.value})"
        lines.append(
            f"| {row.action.value} | {_sources(row)} | {_target(row.target)} | {roles} "
            f"| {_guards(row.guards)} | {row.emits.__name__} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(describe_table(), end="")
