"""Errors a user can act on; only the CLI layer turns them into exit codes."""


class AdaptkitError(Exception):
    """Base error: its message is one line that tells the user what to do."""

    exit_code = 1
    prefix = "error: "


class InputError(AdaptkitError):
    """Bad answers, options or files given by the user."""

    exit_code = 2


class Cancelled(AdaptkitError):
    """Ctrl-C: the message says what was kept, if anything."""

    exit_code = 130
    prefix = ""


class RenamedSetting(FutureWarning):
    """A recipe used the old name of a renamed setting: it still reads; the message names the new one."""


def brief(value: object, limit: int = 60) -> str:
    """A value's repr, cut to `limit` characters: user input never floods a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(text: object) -> str:
    """Text with control characters (newlines included) made spaces: safe in one message line or a `#` comment."""
    return "".join(ch if ch >= " " and ch != "\x7f" else " " for ch in str(text))
