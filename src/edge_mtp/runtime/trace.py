"""Step traces, format `edge-mtp-trace/1` (docs/trace.md): a header line, one line per round, a summary
line, as JSON Lines. Every implementation of the loop writes this so any two runs can be diffed round by
round; `read_trace` is the one reader (the diff, the tests and the profiling parser all use it)."""

from __future__ import annotations

import json
from pathlib import Path

from edge_mtp.atomic import atomic_write
from edge_mtp.errors import EdgeMTPError
from edge_mtp.runtime.loop import Generation, LoopConfig

FORMAT = "edge-mtp-trace/1"
_ROUND_TYPES = {"index": int, "position": int, "drafts": list, "target": list, "accepted": int, "emitted": list}


def trace_lines(gen: Generation, cfg: LoopConfig, implementation: str, model: str) -> list[dict]:
    header = {
        "type": "header", "format": FORMAT, "implementation": implementation, "model": model,
        "prompt_ids": gen.prompt, "draft_len": cfg.draft_len, "max_new_tokens": cfg.max_new_tokens,
        "sampling": cfg.sampling.as_trace() if cfg.sampling else {"mode": "greedy"}, "kv_view": cfg.kv_view,
    }
    return [header, *(r.as_trace() for r in gen.rounds), gen.summary(cfg.draft_len)]


def write_trace(path: Path | str, lines: list[dict]) -> None:
    with atomic_write(path) as f:
        for line in lines:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")


def read_trace(path: Path | str) -> list[dict]:
    """Read a trace and check its shape (header first, summary last, rounds with the fields the diff
    compares); any problem is one EdgeMTPError line naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeMTPError(f"{path}: cannot read ({e.strerror if isinstance(e, OSError) else e})") from None
    lines, numbers = [], []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise EdgeMTPError(f"{path}:{number}: not JSON, truncated? ({e.msg})") from None
        if not isinstance(obj, dict):
            raise EdgeMTPError(f"{path}:{number}: expected a JSON object per line")
        lines.append(obj)
        numbers.append(number)
    if not lines or lines[0].get("type") != "header" or lines[0].get("format") != FORMAT:
        raise EdgeMTPError(f"{path}: not an {FORMAT} trace (the first line must be its header)")
    if lines[-1].get("type") != "summary":
        raise EdgeMTPError(f"{path}: no summary line at the end; truncated trace?")
    for number, obj in zip(numbers[1:-1], lines[1:-1]):
        if obj.get("type") != "round":
            continue
        for key, kind in _ROUND_TYPES.items():
            if not isinstance(obj.get(key), kind):
                raise EdgeMTPError(f"{path}:{number}: round without a valid `{key}`")
    if not isinstance(lines[-1].get("tokens"), list):
        raise EdgeMTPError(f"{path}: summary without `tokens`")
    return lines
