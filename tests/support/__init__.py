"""What several test modules share: fixtures (registered in tests/conftest.py) and helpers.

A test module imports from here, never from another test module (tests/test_architecture.py)."""
