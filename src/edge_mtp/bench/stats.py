"""Aggregate measured generations into the numbers `bench` reports (one row per K, and per category).

Definitions (all sums over every measured generation of the row):
* TTFT = wall time of round 0 (prefill + choosing the first token); prefill tok/s = prompt tokens / TTFT.
* decode tok/s = tokens after the first / wall time of the decode rounds (rounds 1..).
* acceptance per draft slot k = share of full rounds (K drafts offered; the last rounds of a budget
  offer fewer) in which drafts 1..k were all accepted; so it never increases with k.
* mean tokens per round = decode tokens / decode rounds (all decode rounds).
* per-call costs = mean drafter step, mean verify call of K+1 tokens, per-round loop overhead =
  round wall time - its calls.
* paired ratio of two Ks = the median, over generations of the same prompt and repetition (run next to
  each other), of one K's decode tok/s over the other's: a burst of load or a slow process start moves
  a sum over all generations, while the pairs' median holds.
"""

from __future__ import annotations

from statistics import fmean, median

from edge_mtp.bench.measure import Sample
from edge_mtp.bench.predict import conditional, expected_tokens


def _mean(values) -> float | None:
    values = list(values)
    return fmean(values) if values else None


def acceptance_per_slot(samples: list[Sample], k: int) -> list[float]:
    full = [r["accepted"] for s in samples for r in s.rounds if r["drafts"] == k]
    return [sum(a > j for a in full) / len(full) if full else 0.0 for j in range(k)]


def costs(samples: list[Sample], k: int) -> dict:
    """Mean per-call seconds and the per-round breakdown (draft calls, verify call, loop overhead)."""
    rounds = [r for s in samples for r in s.rounds]
    drafts = [t for s in samples for t in s.draft_calls]
    verifies = [t for s in samples for _, t in s.verify_calls]
    n = len(rounds) or 1
    wall = sum(r["wall_s"] for r in rounds)
    return {
        "t_draft_s": _mean(drafts),
        "t_verify_s": _mean(t for s in samples for m, t in s.verify_calls if m == k + 1),
        "round_s": wall / n,
        "round_draft_s": sum(drafts) / n,
        "round_verify_s": sum(verifies) / n,
        "round_other_s": (wall - sum(drafts) - sum(verifies)) / n,
    }


def summarize(samples: list[Sample], k: int) -> dict:
    """One row of the report for the generations `samples`, all run with draft length `k`."""
    prompt_tokens = sum(s.prompt_tokens for s in samples)
    ttft = sum(s.ttft_s for s in samples)
    decode_tokens = sum(s.tokens - 1 for s in samples)
    decode_s = sum(r["wall_s"] for s in samples for r in s.rounds)
    rounds = sum(len(s.rounds) for s in samples)
    per_slot = acceptance_per_slot(samples, k)
    rates = conditional(per_slot)
    return {
        "draft_len": k, "generations": len(samples),
        "prompt_tokens": prompt_tokens, "ttft_s_total": ttft, "ttft_ms": 1000 * ttft / len(samples),
        "prefill_tok_s": prompt_tokens / ttft,
        "tokens_generated": sum(s.tokens for s in samples),
        "decode_tokens": decode_tokens, "decode_s": decode_s, "decode_rounds": rounds,
        "decode_tok_s": decode_tokens / decode_s if decode_s else None,
        "wall_time_s": ttft + decode_s,
        "mean_tokens_per_round": decode_tokens / rounds if rounds else None,
        "acceptance_per_slot": per_slot, "conditional_acceptance": rates,
        "expected_tokens_per_full_round": expected_tokens(rates),
        **costs(samples, k),
    }


def generation_tok_s(sample: Sample) -> float | None:
    """Decode tok/s of one generation (tokens after the first over its decode rounds' wall time); None if it
    stopped after its first token."""
    wall = sum(r["wall_s"] for r in sample.rounds)
    return (sample.tokens - 1) / wall if wall > 0 else None


def paired_ratio(samples: list[Sample], baseline: list[Sample]) -> float | None:
    """Median over paired generations (same prompt and repetition) of decode tok/s over the baseline's; None
    if no pair has decode rounds on both sides."""
    ratios = []
    for s, b in zip(samples, baseline, strict=True):
        if (s.category, s.prompt_tokens) != (b.category, b.prompt_tokens):
            raise ValueError(f"unpaired generations: {s.category}/{s.prompt_tokens} against {b.category}/{b.prompt_tokens}")
        mine, theirs = generation_tok_s(s), generation_tok_s(b)
        if mine and theirs:
            ratios.append(mine / theirs)
    return median(ratios) if ratios else None
