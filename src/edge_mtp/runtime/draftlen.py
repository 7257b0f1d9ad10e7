"""Adaptive draft length (`--draft-len auto`): choose K for every round from per-call costs and the running
per-slot acceptance, and fall back to plain decoding when drafting does not pay.

Objective: tokens per unit time of one round. A round with K drafts emits E(K) tokens in expectation
and costs K drafter steps plus one verify of K+1 tokens (Leviathan, Kalman, Matias 2023, "Fast
Inference from Transformers via Speculative Decoding", ICML, §3.1, with one acceptance rate per slot):

    E(K) = 1 + sum_{i=1..K} prod_{j<=i} a_j        cost(K) = c_first + (K - 1) * c_draft + c_verify(K + 1)

c_first is the first drafter step of a round: it follows a verify, so it runs from colder caches and
costs more than the next ones on small models (on large, memory-bound ones c_first = c_draft and this
is K * c_draft + c_verify(K + 1)); a probe (below) costs c_first too.

and the round drafts K* = argmax_{K <= K_fit} E(K) / cost(K) (ties: the smaller K; K = 0 is plain
decoding, 1 / c_verify(1)), K_fit = the most drafts the budget and the context leave room for.
`c_verify` is a table over T = 1..K_max+1, not a line: a LiteRT bundle runs T = 1 with its decode
signature and every 1 < T <= export-K + 1 with its verify signature (padding rows), so those cost
about the same; ONNX's target graph takes any T. mlx-vlm gates its MTP depth on the last 32
rounds' acceptance alone; with the costs, the policy also knows when even an always-right drafter
cannot beat plain decoding on this machine (no K has (K+1) * c_verify(1) > cost(K)), and then it
never calls the drafter at all.

Acceptance statistics are integer counts: for every draft slot j, the outcomes (accepted or not) of
the last `window` times a draft in slot j was *tested* (drafts 1..j-1 were accepted, so the target
judged draft j; a round with k drafts of which n were accepted before the stop/budget cut tests
slots 1..min(n+1, k)). Each slot's estimate is shrunk toward the one before it, so deeper slots that
were never tried inherit the acceptance of shallower ones:

    a_0 = prior;   a_j = (s_j + prior_weight * a_{j-1}) / (n_j + prior_weight)

with s_j accepted out of n_j tested in the window.

Probes. While K* = 0 the counts would stop changing, so a K = 0 round may run a *probe*: the round's
first drafter step, whose draft is compared with the target's own token of that round but never
verified (the verify sees only the last token; a probe changes no emitted token and costs one drafter
step, c_first). Rounds where drafting could pay (see above) and slot 1 has never been tested always probe
instead of drafting, so a generation starts with one cheap test instead of K drafts. Otherwise a
K* = 0 round probes when (a) probes so far * c_first <= probe_budget * (plain rounds so far, this one
included) * c_verify(1), i.e. probes spend at most `probe_budget` of what plain decoding spends, or
(b) slot 1's last test was accepted and `lookahead` more accepted tests would make K* > 0 (a run of
acceptances keeps being tested while it can switch drafting on). In sampling mode a probe draws its
draft from the drafter's distribution q and tests it with min(1, p/q) like a real draft, both with
the probes' own random stream (`PROBE_STREAM`, sampling.py), so the main stream is that of plain
decoding.

Determinism. Decisions depend only on the costs, the parameters and the integer counts, never on
the clock, so the Python loop and the C core (native/src/draftlen.c) choose the same K from the same
inputs, and a trace records the estimates (`rates`) of every round bit for bit. The arithmetic is
IEEE-754 binary64, every operation rounded on its own (no fused multiply-add: the C core is built
with -ffp-contract=off), in exactly this order (c_verify[K] is the verify of K+1 tokens):

    prior_j = prior_weight * a_{j-1};  a_j = (s_j + prior_j) / (n_j + prior_weight)
    p_0 = 1, E_0 = 1;  p_K = p_{K-1} * a_K;  E_K = E_{K-1} + p_K
    cost_K = (c_first + (K - 1) * c_draft) + c_verify[K];  score_K = E_K / cost_K, score_0 = 1 / c_verify[0]
    K* = the first K with the largest score
    can pay:  (K + 1) * c_verify[0] > cost_K for some K <= K_fit
    budget:   probes * c_first <= probe_budget * (plain_rounds * c_verify[0])

Costs come from `calibrate` (timed on the backend before generating; the trace header says
`"draft_costs_from": "calibration"`) or are given (`--draft-costs F,D,V1,...,V(K+1)`: c_first, c_draft,
c_verify(1..K+1)): a trace is replayed exactly by passing the costs in its header's `draft_policy`.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_mtp.errors import EdgeMTPError
from edge_mtp.runtime.views import drafter_views

POLICY = "cost-acceptance/1"
AUTO = "auto"
PROBE_STREAM = 55  # sampling mode: the probes' own PCG32 stream (the main stream is 54), see sampling.py


@dataclass(frozen=True)
class DraftCosts:
    """Milliseconds per call: the first drafter step of a round (right after a verify, so from colder caches;
    also what a probe costs), each further step, and a verify of T = 1..K_max+1 tokens (T = 1: a decode)."""

    first_draft_ms: float
    draft_ms: float
    verify_ms: tuple[float, ...]
    calibrated: bool = field(default=False, compare=False)  # timed here (`calibrate`), not given

    @property
    def max_draft_len(self) -> int:
        return len(self.verify_ms) - 1

    def round_ms(self, k: int) -> float:
        """cost(K): K drafter steps and the verify of K+1 tokens."""
        if k == 0:
            return self.verify_ms[0]
        return self.first_draft_ms + (k - 1) * self.draft_ms + self.verify_ms[k]

    def spec(self) -> str:
        """The `--draft-costs` text that gives these costs back exactly (repr round-trips a float)."""
        return ",".join(repr(float(x)) for x in (self.first_draft_ms, self.draft_ms, *self.verify_ms))


def parse_costs(text: str) -> DraftCosts:
    """`F,D,V1,...,V(K+1)`: first drafter step, each further step, verify of 1..K+1 tokens; ms, all > 0."""
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        values = []
    if not 3 <= len(values) <= 67 or not all(0 < v < float("inf") for v in values):
        raise EdgeMTPError(f"expected F,D,V1,...,V(K+1) (ms, each > 0: a round's first drafter step, each further "
                           f"step, a verify of 1..K+1 tokens; K <= 64), got {text!r}")
    return DraftCosts(values[0], values[1], tuple(values[2:]))


@dataclass(frozen=True)
class AutoDraft:
    """The policy's parameters and costs (recorded in the trace header as `draft_policy`)."""

    costs: DraftCosts
    window: int = 16
    prior: float = 0.5
    prior_weight: float = 1.0
    probe_budget: float = 0.005
    lookahead: int = 4

    @property
    def max_draft_len(self) -> int:
        return self.costs.max_draft_len

    def as_trace(self) -> dict:
        return {"policy": POLICY, "max_draft_len": self.max_draft_len, "window": self.window,
                "prior": self.prior, "prior_weight": self.prior_weight, "probe_budget": self.probe_budget,
                "lookahead": self.lookahead,
                "first_draft_ms": self.costs.first_draft_ms, "draft_ms": self.costs.draft_ms,
                "verify_ms": list(self.costs.verify_ms)}


