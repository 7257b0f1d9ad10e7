"""User-facing errors.

Every problem a user can cause (bad checkpoint, mismatched drafter, bad flag) is raised as `EdgeMTPError`
with a one-line message naming the file/field and what was expected; the CLI prints it without a
traceback and exits non-zero.
"""


class EdgeMTPError(Exception):
    """A user-facing error: its message is one clear line."""
