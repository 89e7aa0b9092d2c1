"""How a command fails: one line on stderr and an exit code, never a traceback."""


class UserError(Exception):
    """A mistake of the person at the keyboard: one line, exit 2, no traceback."""

    exit_code = 2


class Unreachable(UserError):
    """A service the command needs is out of reach (not a mistake; may pass): exit 1."""

    exit_code = 1
