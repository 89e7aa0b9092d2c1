"""docs/workflow.md shows the transition table as it is in the code."""

from pathlib import Path

from workflow.describe import describe_states, describe_table

DOC = Path(__file__).resolve().parent.parent / "docs" / "workflow.md"


def test_workflow_doc_contains_the_current_tables():
    doc = DOC.read_text(encoding="utf-8")
    for table in (describe_states(), describe_table()):
        assert table in doc, (
            "docs/workflow.md is stale: regenerate its tables with `python -m workflow.describe`"
        )


def test_the_readme_configuration_example_is_accepted_as_written(tmp_path):
    """The README's shuoshi.toml block is what a newcomer copies: it must load as it stands."""
    from pathlib import Path

    from bot.config import load_settings

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    config = tmp_path / "shuoshi.toml"
    config.write_text(block, encoding="utf-8")
    settings = load_settings(config)
    assert settings.schedule.sweep_every_seconds == 30
    assert str(settings.workflow.policy().reminders["emergency"].before) == "30m"
