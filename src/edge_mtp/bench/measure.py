"""Time generations: every target prefill/verify call and drafter step, and every round's wall time.

The Python backends are wrapped in `TimedBackend`, a proxy that times each call the loop makes; the
loop itself is unchanged and records each round's wall time (`Round.ms`). The native C core is timed
from its own step trace (`ms.draft`, `ms.verify` per round; a draft step = the round's draft time / K).
`--draft-len auto` generations are measured the same way; each times its costs first (untimed), as
`edge-mtp run --draft-len auto` does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Sample:
    """One measured generation. Times in seconds; round 0 is the prefill (its wall time is the TTFT)."""

    category: str
    draft_len: int | str  # "auto": K chosen per round (runtime/draftlen.py)
    prompt_tokens: int
    tokens: int
    ttft_s: float
    rounds: list[dict] = field(default_factory=list)  # decode rounds: drafts, accepted, emitted, wall_s
    draft_calls: list[float] = field(default_factory=list)  # each drafter step
    verify_calls: list[tuple[int, float]] = field(default_factory=list)  # (tokens verified, seconds)
    policy: dict | None = None  # auto: the trace header's draft_policy (parameters and costs)
    probes: int = 0  # auto: K = 0 rounds that ran one unverified drafter step


class TimedBackend:
    """Forwards everything to `inner`; records (kind, tokens, seconds) of prefill/verify/draft calls."""

    def __init__(self, inner):
        self._inner = inner
        self.calls: list[tuple[str, int, float]] = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _timed(self, kind: str, n: int, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        self.calls.append((kind, n, time.perf_counter() - t0))
        return out

    def prefill(self, tokens):
        return self._timed("prefill", len(tokens), self._inner.prefill, tokens)

    def verify(self, tokens, start):
        return self._timed("verify", len(tokens), self._inner.verify, tokens, start)

    def draft(self, token, carry, position, views):
        return self._timed("draft", 1, self._inner.draft, token, carry, position, views)

    def rollback(self, length):
        self._inner.rollback(length)


def _round(drafts: int, accepted: int, emitted: int, ms: dict) -> dict:
    return {"drafts": drafts, "accepted": accepted, "emitted": emitted,
            "wall_s": (ms.get("draft", 0.0) + ms["verify"]) / 1000.0}


def measure_python(backend: TimedBackend, prompt: list[int], k: int, new: int, category: str, auto=None) -> Sample:
    """One greedy generation; `auto` (an AutoDraft) runs `--draft-len auto` with its K_max instead of K = k."""
    from edge_mtp.runtime import LoopConfig, generate

    backend.calls.clear()
    cfg = LoopConfig(draft_len=auto.max_draft_len if auto else k, max_new_tokens=new, auto=auto)
    gen = generate(backend, prompt, cfg)
    first, rest = gen.rounds[0], gen.rounds[1:]
    sample = Sample(category, k, len(prompt), len(gen.tokens), first.ms["verify"] / 1000.0,
                    [_round(len(r.drafts), r.accepted, len(r.emitted), r.ms) for r in rest],
                    policy=auto.as_trace() if auto else None, probes=gen.probes[0] if gen.probes else 0)
    sample.draft_calls = [s for kind, _, s in backend.calls if kind == "draft"]
    sample.verify_calls = [(n, s) for kind, n, s in backend.calls if kind == "verify"]
    return sample


def measure_native(bundle: Path, prompt: list[int], k: int | str, new: int, category: str, threads: int) -> Sample:
    """One greedy generation of the C core (k = "auto": it times its costs first, outside the rounds)."""
    from edge_mtp.runtime.native import native_trace

    lines = native_trace(bundle, prompt, new, draft_len=k, threads=threads)
    rounds = [x for x in lines if x["type"] == "round"]
    first, rest = rounds[0], rounds[1:]
    sample = Sample(category, k, len(prompt), len(lines[-1]["tokens"]), first["ms"]["verify"] / 1000.0,
                    [_round(len(r["drafts"]), r["accepted"], len(r["emitted"]), r["ms"]) for r in rest],
                    policy=lines[0].get("draft_policy"), probes=lines[-1].get("probes", 0))
    for r in rest:
        n = len(r["drafts"])
        sample.draft_calls += [r["ms"].get("draft", 0.0) / 1000.0 / n] * n if n else []
        sample.verify_calls.append((n + 1, r["ms"]["verify"] / 1000.0))
    return sample
