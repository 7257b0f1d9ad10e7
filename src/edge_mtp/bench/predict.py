"""Expected tokens per round and predicted speedup of speculative decoding from per-slot acceptance.

Leviathan, Kalman, Matias 2023, "Fast Inference from Transformers via Speculative Decoding" (ICML,
arXiv:2211.17192), §3.1 and Theorem 3.8, generalised from one acceptance rate to one per draft slot:

* a_k is the probability that draft k is accepted given drafts 1..k-1 were (conditional acceptance);
* a round emits the accepted drafts plus the target's own token, so its expected length is
  E = 1 + sum_{k=1..K} prod_{j<=k} a_j   (with one rate a for every slot: (1 - a^(K+1)) / (1 - a));
* plain decoding emits one token per target decode of cost t_decode; a speculative round costs
  K drafter steps and one verify over K+1 tokens, so the predicted speedup (tokens per second) is
  S = E * t_decode / (K * t_draft + t_verify(K+1)).

The costs here are the measured per-call times; the loop's own per-round overhead (argmax, drafter
views, rollback) is left out of the prediction and shown in the latency breakdown instead.
"""

from __future__ import annotations

from collections.abc import Sequence


def conditional(per_slot: Sequence[float]) -> list[float]:
    """a_k from the unconditional per-slot acceptance p_k = P(drafts 1..k all accepted) = prod_{j<=k} a_j."""
    out, prev = [], 1.0
    for p in per_slot:
        out.append(p / prev if prev > 0 else 0.0)
        prev = p
    return out


def expected_tokens(rates: Sequence[float]) -> float:
    """E = 1 + sum_k prod_{j<=k} a_j for conditional acceptance rates a_1..a_K."""
    total, prod = 1.0, 1.0
    for a in rates:
        prod *= a
        total += prod
    return total


def predicted_speedup(rates: Sequence[float], t_draft: float, t_verify: float, t_decode: float) -> float:
    """S = E * t_decode / (K * t_draft + t_verify), K = len(rates); K = 0 gives t_decode / t_verify."""
    return expected_tokens(rates) * t_decode / (len(rates) * t_draft + t_verify)


def break_even(k: int, t_draft: float, t_verify: float, t_decode: float, steps: int = 1000) -> float | None:
    """The smallest constant per-slot acceptance a at which S >= 1 (None: not even at a = 1)."""
    for i in range(steps + 1):
        a = i / steps
        if predicted_speedup([a] * k, t_draft, t_verify, t_decode) >= 1.0:
            return a
    return None