def estimates(policy: AutoDraft, tested: Sequence[int], accepted: Sequence[int]) -> list[float]:
    """a_1..a_Kmax from the windowed counts (n_j tested, s_j accepted), shrunk slot by slot."""
    rates, prev = [], policy.prior
    for n, s in zip(tested, accepted, strict=True):
        prior = policy.prior_weight * prev
        prev = (s + prior) / (n + policy.prior_weight)
        rates.append(prev)
    return rates


def best_k(rates: Sequence[float], costs: DraftCosts, k_max: int) -> int:
    """argmax_{K <= k_max} E(K) / cost(K); ties go to the smaller K."""
    best, best_score, p, e = 0, 1.0 / costs.verify_ms[0], 1.0, 1.0
    for k in range(1, k_max + 1):
        p = p * rates[k - 1]
        e = e + p
        score = e / costs.round_ms(k)
        if score > best_score:
            best, best_score = k, score
    return best


def can_pay(costs: DraftCosts, k_max: int) -> bool:
    """Whether a drafter that is always right (K+1 tokens a round) beats plain decoding at some K <= k_max."""
    return any((k + 1) * costs.verify_ms[0] > costs.round_ms(k) for k in range(1, k_max + 1))


@dataclass
class Decision:
    k: int  # drafts this round (0 = plain decoding)
    probe: bool  # K = 0 round that runs one drafter step to test slot 1
    rates: list[float]  # the estimates it was made from


