"""What the commands share: the parameter types (`--draft-len`, id and length lists, output paths), the
one rule for output folders, and the progress bar.

Output rule: a command writes into an existing folder and never creates missing parents; a missing one is
a one-line error naming it, raised while the arguments are parsed, so before any model is loaded.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from edge_mtp.atomic import require_parent
from edge_mtp.errors import EdgeMTPError

# Every command: defaults shown in --help, -h as well as --help.
CONTEXT = {"show_default": True, "max_content_width": 110, "help_option_names": ["-h", "--help"]}


def draft_len(text: str) -> int:
    """`--draft-len K`: drafts per round, K >= 0 (0 = plain decoding)."""
    try:
        k = int(text)
    except ValueError:
        raise EdgeMTPError(f"expected a non-negative integer, got {text!r}") from None
    if k < 0:
        raise EdgeMTPError(f"expected a non-negative integer, got {text!r}")
    return k


def draft_lens(text: str) -> tuple[int, ...]:
    """`bench --draft-len 0,1,2`: the K values to sweep, each parsed as `draft_len`."""
    ks = tuple(draft_len(t.strip()) for t in text.split(",") if t.strip())
    if not ks:
        raise EdgeMTPError(f"expected comma-separated draft lengths, got {text!r}")
    return ks


def token_ids(text: str) -> list[int]:
    """`--prompt-ids 2,17,300` (an empty list is left to the run, which names the empty prompt)."""
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise EdgeMTPError(f"expected comma-separated token ids, got {text!r}") from None


def lengths(text: str) -> tuple[int, ...]:
    """`--prefill 32,128`: positive lengths."""
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise EdgeMTPError(f"expected comma-separated positive lengths, got {text!r}")
    return values


class Parsed(click.ParamType):
    """A click type from a parse function; its EdgeMTPError becomes click's usage error (one line)."""

    def __init__(self, parse: Callable[[str], object], name: str):
        self.parse, self.name = parse, name

    def convert(self, value, param, ctx):
        if not isinstance(value, str):  # a default, already parsed
            return value
        try:
            return self.parse(value)
        except EdgeMTPError as e:
            self.fail(str(e), param, ctx)


DRAFT_LEN = Parsed(draft_len, "K")
DRAFT_LENS = Parsed(draft_lens, "K,K,...")
TOKEN_IDS = Parsed(token_ids, "ID,ID,...")
LENGTHS = Parsed(lengths, "N,N,...")
OUTPUT = Parsed(require_parent, "PATH")  # a file or folder the command writes


def progress():
    """The rich progress bar of long work (checkpoint making, distillation, export)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), transient=False)


def summary_line(summary: dict) -> str:
    """A trace summary in one line. Acceptance per draft slot i: of the rounds that offered a draft in slot
    i, the share in which drafts 0..i were all accepted (not conditional on the earlier slots, so it never
    rises with i); the prefill counts as the first round."""
    slots = ", ".join(f"{a:.2f}" for a in summary["accepted_per_position"]) or "-"
    return (f"tokens {len(summary['tokens'])} | rounds {summary['rounds']} | acceptance per draft slot [{slots}] "
            f"| mean tokens/round {summary['mean_emitted_per_round']:.2f} | stop {summary['stop']}")
