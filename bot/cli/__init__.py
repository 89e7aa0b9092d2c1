"""The `shuoshi` command line."""
