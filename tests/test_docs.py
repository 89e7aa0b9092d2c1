"""docs/workflow.md shows the transition table as it is in the code."""

from pathlib import Path

from workflow.describe import describe_table

DOC = Path(__file__).resolve().parent.parent / "docs" / "workflow.md"


def test_workflow_doc_contains_the_current_table():
    assert describe_table() in DOC.read_text(encoding="utf-8"), (
        "docs/workflow.md is stale: regenerate the table with `python -m workflow.describe`"
    )
