"""Step traces, format `edge-mtp-trace/1` (shared/contracts/trace-v1.md): a header line, one line per
round, a summary line, as JSON Lines. Every implementation of the loop writes this so any two runs can
be diffed round by round."""

from __future__ import annotations

import json
from pathlib import Path

from edge_mtp.atomic import atomic_write
from edge_mtp.errors import EdgeMTPError
from edge_mtp.runtime.loop import Generation, LoopConfig

FORMAT = "edge-mtp-trace/1"


def trace_lines(gen: Generation, cfg: LoopConfig, implementation: str, model: str) -> list[dict]:
    header = {
        "type": "header", "format": FORMAT, "implementation": implementation, "model": model,
        "prompt_ids": gen.prompt, "draft_len": cfg.draft_len, "max_new_tokens": cfg.max_new_tokens,
        "sampling": cfg.sampling.as_trace() if cfg.sampling else {"mode": "greedy"}, "kv_view": cfg.kv_view,
    }
    if cfg.auto:  # `--draft-len auto`: the policy and the costs it decided from (draftlen.py)
        header.update(draft_len="auto", draft_policy=cfg.auto.as_trace(),
                      draft_costs_from="calibration" if cfg.auto.costs.calibrated else "given")
    return [header, *(r.as_trace() for r in gen.rounds), gen.summary(cfg.draft_len)]


def write_trace(path: Path | str, lines: list[dict]) -> None:
    with atomic_write(path) as f:
        for line in lines:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")


def read_trace(path: Path | str) -> list[dict]:
    """Read and minimally validate a trace: header first, summary last, rounds in between."""
    try:
        lines = [json.loads(s) for s in Path(path).read_text().splitlines() if s.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise EdgeMTPError(f"{path}: not a readable JSON Lines trace ({e})") from None
    if not lines or lines[0].get("format") != FORMAT or lines[-1].get("type") != "summary":
        raise EdgeMTPError(f"{path}: not an {FORMAT} trace (header first, summary last)")
    return lines
