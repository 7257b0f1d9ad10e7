"""Seeded sampling with a specified random stream, so native and mobile ports can replay it bit for bit
(docs/sampling.md).

Random stream: PCG32 (XSH-RR, O'Neill 2014, `pcg32_srandom_r(seed, 54)`); one *uniform* is
`((a >> 5) * 2**26 + (b >> 6)) / 2**53` from two consecutive 32-bit outputs a, b (53 bits, as numpy).

Distribution of a logit row: `logits / temperature` in float64; top-k keeps the k largest (ties: smaller
id first); top-p then keeps the shortest prefix of that order whose softmax mass reaches p; softmax over
the kept ids, zero elsewhere. A token is drawn by inverse CDF: the first id whose running sum (in id
order) exceeds `u * total`.

Call order of uniforms, the contract every implementation follows (see `loop.py`):
round 0: one draw for the first token; a drafting round: K draws for the K drafts (in order), then
one acceptance draw per tested draft up to and including the first rejection, then one draw for the
correction or bonus token; a round without drafts: one draw.

With `--draft-len auto` (draftlen.py) K is the round's own (len(drafts) in its trace line) and the
rule above holds unchanged per round. A probe (a K = 0 round that tests one unverified draft) draws
from a second generator, `pcg32_srandom_r(seed, 55)`: one uniform for its draft (from q), then one
for its acceptance test (u * q(d) < p(d), p = the target's distribution of that round's own token).
So rounds without drafts take the same draws from the main stream as plain decoding does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MASK64 = (1 << 64) - 1
_MULT = 6364136223846793005
PCG_STREAM = 54


class PCG32:
    """Minimal PCG32 (`pcg32_random_r`)."""

    def __init__(self, seed: int, stream: int = PCG_STREAM):
        self.inc = ((stream << 1) | 1) & _MASK64
        self.state = 0
        self.next_u32()
        self.state = (self.state + seed) & _MASK64
        self.next_u32()

    def next_u32(self) -> int:
        old = self.state
        self.state = (old * _MULT + self.inc) & _MASK64
        xorshifted = (((old >> 18) ^ old) >> 27) & 0xFFFFFFFF
        rot = old >> 59
        return ((xorshifted >> rot) | (xorshifted << ((-rot) & 31))) & 0xFFFFFFFF

    def uniform(self) -> float:
        a, b = self.next_u32() >> 5, self.next_u32() >> 6
        return (a * 67108864.0 + b) / 9007199254740992.0


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1.0 = off
    seed: int = 0

    def as_trace(self) -> dict:
        return {"mode": "sample", "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                "seed": self.seed}


def ranked(x: np.ndarray, top_k: int = 0) -> np.ndarray:
    """Ids by descending x, the smaller id first among equals, NaN last (`np.lexsort((ids, -x))`); with
    top_k > 0 only the first top_k. Sampling ranks every draft's and every verified position's logits, and
    the loop every round's top list (loop.top_logits); a full sort of Gemma's 262144 takes 32-36 ms, about
    what an E2B decode costs; so with top_k only the ids at or above a bound that the top_k-th largest value
    cannot fall below are sorted: the same ids in the same order, so distributions and traces are bit for
    bit the same."""
    if 0 < top_k < x.size:
        bound = _top_k_floor(x, top_k)
        candidates = np.flatnonzero(x >= bound) if bound is not None else np.empty(0, np.int64)
        if candidates.size >= top_k:
            return candidates[np.lexsort((candidates, -x[candidates]))][:top_k]
    order = np.lexsort((np.arange(x.size), -x))
    return order[:top_k] if top_k else order


def _top_k_floor(x: np.ndarray, top_k: int, blocks: int = 4096) -> float | None:
    """A value the top_k-th largest of x is at least: the top_k-th largest of its block maxima (top_k blocks
    each hold a value that high). A partition of x itself would be exact, but numpy's crawls on rows full of
    one value, as the drafter's are (every non-candidate gets the same fill). None if NaN is in x."""
    step = max(1, x.size // max(blocks, top_k))
    maxima = np.maximum.reduceat(x, np.arange(0, x.size, step))
    if maxima.size < top_k or np.isnan(maxima).any():
        return None
    return float(np.partition(maxima, maxima.size - top_k)[maxima.size - top_k])


def distribution(logits: np.ndarray, cfg: SamplingConfig) -> np.ndarray:
    """Probabilities (float64, full vocab) after temperature, top-k and top-p."""
    x = np.asarray(logits, dtype=np.float64) / cfg.temperature
    order = ranked(x, cfg.top_k)
    kept = np.exp(x[order] - x[order[0]])
    kept /= kept.sum()
    if cfg.top_p < 1.0:
        cut = int(np.searchsorted(np.cumsum(kept), cfg.top_p)) + 1
        order, kept = order[:cut], kept[:cut] / kept[:cut].sum()
    probs = np.zeros_like(x)
    probs[order] = kept
    return probs


def draw(probs: np.ndarray, u: float) -> int:
    """Inverse-CDF draw in id order; never returns an id of probability 0."""
    cdf = np.cumsum(probs)
    idx = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
    return min(idx, int(np.flatnonzero(probs)[-1]))


class Sampler:
    def __init__(self, cfg: SamplingConfig):
        self.cfg = cfg
        self.rng = PCG32(cfg.seed)

    def distribution(self, logits: np.ndarray) -> np.ndarray:
        return distribution(logits, self.cfg)

    def sample(self, probs: np.ndarray) -> int:
        return draw(probs, self.rng.uniform())

    def accept(self, p: float, q: float) -> bool:
        """Speculative acceptance test: keep a draft with probability min(1, p/q)."""
        return self.rng.uniform() * q < p


def residual(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """norm(max(p - q, 0)): where to resample after a rejection (Leviathan et al. 2023, Chen et al. 2023)."""
    r = np.maximum(p - q, 0.0)
    total = r.sum()
    return r / total if total > 0 else p
