"""Errors a user can act on; only the CLI layer turns them into exit codes."""


class AdaptkitError(Exception):
    """Base error: its message is one line that tells the user what to do."""

    exit_code = 1
    prefix = "error: "


class InputError(AdaptkitError):
    """Bad answers, options or files given by the user."""

    exit_code = 2