@dataclass
class DraftLenState:
    """Per-generation state: each slot's last `window` test outcomes, probe and plain-round counts."""

    policy: AutoDraft
    outcomes: list[deque] = field(init=False)
    probes: int = 0
    probes_accepted: int = 0
    plain_rounds: int = 0

    def __post_init__(self):
        self.outcomes = [deque(maxlen=self.policy.window) for _ in range(self.policy.max_draft_len)]
        # what only changes with a new outcome (or with k_max), kept between rounds: a plain round of the tiny
        # pair costs ~0.8 ms in the Python loop, and recomputing these made `decide` 4.0 instead of 1.6 µs;
        # keeping K* per k_max too (`_best`) makes it 0.7 µs
        self._estimated: tuple[list[int], list[int], list[float]] | None = None
        self._best: dict[int, int] = {}
        self._can_pay = {k: can_pay(self.policy.costs, k) for k in range(1, self.policy.max_draft_len + 1)}

    def counts(self) -> tuple[list[int], list[int]]:
        return [len(d) for d in self.outcomes], [sum(d) for d in self.outcomes]

    def _estimates(self) -> tuple[list[int], list[int], list[float]]:
        """(tested, accepted, rates), recomputed only after a new outcome. The rounds in between share the
        rates list (their decisions' `rates`); nothing changes it in place."""
        if self._estimated is None:
            tested, accepted = self.counts()
            self._estimated = tested, accepted, estimates(self.policy, tested, accepted)
            self._best = {}
        return self._estimated

    def decide(self, k_max: int) -> Decision:
        """K for a round in which at most `k_max` drafts fit (budget and context)."""
        policy, costs = self.policy, self.policy.costs
        k_max = min(k_max, policy.max_draft_len)
        tested, accepted, rates = self._estimates()
        if k_max <= 0 or not self._can_pay[k_max]:
            return Decision(0, False, rates)
        if k_max not in self._best:  # slot 1 untested: a probe first, not K drafts
            self._best[k_max] = best_k(rates, costs, k_max) if tested[0] else 0
        k = self._best[k_max]
        if k > 0:
            return Decision(k, False, rates)
        self.plain_rounds += 1
        probe = self.probes * costs.first_draft_ms <= policy.probe_budget * (self.plain_rounds * costs.verify_ms[0])
        first = self.outcomes[0]
        if not probe and first and first[-1]:  # on a run of acceptances: keep testing while it can flip K*
            ahead = (list(first) + [1] * policy.lookahead)[-policy.window:]
            hypo = estimates(policy, [len(ahead)] + tested[1:], [sum(ahead)] + accepted[1:])
            probe = best_k(hypo, costs, k_max) > 0
        return Decision(0, probe, rates)

    def record(self, drafts: int, accepted: int) -> None:
        """A drafting round: slots 1..min(accepted+1, drafts) were tested, slots 1..accepted kept."""
        for j in range(min(accepted + 1, drafts)):
            self.outcomes[j].append(1 if j < accepted else 0)
        self._estimated = None

    def record_probe(self, accepted: bool) -> None:
        self.probes += 1
        self.probes_accepted += bool(accepted)
        self.outcomes[0].append(1 if accepted else 0)
        self._estimated = None


CALIBRATION_ROUNDS = 4  # rounds of one K in a row; the second half is timed


