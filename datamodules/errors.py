"""User-facing data errors: each carries one line that says what is wrong and what to do. The CLI prints them without
a stack trace (``DataError`` is a ``gan_modules.errors.UserError``, the one base of every user error)."""

from gan_modules.errors import UserError


class DataError(UserError):
    """A data problem the user can fix: missing or corrupt files, an empty folder, an impossible size or split."""
