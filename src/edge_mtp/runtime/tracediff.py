"""The one trace comparison: `diff_traces` (what `edge-mtp trace diff A B` and every parity test run)
compares two `edge-mtp-trace/1` step traces round by round (docs/trace.md#what-a-diff-compares).

This is how CI and a developer with a phone check a device trace (Android, iOS, the JVM or Swift layer,
the C CLI) against the Python reference. What must match exactly:

* header: `format`, `model`, `prompt_ids`, `draft_len`, `max_new_tokens`, `sampling`, `kv_view` (a trace
  without it means the default "hf"). `model` (the export's manifest hash, or the checkpoints' hash) must
  match: two different models are not a parity comparison. A LiteRT bundle and an ONNX export of the
  same checkpoints have different ids; `ignore_model` (`--ignore-model`) compares them anyway and
  reports the two ids as a note instead of a difference. `implementation` is shown but never compared.
* every round: `index`, `position`, `drafts`, `target`, `accepted`, `emitted`; `top_logits` ids exactly
  and values within `logit_tol` (absolute) when both rounds have them.
* summary: `tokens`, `rounds`, `drafted`, `accepted`, `stop`; `accepted_per_position` and
  `mean_emitted_per_round` within 1e-9 (they are ratios of the integers above).

Ignored: `ms` (timings), `implementation`, and any field the contract does not name. The tolerance is
always the caller's choice: same library on the same machine gives equal logits (parity tests use
1e-4); device kernels sum in another order (the CLI defaults to 1e-3).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from edge_mtp.errors import EdgeMTPError
from edge_mtp.runtime.trace import read_trace

# The CLI's default: device kernels (arm64 XNNPACK, GPU delegates) sum in another order than the desktop
# wheel. Same-machine runs: pass --logit-tol 1e-4 (or smaller).
DEFAULT_LOGIT_TOL = 1e-3
RATIO_TOL = 1e-9
DEFAULT_KV_VIEW = "hf"
HEADER_KEYS = ("format", "model", "prompt_ids", "draft_len", "max_new_tokens", "sampling")
ROUND_KEYS = ("index", "position", "drafts", "target", "accepted", "emitted")
SUMMARY_KEYS = ("tokens", "rounds", "drafted", "accepted", "accepted_per_position", "mean_emitted_per_round",
                "stop")


@dataclass
class Difference:
    where: str          # "header", "round 3", "summary", "rounds"
    key: str
    a: object
    b: object
    round: int | None = None  # round index for round differences

    def line(self) -> str:
        return f"{self.where} {self.key}: {_short(self.a)} != {_short(self.b)}"


@dataclass
class TraceDiff:
    a: list[dict]
    b: list[dict]
    logit_tol: float
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was deliberately not compared (--ignore-model)
    max_logit_delta: float = 0.0
    logits_compared: int = 0  # rounds whose top_logits were compared

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def first(self) -> Difference | None:
        return self.differences[0] if self.differences else None

    def rounds(self, which: str) -> list[dict]:
        return [x for x in (self.a if which == "a" else self.b) if x.get("type") == "round"]

    def report(self, limit: int = 10) -> str:
        """The differences as lines (for an assertion message)."""
        more = len(self.differences) - limit
        return "\n".join([x.line() for x in self.differences[:limit]] + ([f"... {more} more"] if more > 0 else []))


def _short(value, limit: int = 80) -> str:
    text = json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _close(x, y, tol: float) -> bool:
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_close(u, v, tol) for u, v in zip(x, y))
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
        return abs(x - y) <= tol
    return x == y


def _top_logits(r: dict):
    top = r.get("top_logits")
    if not isinstance(top, list):
        return None
    try:
        return [(int(i), float(v)) for i, v in top]
    except (TypeError, ValueError):
        return None


def diff_traces(a: list[dict], b: list[dict], logit_tol: float, ignore_model: bool = False) -> TraceDiff:
    """Every difference between two traces read by `read_trace`, in trace order (header, rounds,
    summary). `logit_tol` bounds |top-logit difference|; `ignore_model` turns a `model` mismatch into a
    note (the same pair exported to two formats)."""
    if not logit_tol >= 0:
        raise EdgeMTPError(f"the logit tolerance must be >= 0, got {logit_tol}")
    d = TraceDiff(a, b, logit_tol)
    ha, hb = a[0], b[0]
    for key in HEADER_KEYS:
        if ha.get(key) == hb.get(key):
            continue
        if key == "model" and ignore_model:
            d.notes.append(f"model ids differ (A {ha.get(key)}, B {hb.get(key)}); compared anyway (--ignore-model)")
        else:
            d.differences.append(Difference("header", key, ha.get(key), hb.get(key)))
    view_a, view_b = ha.get("kv_view", DEFAULT_KV_VIEW), hb.get("kv_view", DEFAULT_KV_VIEW)
    if view_a != view_b:
        d.differences.append(Difference("header", "kv_view", view_a, view_b))
    ra, rb = d.rounds("a"), d.rounds("b")
    for n, (x, y) in enumerate(zip(ra, rb)):
        for key in ROUND_KEYS:
            if x.get(key) != y.get(key):
                d.differences.append(Difference(f"round {n}", key, x.get(key), y.get(key), n))
        tx, ty = _top_logits(x), _top_logits(y)
        if tx is None or ty is None:
            continue
        d.logits_compared += 1
        ids_x, ids_y = [i for i, _ in tx], [i for i, _ in ty]
        if ids_x != ids_y:
            d.differences.append(Difference(f"round {n}", "top_logits ids", ids_x, ids_y, n))
        deltas = [abs(u - v) for (_, u), (_, v) in zip(tx, ty)]
        worst = float("inf") if any(math.isnan(x) for x in deltas) else max(deltas, default=0.0)
        d.max_logit_delta = max(d.max_logit_delta, worst)
        if worst > logit_tol:
            d.differences.append(Difference(f"round {n}", f"top_logits |delta| {worst:.3g} > {logit_tol:g}",
                                            [v for _, v in tx], [v for _, v in ty], n))
    if len(ra) != len(rb):
        d.differences.append(Difference("rounds", "count", len(ra), len(rb), min(len(ra), len(rb))))
    sa, sb = a[-1], b[-1]
    for key in SUMMARY_KEYS:
        x, y = sa.get(key), sb.get(key)
        same = _close(x, y, RATIO_TOL) if key in ("accepted_per_position", "mean_emitted_per_round") else x == y
        if not same:
            d.differences.append(Difference("summary", key, x, y))
    return d


def _first_token_divergence(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def render(d: TraceDiff, names: tuple[str, str], rows: int = 24, console=None) -> None:
    """Print the verdict, the first divergence and a side-by-side table of (at most `rows`) rounds."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    ha, hb = d.a[0], d.b[0]
    console.print(f"A: {names[0]}  ({ha.get('implementation', '?')}, model {ha.get('model', '?')})")
    console.print(f"B: {names[1]}  ({hb.get('implementation', '?')}, model {hb.get('model', '?')})")
    for note in d.notes:
        console.print(Text(f"note: {note}", style="yellow"))
    header_diffs = [x for x in d.differences if x.where == "header"]
    for x in header_diffs:
        console.print(Text(f"header {x.key}: A {_short(x.a)}  B {_short(x.b)}", style="red"))

    ra, rb = d.rounds("a"), d.rounds("b")
    bad_rounds = {x.round for x in d.differences if x.round is not None}
    n = max(len(ra), len(rb))
    first_bad = min(bad_rounds) if bad_rounds else None
    if n:
        start = 0 if first_bad is None else max(0, first_bad - rows // 4)
        stop = min(n, start + rows)
        table = Table(title=f"rounds {start}..{stop - 1} of {n}", show_lines=False)
        for col in ("round", "pos", "drafts A", "drafts B", "acc A/B", "emitted A", "emitted B",
                    "|dlogit|", ""):
            table.add_column(col, overflow="fold", no_wrap=col in ("round", "pos", "acc A/B", "|dlogit|", ""))

        def ids(r, key):
            v = r.get(key)
            return " ".join(map(str, v)) if isinstance(v, list) else _short(v, 40)

        def cell(x, y, key):
            vx = "-" if x is None else ids(x, key)
            vy = "-" if y is None else ids(y, key)
            style = "" if x is not None and y is not None and x.get(key) == y.get(key) else "red"
            return Text(vx, style=style), Text(vy, style=style)

        for i in range(start, stop):
            x = ra[i] if i < len(ra) else None
            y = rb[i] if i < len(rb) else None
            dx, dy = cell(x, y, "drafts")
            ex, ey = cell(x, y, "emitted")
            acc = f"{'-' if x is None else x.get('accepted')}/{'-' if y is None else y.get('accepted')}"
            acc_style = "" if x is not None and y is not None and x.get("accepted") == y.get("accepted") else "red"
            pos = str((x or y).get("position"))
            tx, ty = (_top_logits(x) if x else None), (_top_logits(y) if y else None)
            delta = "n/a"
            if tx is not None and ty is not None:
                delta = f"{max((abs(u - v) for (_, u), (_, v) in zip(tx, ty)), default=0.0):.1e}"
            verdict = Text("DIFF", style="bold red") if i in bad_rounds else Text("ok", style="green")
            table.add_row(str(i), pos, dx, dy, Text(acc, style=acc_style), ex, ey, delta, verdict)
        console.print(table)
        if stop < n or start > 0:
            console.print(f"({n - (stop - start)} more rounds not shown; --rows N shows more)")

    ta, tb = d.a[-1].get("tokens", []), d.b[-1].get("tokens", [])
    if d.ok:
        console.print(Text(
            f"MATCH: {len(ra)} rounds, {len(ta)} tokens, drafts/accepted equal; max |dlogit| "
            f"{d.max_logit_delta:.2e} <= {d.logit_tol:g} over {d.logits_compared} rounds", style="bold green"))
        return
    first = d.first
    at = _first_token_divergence(ta, tb)
    token_note = f"; tokens first differ at index {at}" if at is not None else ""
    console.print(Text(f"MISMATCH ({len(d.differences)} differences): first divergence: {first.line()}{token_note}",
                       style="bold red"))
    for x in d.differences[1:6]:
        console.print(f"  then: {x.line()}")
    if len(d.differences) > 6:
        console.print(f"  ... {len(d.differences) - 6} more")


def diff_files(a: Path | str, b: Path | str, logit_tol: float, ignore_model: bool = False, rows: int = 24,
               as_json: bool = False) -> int:
    """`edge-mtp trace diff A B`: print the verdict (a table, or JSON) and return the exit code:
    0 = parity, 1 = mismatch; an unreadable input raises EdgeMTPError (exit 2)."""
    d = diff_traces(read_trace(a), read_trace(b), logit_tol, ignore_model)
    if as_json:
        print(json.dumps({"match": d.ok, "max_logit_delta": d.max_logit_delta, "logit_tol": d.logit_tol,
                          "notes": d.notes, "differences": [x.line() for x in d.differences]}))
    else:
        render(d, (str(a), str(b)), rows=rows)
    return 0 if d.ok else 1
