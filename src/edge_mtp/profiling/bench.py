"""The demo apps' benchmark result, `bench.json` (format `edge-mtp-bench/1`, profiling/README.md).

Required: format, platform ("android" | "ios"), mtp (bool), draft_len, tokens_generated (measured
repetitions only, warm-up excluded), wall_time_s (same repetitions). Optional: window_boottime_ns
[start, end] (Android: SystemClock.elapsedRealtimeNanos() around the measured repetitions, the clock
Perfetto's counters use), traces (edge-mtp-trace/1 files, one per measured repetition, relative to
bench.json), repetitions, warmup, bundle, device, thermal_status {start, end}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edge_mtp.errors import EdgeMTPError
from edge_mtp.profiling._files import bad_file, read_text

FORMAT = "edge-mtp-bench/1"
EXPECTED = f"an {FORMAT} benchmark result (JSON)"
REQUIRED = {"platform": str, "mtp": bool, "draft_len": int, "tokens_generated": int, "wall_time_s": (int, float)}


@dataclass
class Bench:
    path: str
    platform: str
    mtp: bool
    draft_len: int
    tokens: int
    wall_time_s: float
    window_ns: tuple[int, int] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"MTP on (K={self.draft_len})" if self.mtp else "MTP off"


def _trace_tokens(path: Path, names: list[str]) -> int:
    from edge_mtp.runtime.trace import read_trace

    total = 0
    for name in names:
        total += len(read_trace(path.parent / name)[-1]["tokens"])
    return total


def parse_bench(path: Path | str) -> Bench:
    path = Path(path)
    try:
        doc = json.loads(read_text(path, EXPECTED))
    except json.JSONDecodeError as e:
        raise bad_file(path, EXPECTED, f"invalid JSON, truncated? ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise bad_file(path, EXPECTED, f"format is {doc.get('format') if isinstance(doc, dict) else None!r}")
    for key, kind in REQUIRED.items():
        if not isinstance(doc.get(key), kind):
            raise bad_file(path, EXPECTED, f"`{key}` missing or not {getattr(kind, '__name__', 'a number')}")
    window = doc.get("window_boottime_ns")
    if window is not None and not (isinstance(window, list) and len(window) == 2
                                   and all(isinstance(t, int) for t in window) and window[0] < window[1]):
        raise bad_file(path, EXPECTED, "`window_boottime_ns` must be [start, end] with start < end")
    bench = Bench(str(path), doc["platform"], doc["mtp"], doc["draft_len"], doc["tokens_generated"],
                  float(doc["wall_time_s"]), tuple(window) if window else None,
                  {k: v for k, v in doc.items() if k not in REQUIRED and k not in ("format", "window_boottime_ns")})
    if doc.get("traces"):
        counted = _trace_tokens(path, doc["traces"])
        if counted != bench.tokens:
            raise EdgeMTPError(f"{path}: tokens_generated is {bench.tokens} but its traces hold {counted} tokens")
    if bench.tokens <= 0 or bench.wall_time_s <= 0:
        raise bad_file(path, EXPECTED, "tokens_generated and wall_time_s must be positive")
    return bench