def calibration_rounds(k_max: int, context: int) -> int:
    """Rounds of each K that fit after a one-token prefill (a round of K drafts takes K+1 positions): 4, fewer
    in a short context, never below 2 (one to settle, one timed)."""
    rounds = min(CALIBRATION_ROUNDS, (context - 1) // (k_max + 1))
    if rounds < 2:
        raise EdgeMTPError(f"calibrating K up to {k_max} needs a context of {2 * (k_max + 1) + 1}, not {context}")
    return rounds


def _timed_round(backend, last: int, carry, q: int, prev: tuple[int, int], k: int):
    """One greedy round of K drafts at query position q, every draft taken as accepted (so the next round
    starts at q+K+1, as in a run that accepts everything): (drafter step seconds, verify seconds, the
    target's next token, its carry)."""
    views = drafter_views(*prev, q + 1, backend.sliding_window)
    steps, drafts, token, state = [], [], last, carry
    for _ in range(k):
        t0 = time.perf_counter()
        logits, state = backend.draft(token, state, q, views)
        steps.append(time.perf_counter() - t0)
        token = int(np.argmax(logits))
        drafts.append(token)
    t0 = time.perf_counter()
    out = backend.verify([last] + drafts, q)
    elapsed = time.perf_counter() - t0
    return steps, elapsed, int(np.argmax(out.logits[k])), out.hidden[k]


def calibrate(backend, k_max: int, token: int = 2, reps: int = 3, warmup: int = 1) -> DraftCosts:
    """Time the backend the way a steady run of rounds uses it. After a one-token prefill, `warmup` + `reps`
    passes, each over K = 0..k_max in turn (so a burst of load on a shared machine hits every K alike) of
    `calibration_rounds` greedy rounds of K drafts in a row from position 1, every draft taken as accepted
    (rolled back after each K); the second half of each run is timed. Why runs, not single rounds: on a
    model whose weights sit in the caches, a call's cost depends on the calls before it (what they left in
    L2/L3). Single rounds timed right after rounds of another K set the tiny pair's K = 4 round at 2.8
    decodes where its generations measured 3.6 (steady runs: 3.2; benchmarks/README.md, "calibration from
    steady runs"), and a drafting round that looks cheaper than it is makes `auto` draft where plain
    decoding is faster. Medians (the costs as the loaded machine charges them: under load a short call is
    slowed more than a long one, which minima hide): c_verify(K+1) the verify of K+1 tokens, c_first the
    first drafter step of every timed drafting round, c_draft the further steps of the K_max rounds. Then
    c_verify is made non-decreasing in T (a running maximum): a verify of more tokens does at least the work
    of one of fewer, and on a 2-core machine at load 8-9 a median read a decode as 5-8 ms (against 1.1 ms),
    above the verify of 2 tokens, which made a draft look free on prompts where none is accepted. Leaves
    nothing that a later prefill does not overwrite."""
    rounds = calibration_rounds(k_max, backend.context)
    out = backend.prefill([token])
    start = int(np.argmax(out.logits[-1])), out.hidden[-1]
    verify, first, further = [[] for _ in range(k_max + 1)], [], []
    for rep in range(warmup + reps):
        for k in range(k_max + 1):
            (last, carry), q, prev = start, 1, (0, 0)
            for r in range(rounds):
                steps, elapsed, last, carry = _timed_round(backend, last, carry, q, prev, k)
                prev, q = (q, q + k), q + k + 1
                if rep >= warmup and r >= rounds // 2:
                    verify[k].append(elapsed)
                    first += steps[:1]
                    further += steps[1:] if k == k_max else []
            backend.rollback(1)
    ms = lambda xs: max(round(statistics.median(xs) * 1000.0, 3), 0.001)  # noqa: E731
    c_first = ms(first) if first else 0.001
    verify_ms = [ms(v) for v in verify]
    for t in range(1, len(verify_ms)):  # a verify of more tokens never costs less: no draft looks free
        verify_ms[t] = max(verify_ms[t], verify_ms[t - 1])
    return DraftCosts(c_first, ms(further) if further else c_first, tuple(verify_ms), calibrated=True)
